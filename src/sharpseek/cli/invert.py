"""``sharpseek invert``: find the latent vector of a real SHARP (or a model-space .npy) and
picture the GAN's reconstruction beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sharpseek.cli.common import (
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    settings_from,
)
from sharpseek.cli.served import (
    console,
    fail,
    figure_path,
    load_generator,
)

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).


def invert_cmd(
    file: Annotated[Path, typer.Argument(help="a SHARP Br FITS file, or a model-space .npy")],
    starts: Annotated[
        int | None, typer.Option(min=1, help="latent vectors refined together")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, help="L-BFGS iterations (Adam steps with method adam)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the starts")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="PNG (default: figures dir)")] = None,
    save_z: Annotated[Path | None, typer.Option("--save-z", help="write z_hat as .npy")] = None,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Find the latent vector whose generated image best matches FILE (GAN inversion); write
    original / reconstruction / difference as a PNG."""
    from sharpseek.science.inversion import invert_configured, representation_warning

    settings = settings_from(preset, home)
    cfg = settings.directions
    image, mu = _read_image(file)
    _, model = load_generator(settings)
    started = time.perf_counter()
    try:
        result = invert_configured(
            model, image, cfg, seed=seed, progress=progress, starts=starts, steps=steps
        )
    except ValueError as err:
        raise fail(f"{file}: {err}") from None
    seconds = time.perf_counter() - started
    where = f" at mu = {mu:.3f}" if mu is not None else ""
    console.print(
        f"{file.name}{where}: reconstruction RMS {result.rms_gauss:.1f} G, "
        f"{result.relative_error:.0%} of the patch's rms (best of {len(result.errors)} starts; "
        f"worst {np.sqrt(result.errors.max()) * 1000:.1f} G; {seconds:.1f} s)"
    )
    warning = representation_warning(result, cfg)
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    if file.suffix.lower() in (".fits", ".fit", ".fts"):  # a real frame: its native values
        from sharpseek.physics.parameters import compute_parameters
        from sharpseek.science.measure import measure_files
        from sharpseek.ui.exports import summary

        rebuilt = {
            k: float(v[0]) for k, v in compute_parameters(result.reconstruction[None]).items()
        }
        console.print(f"the real patch: {summary(measure_files([file])[0])}", soft_wrap=True)
        console.print(f"its reconstruction (generated): {summary(rebuilt)}", soft_wrap=True)
    path = figure_path(settings, out, f"invert-{file.stem}.png")
    _inversion_png(image, result.reconstruction, path, title=f"{file.name}{where}")
    console.print(f"picture: {path}")
    if save_z is not None:
        np.save(save_z, result.z)
        console.print(f"z_hat: {save_z}")


def _read_image(file: Path) -> tuple[np.ndarray, float | None]:
    """Model-space (128, 128) image of FILE and, for a SHARP, its mu (else None)."""
    from sharpseek.physics.definitions import MODEL_SIZE

    if not file.is_file():
        raise fail(f"{file}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        from sharpseek.data.images import read_npy

        try:
            image = read_npy(file)
        except ValueError as err:
            raise fail(str(err)) from None
        if image.shape != (MODEL_SIZE, MODEL_SIZE) or not np.isfinite(image).all():
            raise fail(
                f"{file}: a .npy must hold a finite model-space ({MODEL_SIZE}, {MODEL_SIZE}) "
                f"image (b = B_r / 1000 G in [-1, 1]); got shape {image.shape}"
            )
        return image.astype(np.float32), None
    if suffix not in (".fits", ".fit", ".fts"):
        raise fail(f"{file}: expected a .fits SHARP Br segment or a .npy model-space image")
    from sharpseek.data.fits import read_sharp
    from sharpseek.data.preprocess import heliocentric_mu, to_model_space

    try:
        sharp = read_sharp(file)
        patch = to_model_space(sharp.data)
    except (OSError, ValueError, KeyError) as err:
        raise fail(f"{file}: cannot read a Br image ({err})") from None
    meta = sharp.meta
    lat = meta.get("lat_fwt")
    lon = meta.get("lon_fwt")
    if lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
        lat = meta.get("crval2")
        lon = (meta.get("crval1") or np.nan) - (meta.get("crln_obs") or np.nan)
    b0 = meta.get("crlt_obs") or 0.0
    mu = heliocentric_mu(lat, lon, b0) if lat is not None else None
    return patch.image, (float(mu) if mu is not None and np.isfinite(mu) else None)


def _inversion_png(image: np.ndarray, reconstruction: np.ndarray, path: Path, title: str):
    from sharpseek.science.directions_plots import inversion_panels

    return inversion_panels(image, reconstruction, path, title=title)
