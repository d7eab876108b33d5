"""Physical parameters of files a user has: SHARP FITS (Br) or model-space ``.npy`` arrays.

Two kinds of value, each named for what it is measured on (docs/physics.md):

- model space (``tuf`` .. ``grad``, ``tilt``, ``psep``, ``r``, ``joy_tilt``): the paper's
  parameters of the 128 x 128 image, which is all a generated image (or an ``.npy`` array) has;
- native (``psep_mm``, ``tilt_cea``, ``joy_tilt_cea``, ``r_jsoc``, ``flux_imbalance`` and the
  fluxes in Mx): a real SHARP measured on its own CEA grid, unclipped; null for model-space
  input, where no native grid exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from sharpseek.data.fits import read_sharp
from sharpseek.data.images import read_npy
from sharpseek.data.native import (
    NATIVE_COLUMN_UNITS,
    NATIVE_COLUMNS,
    magnetogram_beside,
    native_columns,
)
from sharpseek.data.preprocess import to_model_space
from sharpseek.physics.definitions import MODEL_SIZE, PARAMETER_UNITS, SHOWN_PARAMETERS
from sharpseek.physics.native import patch_quantities
from sharpseek.physics.parameters import compute_parameters

__all__ = ["MEASURE_UNITS", "MEASURED", "load_model_images", "measure_files"]

#: Physical-unit fluxes of a real patch and JSOC's own keywords for comparison.
_FLUXES = {
    "flux_mx": "Mx",
    "flux_strong_mx": "Mx",
    "usflux_jsoc_mx": "Mx",
    "r_value_jsoc": "",
}
#: Every value :func:`measure_files` gives for an image, in this order (after ``file`` and
#: ``space``): model space, then native, then fluxes and JSOC's keywords.
MEASURED = (*SHOWN_PARAMETERS, "joy_tilt", *NATIVE_COLUMNS, *_FLUXES)
#: Unit of each value in :data:`MEASURED` ("" = dimensionless or text).
MEASURE_UNITS: dict[str, str] = {
    **{key: PARAMETER_UNITS[key] for key in (*SHOWN_PARAMETERS, "joy_tilt")},
    **NATIVE_COLUMN_UNITS,
    **_FLUXES,
}


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
        images = read_npy(path)
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
    """One row per image in ``paths``: ``file``, ``space`` and every key of :data:`MEASURED`.

    FITS files are read as SHARP Br segments (gauss), converted to model space as SCIENCE.md
    says (model-space values), and measured on their native CEA grid, unclipped (native
    values; ``r_jsoc`` on the ``magnetogram`` segment when it lies beside the Br file, as JSOC
    computes R_VALUE), beside JSOC's USFLUX and R_VALUE. ``space`` is ``native`` for them.
    ``.npy`` files must hold model-space arrays of shape (128, 128) or (n, 128, 128): their
    native values are None (``space`` ``model``). NaN values are None.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        labels, images, sharps = load_model_images(path)
        latitude = np.array(
            [math.nan if s is None else _number(s.meta.get("lat_fwt")) for s in sharps]
        )
        params = compute_parameters(images, latitude=latitude)
        for i, (label, sharp) in enumerate(zip(labels, sharps, strict=True)):
            row: dict[str, Any] = dict.fromkeys(("file", "space", *MEASURED))
            row.update(file=label, space="model" if sharp is None else "native")
            row.update({key: float(params[key][i]) for key in (*SHOWN_PARAMETERS, "joy_tilt")})
            if sharp is not None:
                row.update(_native_row(sharp))
            rows.append({key: _json_value(value) for key, value in row.items()})
    return rows


def _native_row(sharp) -> dict[str, Any]:
    meta = {**sharp.meta, "dsun_obs": sharp.header.get("DSUN_OBS")}
    q = patch_quantities(
        sharp.data * u.G,
        pixel_scale=(_number(meta.get("cdelt1")) or 0.03) * u.deg,
        rsun_ref=(_number(meta.get("rsun_ref")) or 6.96e8) * u.m,
    )
    los = magnetogram_beside(sharp.path, sharp.data.shape)
    return {
        **native_columns(sharp.data, meta, los=los),
        "flux_mx": float(q["unsigned_flux"].to_value(u.Mx)),
        "flux_strong_mx": float(q["unsigned_flux_strong"].to_value(u.Mx)),
        "usflux_jsoc_mx": _number(meta.get("usflux")),
        "r_value_jsoc": _number(meta.get("r_value")),
    }


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _json_value(value: Any) -> Any:
    """NaN as None (JSON null: undefined or not measured)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
