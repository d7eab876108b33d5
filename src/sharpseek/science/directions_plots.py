"""Pictures of physical directions: the paper's Fig. 4 (2-D view of a boundary with
thumbnails) and Fig. 5 (strips of shifted images, with and without a condition), the
calibration curves, and GAN inversion panels (Fig. 6). Magnetograms in gauss on the
project's diverging scale (:mod:`sharpseek.science.plotting`), origin lower (north up, west right).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from sharpseek.physics.definitions import PARAMETER_UNITS
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import DirectionSet, project_2d, shift
from sharpseek.science.plotting import (
    FIELD_SCALE_G,
    MAGNETOGRAM_CMAP,
    _draw_magnetogram,
    _save,
    plt,
)

__all__ = [
    "boundary_view",
    "calibration_curves",
    "inversion_panels",
    "inversion_rows",
    "shift_strips",
]


def boundary_view(
    generate,
    directions: DirectionSet,
    parameter: str,
    path: str | Path,
    *,
    n: int = 600,
    thumbnails: int = 10,
    seed: int = 3,
) -> Path:
    """Fig. 4: latent vectors in the 2-D view z'1 = z1, z'2 = (1/n2) sum_{i>=2} n_i z_i,
    coloured by the parameter's label, with the boundary line and a few thumbnails."""
    b = directions[parameter]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, directions.latent_dim)).astype(np.float32)
    images = np.asarray(generate(z))
    values = np.asarray(compute_parameters(images)[parameter], dtype=float)
    view = project_2d(z, b.normal)  # (n, 2)
    high = values > b.rule.threshold if b.rule.kind != "sign" else values > 0
    fig, ax = plt.subplots(figsize=(7.5, 6))
    finite = np.isfinite(values)
    ax.scatter(*view[finite & ~high].T, s=6, c="tab:blue", alpha=0.5, label=f"{parameter} low")
    ax.scatter(*view[finite & high].T, s=6, c="tab:red", alpha=0.5, label=f"{parameter} high")
    x = np.linspace(view[:, 0].min(), view[:, 0].max(), 2)
    ax.plot(x, -(b.normal[0] * x + b.intercept) / b.normal[1], "k-", lw=1.5, label="boundary")
    lo, hi = np.percentile(view[:, 1], [1, 99])
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    pick = rng.choice(np.flatnonzero(finite), size=min(thumbnails, finite.sum()), replace=False)
    for i in pick:
        if not lo <= view[i, 1] <= hi:
            continue
        box = OffsetImage(
            images[i] * FIELD_SCALE_G, zoom=0.25, cmap=MAGNETOGRAM_CMAP, origin="lower"
        )
        box.get_children()[0].set_clim(-1000, 1000)
        ax.add_artist(AnnotationBbox(box, view[i], frameon=True, pad=0.1))
    ax.set_xlabel(r"$z'_1 = z_1$")
    ax.set_ylabel(r"$z'_2 = \frac{1}{n_2}\sum_{i\geq 2} n_i z_i$")
    ax.set_title(
        f"{parameter.upper()} boundary (validation accuracy {b.accuracy:.2f}), "
        f"GAN {directions.gan_version}",
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def shift_strips(
    generate,
    directions: DirectionSet,
    z0: np.ndarray,
    parameter: str,
    hold: Sequence[str],
    path: str | Path,
    *,
    eps: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
    held_shift: Callable[[float], np.ndarray] | None = None,
) -> Path:
    """Fig. 5: one AR shifted along ``parameter``'s direction (top row) and along it
    holding ``hold`` (bottom row), the parameter and the held ones printed under each image.

    ``held_shift`` maps an eps to the held shift's latent (d,) by the set's hold method
    (e.g. a backend's generate with shifts and hold); None: the linear rule here."""
    eps = np.asarray(eps, dtype=float)
    plain = directions.step(parameter)
    if held_shift is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            conditioned = directions.step(parameter, hold=tuple(hold))
        held_shift = lambda e: shift(z0[None], conditioned, e)[0]  # noqa: E731
    rows = []
    for move in (lambda e: shift(z0[None], plain, e)[0], held_shift):
        z = np.stack([move(float(e)) for e in eps]).astype(np.float32)
        images = np.asarray(generate(z))
        rows.append((images, compute_parameters(images)))
    shown = [parameter, *hold]
    fig, axes = plt.subplots(2, len(eps), figsize=(1.9 * len(eps) + 1, 5.4), squeeze=False)
    im = None
    for r, (images, params) in enumerate(rows):
        for c, e in enumerate(eps):
            ax = axes[r, c]
            im = _draw_magnetogram(ax, images[c] * FIELD_SCALE_G, 1000.0)
            text = "\n".join(f"{k.upper()} {float(params[k][c]):.3g}" for k in shown)
            ax.set_xlabel(text, fontsize=6)
            if r == 0:
                ax.set_title(f"eps = {e:+g}", fontsize=8)
        axes[r, 0].set_ylabel(
            f"along {parameter}"
            if r == 0
            else f"{parameter} | hold {', '.join(hold)} ({directions.method.hold})",
            fontsize=8,
        )
    if im is not None:
        cbar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        cbar.set_label(r"$B_r$ [G]")
    units = ", ".join(f"{k}: {PARAMETER_UNITS[k] or '1'}" for k in shown)
    fig.suptitle(
        f"shifts along {parameter.upper()}, with and without conditions ({units})", fontsize=9
    )
    return _save(fig, path)


def calibration_curves(
    directions: DirectionSet, path: str | Path, *, parameters: Sequence[str] | None = None
) -> Path:
    """Median and 16-84 % band of each parameter along its own direction against eps, with
    (dashed) how the other main parameters' medians move, in units of their spread."""
    names = [p for p in (parameters or directions.calibration) if p in directions.calibration]
    if not names:
        raise ValueError("no calibration curves stored: fit with --calibrate")
    ncols = min(4, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        curves = directions.calibration[name]
        eps = np.asarray(curves["eps"])
        own = curves[name]
        med = np.array(own["median"], dtype=float)
        ax.fill_between(eps, own["p16"], own["p84"], color="tab:red", alpha=0.25, lw=0)
        ax.plot(eps, med, "-o", color="tab:red", ms=3)
        ax.set_title(f"along {name}", fontsize=9)
        ax.set_xlabel("eps", fontsize=8)
        ax.set_ylabel(f"{name} [{PARAMETER_UNITS.get(name) or '1'}]", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"calibration: median and 16-84 % over latent vectors, GAN {directions.gan_version}",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, path)


def inversion_panels(
    image: np.ndarray, reconstruction: np.ndarray, path: str | Path, *, title: str = ""
) -> Path:
    """Fig. 6: original, reconstruction G(z_hat) and their difference, in gauss."""
    diff = image - reconstruction
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    im = None
    for ax, data, label in zip(
        axes,
        (image, reconstruction, diff),
        ("original", "reconstruction", "difference"),
        strict=True,
    ):
        im = _draw_magnetogram(ax, data * FIELD_SCALE_G, 1000.0)
        ax.set_title(label, fontsize=9)
    rms = float(np.sqrt(np.mean(diff**2)) * FIELD_SCALE_G)
    axes[2].set_xlabel(f"RMS {rms:.1f} G", fontsize=8)
    cbar = fig.colorbar(im, ax=list(axes), shrink=0.85, pad=0.02)
    cbar.set_label(r"$B_r$ [G]")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def inversion_rows(
    images: np.ndarray,
    reconstructions: dict[str, np.ndarray],
    path: str | Path,
    *,
    labels: Sequence[str],
    residual_of: str,
    residual_vmax_gauss: float = 500.0,
) -> Path:
    """One row per patch: the patch, each method's reconstruction G(z_hat), and the residual
    patch - reconstruction of method ``residual_of``; model space (128 x 128 model px) in
    gauss, north up, west right, each kind of panel with its colour bar.

    ``images`` (n, 128, 128) and every ``reconstructions[method]`` (n, 128, 128) in b =
    B_r / 1000 G; ``labels`` names each row (n,).
    """
    n, methods = len(images), list(reconstructions)
    cols = 2 + len(methods)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols + 1.2, 2.3 * n), squeeze=False)
    field = residual = None
    for i in range(n):
        panels = [(images[i], "patch")]
        panels += [(reconstructions[m][i], f"G(z_hat), {m}") for m in methods]
        for ax, (data, title) in zip(axes[i], panels, strict=False):
            field = _draw_magnetogram(ax, data * FIELD_SCALE_G, 1000.0)
            ax.set_title(title, fontsize=8)
        diff = (images[i] - reconstructions[residual_of][i]) * FIELD_SCALE_G
        residual = _draw_magnetogram(axes[i, -1], diff, residual_vmax_gauss)
        rms = float(np.sqrt(np.mean(diff**2)))
        axes[i, -1].set_title(f"residual, {residual_of}: rms {rms:.0f} G", fontsize=8)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("model px (north up, west right)", fontsize=7)
    bar = fig.colorbar(
        field, ax=list(axes[:, :-1].flat), orientation="horizontal", fraction=0.025, pad=0.04
    )
    bar.set_label(r"$B_r$ [G] (patch and reconstructions)")
    bar = fig.colorbar(
        residual, ax=list(axes[:, -1]), orientation="horizontal", fraction=0.025, pad=0.04
    )
    bar.set_label(r"residual $B_r$ [G]")
    return _save(fig, path)
