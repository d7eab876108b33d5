"""Pictures people look at: magnetograms in gauss with a diverging scale, histograms.

Every magnetogram is drawn with ``origin='lower'`` (row index y grows northward, column x
westward, as in a CEA SHARP), on a symmetric diverging colour scale in gauss with a colour
bar, so positive (red) and negative (blue) polarity read the same in every figure.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, never windows: this runs on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch
from PIL import Image, ImageDraw, ImageFont

from sharpseek.models.augment import augment, augmentation_set
from sharpseek.models.gan import check_images
from sharpseek.physics.definitions import FIELD_SCALE, PARAMETER_UNITS
from sharpseek.physics.parameters import compute_parameters, polarity_maps
from sharpseek.science.realism import Comparison  # noqa: E402

__all__ = [
    "augmented_pairs_figure",
    "colour_bar_rgb",
    "magnetogram_grid",
    "magnetogram_panel_rgb",
    "model_panel_rgb",
    "nice_ticks",
    "pick_showcase_rows",
    "magnetogram_rgb",
    "polarity_panels",
    "polarity_rgb",
    "realism_histograms",
    "MAGNETOGRAM_CMAP",
]

MAGNETOGRAM_CMAP = "RdBu_r"
FIELD_SCALE_G = FIELD_SCALE.to_value("G")


def _draw_magnetogram(ax, image_gauss: np.ndarray, vmax_gauss: float):
    im = ax.imshow(
        image_gauss,
        origin="lower",
        cmap=MAGNETOGRAM_CMAP,
        vmin=-vmax_gauss,
        vmax=vmax_gauss,
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def magnetogram_grid(
    images: np.ndarray,
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    centroids: np.ndarray | None = None,
    ncols: int = 6,
    vmax_gauss: float = 1000.0,
    suptitle: str | None = None,
) -> Path:
    """Save a grid of model-space magnetograms, drawn in gauss with one colour bar.

    Parameters
    ----------
    images : ndarray (n, 128, 128)
        Model-space patches, b in [-1, 1] (B = 1000 G * b).
    centroids : ndarray (n, 4), optional
        ``pos_x, pos_y, neg_x, neg_y`` [model px] from the physics; drawn as the paper's
        Fig. 3 does (a cyan line between the polarity centroids) where finite.
    vmax_gauss : float
        Half-range of the symmetric colour scale [G].
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, ny, nx), got {images.shape}")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    height_in = 2.5 * nrows + 0.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols + 1.0, height_in), squeeze=False)
    # matplotlib's default top margin is 12 % of the height: 2.7 in above a 9-row grid
    fig.subplots_adjust(top=max(0.88, 1 - 0.75 / height_in))
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        im = _draw_magnetogram(ax, images[i] * FIELD_SCALE_G, vmax_gauss)
        if titles is not None:
            ax.set_title(titles[i], fontsize=6)
        if centroids is not None and np.all(np.isfinite(centroids[i])):
            px, py, nx, ny = centroids[i]
            ax.plot([px, nx], [py, ny], color="cyan", lw=1.2)
            ax.plot(px, py, "o", ms=3, color="cyan", mec="k", mew=0.4)
            ax.plot(nx, ny, "s", ms=3, color="cyan", mec="k", mew=0.4)
    if im is not None:
        cbar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        cbar.set_label(r"$B_r$ [G]")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _save(fig, path)


def realism_histograms(
    comparisons: Sequence[Comparison],
    path: str | Path,
    *,
    dataset_label: str = "synthetic",
    real_label: str = "real SHARP headers",
) -> Path:
    """Save one histogram panel per comparison, dataset against real, KS distance in the title."""
    n = len(comparisons)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False)
    for ax, c in zip(axes.flat, comparisons, strict=True):
        ours, real = c.dataset, c.real
        label = c.label
        if c.log:  # histogram the decades, so "density" means the same on every axis
            ours, real = np.log10(ours[ours > 0]), np.log10(real[real > 0])
            label = f"log10 {c.label}"
        both = np.concatenate([ours, real])
        bins = np.linspace(both.min(), both.max(), 30) if both.size else 10
        ax.hist(real, bins=bins, density=True, alpha=0.55, color="0.35", label=real_label)
        ax.hist(
            ours, bins=bins, density=True, histtype="step", lw=1.6, color="C3", label=dataset_label
        )
        ax.set_xlabel(label, fontsize=8)
        ax.set_title(f"KS = {c.ks:.2f}  (n={c.n[0]} vs {c.n[1]})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("density")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def polarity_panels(
    image: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    vmax_gauss: float = 1000.0,
) -> Path:
    """Save the paper's Fig. 3 for one patch: the magnetogram, its thresholded polarities
    with the |B|-weighted centroids joined (PSEP), and the region M where R is summed.

    Parameters
    ----------
    image : ndarray (128, 128)
        Model-space patch, b in [-1, 1].
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (ny, nx), got {image.shape}")
    params = {k: float(v[0]) for k, v in compute_parameters(image[None]).items()}
    pos, neg, region = (m[0] for m in polarity_maps(image[None]))

    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.9))
    im = _draw_magnetogram(axes[0], image * FIELD_SCALE_G, vmax_gauss)
    cbar = fig.colorbar(im, ax=axes[0], shrink=0.85)
    cbar.set_label(r"$B_r$ [G]")
    axes[0].set_title("radial field", fontsize=9)

    polarity = pos.astype(np.int8) - neg.astype(np.int8)
    axes[1].imshow(
        polarity,
        origin="lower",
        cmap=MAGNETOGRAM_CMAP,
        vmin=-1.5,
        vmax=1.5,
        interpolation="nearest",
    )
    if np.isfinite(params["psep"]):
        axes[1].plot(
            [params["pos_x"], params["neg_x"]],
            [params["pos_y"], params["neg_y"]],
            color="cyan",
            lw=1.5,
        )
        axes[1].plot(params["pos_x"], params["pos_y"], "o", color="cyan", mec="k")
        axes[1].plot(params["neg_x"], params["neg_y"], "s", color="cyan", mec="k")
    axes[1].set_title(
        f"|B| > 150 G (red +, blue -); PSEP {params['psep']:.1f} px, tilt {params['tilt']:.1f} deg",
        fontsize=8,
    )
    axes[1].set_xticks([])
    axes[1].set_yticks([])

    axes[2].imshow(
        np.where(region, np.abs(image) * FIELD_SCALE_G, np.nan),
        origin="lower",
        cmap="YlOrRd",
        vmin=0,
        vmax=vmax_gauss,
        interpolation="nearest",
    )
    axes[2].contour(pos, levels=[0.5], colors="C3", linewidths=0.6)
    axes[2].contour(neg, levels=[0.5], colors="C0", linewidths=0.6)
    axes[2].set_title(f"R region M: R = {params['r']:.3g} {PARAMETER_UNITS['r']}", fontsize=8)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    summary = ", ".join(
        f"{k.upper()} {params[k]:.3g}" for k in ("tuf", "tpf", "tnf", "sigma", "alpha", "grad")
    )
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------
# pictures as RGB arrays (no matplotlib figure): fast enough to redraw on every UI change
# ----------------------------------------------------------------------------------------------
def _lut(cmap_name: str, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colour table of a matplotlib colour map."""
    return (matplotlib.colormaps[cmap_name](np.linspace(0, 1, n))[:, :3] * 255).astype(np.uint8)


def _upscale(rgb: np.ndarray, zoom: int) -> np.ndarray:
    """Flip rows so north (large y) is up, as ``origin='lower'``, and repeat pixels."""
    rgb = rgb[::-1]
    return np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1) if zoom > 1 else rgb


def magnetogram_rgb(image: np.ndarray, *, vmax_gauss: float = 1000.0, zoom: int = 3) -> np.ndarray:
    """A model-space magnetogram as an RGB picture on the diverging gauss scale.

    The same colour scale as :func:`magnetogram_grid` (``RdBu_r``, symmetric about 0 G, red
    positive), so pictures drawn either way compare. North (row y large) is at the top.

    Parameters
    ----------
    image : ndarray (ny, nx), b in [-1, 1] (B = 1000 G * b)
    vmax_gauss : half-range of the colour scale [G]
    zoom : each model pixel becomes zoom x zoom picture pixels (nearest neighbour)

    Returns
    -------
    ndarray (zoom*ny, zoom*nx, 3) uint8
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (ny, nx), got {image.shape}")
    if vmax_gauss <= 0:
        raise ValueError(f"vmax_gauss must be > 0, got {vmax_gauss}")
    lut = _lut(MAGNETOGRAM_CMAP)
    scaled = (np.nan_to_num(image) * FIELD_SCALE_G / vmax_gauss + 1) / 2  # 0..1 over the scale
    rgb = lut[np.clip((scaled * 255).round(), 0, 255).astype(np.intp)]
    return _upscale(rgb, zoom)


def polarity_rgb(
    pos: np.ndarray,
    neg: np.ndarray,
    region: np.ndarray,
    *,
    centroids: tuple[float, float, float, float] | None = None,
    zoom: int = 3,
) -> np.ndarray:
    """The paper's Fig. 3 polarity view as one RGB picture.

    P (|B| above the polarity threshold, positive) red, N blue, the R region M (where the
    7x7-dilated P and N overlap) yellow, drawn under the polarities; the |B|-weighted
    centroids (``pos_x, pos_y, neg_x, neg_y`` [model px], from
    :func:`~sharpseek.physics.parameters.compute_parameters`) joined by a cyan line where finite.

    Parameters
    ----------
    pos, neg, region : bool arrays (ny, nx) from :func:`~sharpseek.physics.parameters.polarity_maps`

    Returns
    -------
    ndarray (zoom*ny, zoom*nx, 3) uint8
    """
    pos, neg, region = (np.asarray(m, dtype=bool) for m in (pos, neg, region))
    if not pos.shape == neg.shape == region.shape or pos.ndim != 2:
        raise ValueError(
            f"masks must share one (ny, nx) shape, got {pos.shape}, {neg.shape}, {region.shape}"
        )
    rgb = np.full((*pos.shape, 3), 245, np.uint8)
    rgb[region] = (250, 215, 60)
    rgb[pos] = (200, 30, 40)
    rgb[neg] = (30, 80, 200)
    rgb[region & (pos | neg)] = rgb[region & (pos | neg)] // 2 + np.array([125, 107, 30], np.uint8)
    if centroids is not None and np.all(np.isfinite(centroids)):
        px, py, nx, ny = (float(c) for c in centroids)
        steps = int(max(abs(nx - px), abs(ny - py)) * 2) + 2
        xs = np.clip(np.rint(np.linspace(px, nx, steps)).astype(int), 0, pos.shape[1] - 1)
        ys = np.clip(np.rint(np.linspace(py, ny, steps)).astype(int), 0, pos.shape[0] - 1)
        rgb[ys, xs] = (0, 220, 230)
        for cx, cy in ((px, py), (nx, ny)):  # a 3x3 dark-rimmed marker on each centroid
            x, y = int(round(cx)), int(round(cy))
            rgb[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = (0, 0, 0)
            rgb[y, x] = (0, 220, 230)
    return _upscale(rgb, zoom)


def flare_timeline_figure(
    catalogue, harpnum: int, t_rec, windows, path: str | Path, *, days: float = 3.0
) -> Path:
    """A HARP's flares (stems at their start, height = peak 1-8 A flux, log scale) around one
    frame, with the frame's history (grey) and outcome (orange) windows shaded; time in TAI
    hours from T_REC. ``catalogue``: a :class:`sharpseek.data.flares.FlareCatalogue`."""
    t0 = np.datetime64(t_rec, "s")
    span = np.timedelta64(int(days * 86400), "s")
    flares = catalogue.matched[catalogue.matched["harpnum"] == int(harpnum)]
    starts = flares["start_tai"].to_numpy("datetime64[s]")
    near = (starts >= t0 - span) & (starts < t0 + span)
    hours = (starts[near] - t0).astype(float) / 3600.0
    flux = flares["peak_flux"].to_numpy(float)[near]
    classes = flares["goes_class"].to_numpy()[near]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    outcome_hours = sorted(w.hours for w in windows if w.kind == "outcome")
    for w in windows:
        lo, hi = (o.astype(float) / 3600.0 for o in w.offsets())
        colour = "0.6" if w.kind == "history" else "tab:orange"
        alpha = 0.25 if w.kind == "history" or w.hours == outcome_hours[0] else 0.12
        ax.axvspan(lo, hi, color=colour, alpha=alpha, lw=0, label=f"{w.name.replace('_', ' ')}")
    ax.vlines(hours, 1e-8, flux, color="k", lw=1)
    ax.scatter(hours, flux, s=14, color="k", zorder=3)
    for h, f, c in zip(hours, flux, classes, strict=True):
        if f >= 5e-5:  # X and the larger M flares: more labels would overlap
            ax.annotate(c, (h, f), textcoords="offset points", xytext=(2, 3), fontsize=7)
    ax.axvline(0, color="tab:blue", lw=1.5, label="T_REC (the frame)")
    ax.set_yscale("log")
    ax.set_ylim(1e-7, max(1e-3, float(flux.max()) * 3 if flux.size else 1e-3))
    for letter, level in (("C", 1e-6), ("M", 1e-5), ("X", 1e-4)):
        ax.axhline(level, color="0.8", lw=0.6, zorder=0)
        ax.text(days * 24, level, f" {letter}", va="center", fontsize=8)
    ax.set_xlim(-days * 24, days * 24)
    ax.set_xlabel("hours from T_REC (TAI; flares at their GOES start)")
    ax.set_ylabel("peak 1-8 A flux [W m$^{-2}$]")
    ax.set_title(
        f"HARP {int(harpnum)}, frame {t0} TAI: flares of catalogue {catalogue.version}",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=7, ncols=2)
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------
# the magnetogram panel every page shows: picture, labelled axes and a colour bar in gauss
# ----------------------------------------------------------------------------------------------
_INK = (30, 30, 30)
_PAPER = (255, 255, 255)


@functools.lru_cache(maxsize=4)
def _font(size: int):
    return ImageFont.load_default(size=size)


def nice_ticks(length: float, *, target: int = 5) -> np.ndarray:
    """Tick values 0, step, 2 step, ... <= ``length``, step a 1-2-5 multiple of a decade chosen
    so about ``target`` ticks fall on the axis (``length`` > 0, in the axis' own unit)."""
    if not length > 0:
        raise ValueError(f"axis length must be > 0, got {length}")
    raw = length / target
    decade = 10.0 ** np.floor(np.log10(raw))
    step = next(m * decade for m in (1, 2, 5, 10) if m * decade >= raw)
    return np.arange(0.0, length + step * 1e-9, step)


def _tick_label(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def magnetogram_panel_rgb(
    image_gauss: np.ndarray,
    *,
    vmax_gauss: float = 1000.0,
    zoom: int = 3,
    pixel_size: float = 1.0,
    axis_unit: str = "model px",
    title: str = "",
) -> np.ndarray:
    """A magnetogram as a physicist reads it: B_r on the diverging gauss scale of
    :func:`magnetogram_rgb`, north up and west right, both axes labelled in ``axis_unit``
    and a colour bar in gauss on the right. Drawn with PIL (a few ms), so pages can redraw it
    on every slider move; the one magnetogram picture of the UI.

    Parameters
    ----------
    image_gauss : ndarray (ny, nx)
        B_r [G], row 0 the southern edge, column 0 the eastern edge (a CEA SHARP's layout).
    vmax_gauss : half-range of the symmetric colour scale [G]
    zoom : each pixel becomes zoom x zoom picture pixels
    pixel_size : one pixel's side in ``axis_unit`` (1 for model px; ~0.36 Mm for a CEA frame)
    axis_unit : the axes' unit, written in their labels (``"model px"``, ``"Mm"``)
    title : written above the picture

    Returns
    -------
    ndarray (height, width, 3) uint8
    """
    image_gauss = np.asarray(image_gauss, dtype=np.float32)
    if image_gauss.ndim != 2:
        raise ValueError(f"image must have shape (ny, nx), got {image_gauss.shape}")
    if not pixel_size > 0:
        raise ValueError(f"pixel_size must be > 0, got {pixel_size}")
    picture = magnetogram_rgb(image_gauss / FIELD_SCALE_G, vmax_gauss=vmax_gauss, zoom=zoom)
    ny, nx = image_gauss.shape
    height, width = picture.shape[:2]
    font, small = _font(12), _font(10)
    left, top, bottom = 46, 20 if title else 8, 36
    bar_gap, bar_width, bar_labels = 12, 14, 64
    canvas = Image.new(
        "RGB", (left + width + bar_gap + bar_width + bar_labels, top + height + bottom), _PAPER
    )
    canvas.paste(Image.fromarray(picture), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left - 1, top - 1, left + width, top + height), outline=_INK)
    if title:
        draw.text((left, 2), title, fill=_INK, font=font)
    # axes: ticks at nice values of the physical coordinate (pixel edges: 0 .. n * pixel_size)
    for value in nice_ticks(nx * pixel_size):
        x = left + value / pixel_size * zoom
        draw.line((x, top + height, x, top + height + 4), fill=_INK)
        draw.text((x, top + height + 5), _tick_label(value), fill=_INK, font=small, anchor="ma")
    for value in nice_ticks(ny * pixel_size):
        y = top + height - value / pixel_size * zoom  # north (large y) up
        draw.line((left - 5, y, left - 1, y), fill=_INK)
        draw.text((left - 7, y), _tick_label(value), fill=_INK, font=small, anchor="rm")
    draw.text(
        (left + width / 2, top + height + 19),
        f"x [{axis_unit}], west at right",
        fill=_INK,
        font=font,
        anchor="ma",
    )
    y_label = Image.new("RGB", (height, 14), _PAPER)
    ImageDraw.Draw(y_label).text(
        (height / 2, 0), f"y [{axis_unit}], north up", fill=_INK, font=font, anchor="ma"
    )
    canvas.paste(y_label.rotate(90, expand=True), (2, top))
    # the colour bar: +vmax at the top, -vmax at the bottom, ticks at 0, ±vmax/2, ±vmax
    bar_x = left + width + bar_gap
    levels = np.linspace(1.0, -1.0, height, dtype=np.float32)  # top row = +vmax
    bar = _lut(MAGNETOGRAM_CMAP)[np.clip(((levels + 1) / 2 * 255).round(), 0, 255).astype(np.intp)]
    canvas.paste(Image.fromarray(np.repeat(bar[:, None, :], bar_width, axis=1)), (bar_x, top))
    draw.rectangle((bar_x - 1, top - 1, bar_x + bar_width, top + height), outline=_INK)
    for fraction in (1.0, 0.5, 0.0, -0.5, -1.0):
        y = top + (1 - fraction) / 2 * (height - 1)
        draw.line((bar_x + bar_width, y, bar_x + bar_width + 4, y), fill=_INK)
        label = f"{fraction * vmax_gauss:+.0f}" if fraction else "0"
        draw.text((bar_x + bar_width + 6, y), label, fill=_INK, font=small, anchor="lm")
    draw.text((bar_x + bar_width + 6, top + height + 5), "B_r [G]", fill=_INK, font=font)
    return np.asarray(canvas)


def model_panel_rgb(image: np.ndarray, *, title: str = "", zoom: int = 3) -> np.ndarray:
    """:func:`magnetogram_panel_rgb` of a model-space image (ny, nx), b = B_r / 1000 G, on
    the ±1000 G scale with axes in model px."""
    return magnetogram_panel_rgb(
        np.asarray(image, dtype=np.float32) * FIELD_SCALE_G, zoom=zoom, title=title
    )


def colour_bar_rgb(*, length: int = 384, vmax_gauss: float = 1000.0) -> np.ndarray:
    """A horizontal colour bar in gauss (-vmax left, +vmax right, ticks at 0, ±vmax/2, ±vmax),
    the scale of :func:`magnetogram_rgb`: the legend of thumbnail grids drawn without axes.

    Returns
    -------
    ndarray (height, length + margins, 3) uint8
    """
    if length < 16:
        raise ValueError(f"colour bar length must be >= 16 px, got {length}")
    left, top, bar_height = 14, 4, 12
    canvas = Image.new("RGB", (left + length + 70, top + bar_height + 18), _PAPER)
    levels = np.linspace(-1.0, 1.0, length, dtype=np.float32)
    bar = _lut(MAGNETOGRAM_CMAP)[np.clip(((levels + 1) / 2 * 255).round(), 0, 255).astype(np.intp)]
    canvas.paste(Image.fromarray(np.repeat(bar[None], bar_height, axis=0)), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left - 1, top - 1, left + length, top + bar_height), outline=_INK)
    for fraction in (-1.0, -0.5, 0.0, 0.5, 1.0):
        x = left + (fraction + 1) / 2 * (length - 1)
        draw.line((x, top + bar_height, x, top + bar_height + 3), fill=_INK)
        label = f"{fraction * vmax_gauss:+.0f}" if fraction else "0"
        draw.text((x, top + bar_height + 4), label, fill=_INK, font=_font(10), anchor="ma")
    draw.text((left + length + 26, top), "B_r [G]", fill=_INK, font=_font(12))
    return np.asarray(canvas)


# ------------------------------------------------------------------ augmented pairs
def pick_showcase_rows(manifest, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` manifest rows of strong bipolar frames of different regions (for pictures):
    drawn, seeded, among the bipolar frames in the top quarter of TUF, one per HARP."""
    table = manifest[manifest["bipolar"].astype(bool)] if "bipolar" in manifest else manifest
    table = table[table["tuf"] >= table["tuf"].quantile(0.75)]
    table = table.drop_duplicates("harpnum")
    if len(table) < n:
        raise ValueError(f"only {len(table)} strong bipolar regions in the dataset, {n} asked")
    rng = np.random.default_rng(seed)
    return np.sort(manifest.index.get_indexer(table.index[rng.permutation(len(table))[:n]]))


def augmented_pairs_figure(
    images: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    sets: tuple[str, ...] = ("paper", "tilt-sensitive"),
    seed: int = 0,
) -> Path:
    """A picture of augmented pairs: each row an original patch and two views per set."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    x = x.unsqueeze(1) if x.ndim == 3 else x
    check_images(x)
    columns = [("original", x)]
    for name in sets:
        cfg = augmentation_set(name)
        g = torch.Generator().manual_seed(seed)
        columns += [(f"{name} view 1", augment(x, cfg, g)), (f"{name} view 2", augment(x, cfg, g))]
    n, m = x.shape[0], len(columns)
    fig, axes = plt.subplots(n, m, figsize=(1.9 * m + 0.8, 1.9 * n + 0.4), squeeze=False)
    im = None
    for j, (title, col) in enumerate(columns):
        for i in range(n):
            ax = axes[i, j]
            im = ax.imshow(
                col[i, 0].numpy() * 1000.0,
                origin="lower",
                cmap=MAGNETOGRAM_CMAP,
                vmin=-1000,
                vmax=1000,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    cbar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, pad=0.02)
    cbar.set_label(r"$B_r$ [G]")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
