"""Reading SHARP FITS files as JSOC exports them.

A SHARP segment file is Rice tile-compressed: the image is HDU 1 (a ``CompImageHDU``) behind an
empty primary HDU; a bitmap is an uncompressed primary image. Older headers (2011-2014) carry
non-standard cards (``R_VALUE = nan``, lower-case exponents), so every header is passed
through ``verify('silentfix')`` before it is read.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["SharpFile", "read_sharp", "parse_t_rec", "SHARP_SERIES"]

SHARP_SERIES = ("hmi.sharp_cea_720s", "hmi.sharp_cea_720s_nrt")

# FITS keyword -> metadata field, as SCIENCE.md "Data" lists them (plus USFLUX, R_VALUE).
KEYWORDS: dict[str, str] = {
    "HARPNUM": "harpnum",
    "NOAA_AR": "noaa_ar",
    "NOAA_ARS": "noaa_ars",
    "QUALITY": "quality",
    "NAXIS1": "naxis1",
    "NAXIS2": "naxis2",
    "CDELT1": "cdelt1",
    "RSUN_REF": "rsun_ref",
    "LAT_FWT": "lat_fwt",
    "LON_FWT": "lon_fwt",
    "CRVAL1": "crval1",
    "CRVAL2": "crval2",
    "CRLN_OBS": "crln_obs",
    "CRLT_OBS": "crlt_obs",
    "USFLUX": "usflux",
    "R_VALUE": "r_value",
}


@dataclass(frozen=True)
class SharpFile:
    """One SHARP segment read from FITS.

    Attributes
    ----------
    data : ndarray (ny, nx) float64
        The segment as stored (Br in gauss for the ``Br`` segment; NaN off-disk).
    meta : dict
        The metadata fields of SCIENCE.md "Data" (lower-case names), plus ``series`` and
        ``t_rec`` (naive datetime, TAI).
    header : astropy.io.fits.Header
        The full, silently fixed header.
    """

    path: Path
    data: np.ndarray
    meta: dict[str, Any]
    header: fits.Header


def parse_t_rec(value: str) -> datetime:
    """Parse a JSOC T_REC such as ``2014.01.31_02:48:00_TAI`` into a naive TAI datetime."""
    text = value.strip().removesuffix("_TAI")
    for fmt in ("%Y.%m.%d_%H:%M:%S", "%Y.%m.%d_%H:%M", "%Y.%m.%d_%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"T_REC {value!r} is not in JSOC's form YYYY.MM.DD_hh:mm:ss_TAI")


def read_sharp(path: str | Path) -> SharpFile:
    """Read one SHARP segment file (Br, magnetogram, bitmap, ...) with its metadata."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)
            warnings.simplefilter("ignore", AstropyUserWarning)
            with fits.open(path) as hdul:
                hdu = next((h for h in hdul if h.data is not None and h.data.ndim == 2), None)
                if hdu is None:
                    raise ValueError(f"{path}: no 2-D image HDU found")
                hdu.verify("silentfix")
                header = hdu.header.copy()
                data = np.asarray(hdu.data, dtype=np.float64)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (OSError, TypeError, ValueError, IndexError, EOFError, MemoryError) as err:
        # astropy's own words for a truncated file, a header claiming more data than the
        # file holds (TypeError: buffer is too small), or a file that is no FITS at all
        if str(err).startswith(str(path)):
            raise
        raise ValueError(
            f"{path}: not a readable FITS image ({type(err).__name__}: {err})"
        ) from None
    meta: dict[str, Any] = {}
    for key, name in KEYWORDS.items():
        meta[name] = _keyword_value(header.get(key))
    meta["naxis1"], meta["naxis2"] = data.shape[1], data.shape[0]
    meta["t_rec"] = parse_t_rec(header["T_REC"]) if "T_REC" in header else None
    meta["series"] = _series_from_name(path.name)
    return SharpFile(path=path, data=data, meta=meta, header=header)


def _keyword_value(value: Any) -> Any:
    """A header value as Python: old JSOC headers write missing numbers as a bare ``nan``,
    which astropy's silentfix leaves as the string 'nan'."""
    if isinstance(value, str) and value.strip().lower() in ("nan", "-nan"):
        return float("nan")
    if isinstance(value, float) and math.isnan(value):
        return float("nan")
    return value


def _series_from_name(name: str) -> str:
    # JSOC names exports <series>.<HARPNUM>.<T_REC>.<segment>.fits
    for series in sorted(SHARP_SERIES, key=len, reverse=True):
        if name.startswith(series + "."):
            return series
    return "hmi.sharp_cea_720s"
