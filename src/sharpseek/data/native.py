"""Native-scale measures of a real frame: from its data and metadata to the native parameters.

Every real frame — ingested, uploaded as a query, measured with ``sharpseek measure`` — is
measured on its own CEA grid by :func:`sharpseek.physics.native.native_parameters` (SCIENCE.md,
"Geometry of a real patch" and "JSOC's R"), beside the model-space parameters of its squashed
128 x 128 image. This module turns a frame's metadata (CDELT1, RSUN_REF, DSUN_OBS, LAT_FWT)
into that call's Quantities and its result into plain columns, and finds the line-of-sight
``magnetogram`` segment JSOC computes R_VALUE on where it lies beside a Br file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.constants import au

from sharpseek.data.fits import read_sharp
from sharpseek.physics.definitions import (
    NATIVE_PARAMETERS,
    NATIVE_UNITS,
    RSUN_REF,
    SHARP_PIXEL_SCALE,
)
from sharpseek.physics.native import native_parameters

__all__ = [
    "NATIVE_COLUMNS",
    "NATIVE_COLUMN_UNITS",
    "magnetogram_beside",
    "magnetogram_name",
    "native_columns",
]

log = logging.getLogger(__name__)

#: Columns :func:`native_columns` gives: the native parameters and the segment ``r_jsoc`` was
#: computed on (``magnetogram``, as JSOC, or ``Br``).
NATIVE_COLUMNS = (*NATIVE_PARAMETERS, "r_jsoc_segment")
#: Unit of each native column ("" = dimensionless or text).
NATIVE_COLUMN_UNITS = {**NATIVE_UNITS, "r_jsoc_segment": ""}


def magnetogram_name(br_name: str) -> str | None:
    """The file name of the ``magnetogram`` segment of the record a Br file name names.

    >>> magnetogram_name("hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits")
    'hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits'
    >>> magnetogram_name("patch.fits") is None
    True
    """
    suffix = next((s for s in (".Br.fits", ".Br.fits.gz") if br_name.endswith(s)), None)
    return None if suffix is None else br_name[: -len(suffix)] + ".magnetogram.fits"


def magnetogram_beside(path: str | Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The line-of-sight field [G] of the same record beside a JSOC-named Br file, if present.

    JSOC names segments ``<series>.<HARPNUM>.<T_REC>.<segment>.fits``: the ``magnetogram``
    beside ``....Br.fits`` is read when it exists and has the Br patch's ``shape``; otherwise
    (absent, unreadable, another shape: logged) None, and ``r_jsoc`` is computed on Br.

    >>> magnetogram_beside("/nowhere/hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits", (1, 1))
    """
    path = Path(path)
    name = magnetogram_name(path.name)
    if name is None:
        return None
    los_path = path.with_name(name)
    if not los_path.is_file():
        return None
    try:
        los = read_sharp(los_path).data
    except Exception as err:  # astropy raises many kinds for a broken file
        log.warning("magnetogram %s not read (%s): r_jsoc from Br", los_path, err)
        return None
    if los.shape != tuple(shape):
        log.warning("magnetogram %s is %s, Br %s: r_jsoc from Br", los_path, los.shape, shape)
        return None
    return los


def native_columns(
    br: np.ndarray, meta: dict[str, Any], *, los: np.ndarray | None = None
) -> dict[str, Any]:
    """The native parameters of one frame as plain numbers (NaN where undefined).

    Parameters
    ----------
    br : ndarray (ny, nx)
        Br [G] at original resolution, unclipped, NaN where off-disk or bad.
    meta : dict
        The frame's metadata: ``cdelt1`` [deg], ``rsun_ref`` [m], ``dsun_obs`` [m] and
        ``lat_fwt`` [deg] where known (SHARP's 0.03 deg, 696 Mm and 1 au otherwise).
    los : ndarray (ny, nx), optional
        The line-of-sight ``magnetogram`` [G] of the same record: ``r_jsoc`` is computed on it
        (as JSOC computes R_VALUE) and ``r_jsoc_segment`` says ``magnetogram``; else ``Br``.
    """
    lat = _number(meta.get("lat_fwt"))
    q = native_parameters(
        np.asarray(br, dtype=np.float64) * u.G,
        pixel_scale=_number(meta.get("cdelt1"), SHARP_PIXEL_SCALE.to_value(u.deg)) * u.deg,
        rsun_ref=_number(meta.get("rsun_ref"), RSUN_REF.to_value(u.m)) * u.m,
        dsun_obs=_number(meta.get("dsun_obs"), au.to_value(u.m)) * u.m,
        latitude=None if math.isnan(lat) else lat * u.deg,
        los=None if los is None else np.asarray(los, dtype=np.float64) * u.G,
    )
    columns: dict[str, Any] = {
        key: float(q[key].to_value(u.Unit(NATIVE_UNITS[key]))) for key in NATIVE_PARAMETERS
    }
    columns["r_jsoc_segment"] = "Br" if los is None else "magnetogram"
    return columns


def _number(value: Any, default: float = math.nan) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) and number != 0 else default
