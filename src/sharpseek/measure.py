"""Physical parameters of files a user has: SHARP FITS (Br) or model-space ``.npy`` arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from sharpseek.fits import read_sharp
from sharpseek.physics import MODEL_SIZE, compute_parameters, patch_quantities
from sharpseek.preprocess import to_model_space

__all__ = ["measure_files"]

SHOWN = ["tuf", "tpf", "tnf", "psep", "r", "tilt", "sigma", "alpha", "grad"]


def _is_fits(path: Path) -> bool:
    return path.suffix.lower() in (".fits", ".fit", ".fts") or path.name.endswith(".fits.gz")


def load_model_images(path: str | Path) -> tuple[list[str], np.ndarray, list[Any]]:
    """Labels, model-space images (n, 128, 128) and the SharpFile (FITS) or None per image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if _is_fits(path):
        sharp = read_sharp(path)
        return [path.name], to_model_space(sharp.data).image[None], [sharp]
    if path.suffix.lower() == ".npy":
        images = np.load(path, allow_pickle=False)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (MODEL_SIZE, MODEL_SIZE):
            raise ValueError(
                f"{path}: expected a model-space array of shape ({MODEL_SIZE}, {MODEL_SIZE}) "
                f"or (n, {MODEL_SIZE}, {MODEL_SIZE}), got {images.shape}"
            )
        labels = [f"{path.name}[{i}]" for i in range(len(images))]
        return labels, images.astype(np.float32), [None] * len(labels)
    raise ValueError(f"{path}: not a FITS or .npy file (suffix {path.suffix!r})")


def measure_files(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row of parameters per image in ``paths``.

    FITS files are read as SHARP Br segments (gauss), converted to model space as
    SCIENCE.md says, and also measured in physical units at original resolution
    (``flux_mx``, ``flux_strong_mx``, ``psep_mm``) beside JSOC's USFLUX. ``.npy`` files must
    hold model-space arrays of shape (128, 128) or (n, 128, 128).
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        labels, images, sharps = load_model_images(path)
        latitude = np.array(
            [
                np.nan if s is None or s.meta.get("lat_fwt") is None else s.meta["lat_fwt"]
                for s in sharps
            ],
            dtype=float,
        )
        params = compute_parameters(images, latitude=latitude)
        for i, (label, sharp) in enumerate(zip(labels, sharps, strict=True)):
            row: dict[str, Any] = {"file": label}
            row.update({k: float(params[k][i]) for k in SHOWN})
            if sharp is not None:
                q = patch_quantities(
                    sharp.data * u.G, pixel_scale=float(sharp.meta.get("cdelt1") or 0.03) * u.deg
                )
                row["flux_mx"] = float(q["unsigned_flux"].to_value(u.Mx))
                row["flux_strong_mx"] = float(q["unsigned_flux_strong"].to_value(u.Mx))
                row["psep_mm"] = float(q["polarity_separation"].to_value(u.Mm))
                row["usflux_jsoc_mx"] = float(sharp.meta.get("usflux") or np.nan)
            rows.append(row)
    return rows
