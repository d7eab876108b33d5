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


def measure_files(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row of parameters per image in ``paths``.

    FITS files are read as SHARP Br segments (gauss), converted to model space as
    SCIENCE.md says, and also measured in physical units at original resolution
    (``flux_mx``, ``flux_strong_mx``, ``psep_mm``). ``.npy`` files must hold model-space
    arrays of shape (128, 128) or (n, 128, 128).
    """
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix in (".fits", ".fit", ".fts") or path.name.endswith(".fits.gz"):
            sharp = read_sharp(path)
            image = to_model_space(sharp.data).image[None]
            lat = sharp.meta.get("lat_fwt")
            params = compute_parameters(image, latitude=None if lat is None else np.array([lat]))
            q = patch_quantities(
                sharp.data * u.G, pixel_scale=float(sharp.meta.get("cdelt1") or 0.03) * u.deg
            )
            row = {"file": path.name}
            row.update({k: float(params[k][0]) for k in SHOWN})
            row["flux_mx"] = float(q["unsigned_flux"].to_value(u.Mx))
            row["flux_strong_mx"] = float(q["unsigned_flux_strong"].to_value(u.Mx))
            row["psep_mm"] = float(q["polarity_separation"].to_value(u.Mm))
            row["usflux_jsoc_mx"] = float(sharp.meta.get("usflux") or np.nan)
            rows.append(row)
        elif suffix == ".npy":
            images = np.load(path, allow_pickle=False)
            if images.ndim == 2:
                images = images[None]
            if images.ndim != 3 or images.shape[1:] != (MODEL_SIZE, MODEL_SIZE):
                raise ValueError(
                    f"{path}: expected a model-space array of shape ({MODEL_SIZE}, {MODEL_SIZE}) "
                    f"or (n, {MODEL_SIZE}, {MODEL_SIZE}), got {images.shape}"
                )
            params = compute_parameters(images.astype(np.float32))
            for i in range(len(images)):
                row = {"file": f"{path.name}[{i}]"}
                row.update({k: float(params[k][i]) for k in SHOWN})
                rows.append(row)
        else:
            raise ValueError(f"{path}: not a FITS or .npy file (suffix {path.suffix!r})")
    return rows
