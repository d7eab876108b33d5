"""One frame -> one dataset record: the conversion every ingest source shares.

:func:`frame_to_record` turns a frame (Br in gauss at original resolution plus SHARP
metadata) into a :class:`~sharpseek.data.dataset.PatchRecord`: model-space conversion,
physical-unit quantities at original resolution, mu, data-quality flags.
:func:`model_space_annotator` is the per-shard model-space physics the dataset writer adds.
"""

from __future__ import annotations

import math
from typing import Any

import astropy.units as u
import numpy as np

from sharpseek.config import Settings
from sharpseek.data.dataset import PatchRecord
from sharpseek.data.exclusion import EXCLUDED_COLUMN, exclusion_reasons, exclusion_rule
from sharpseek.data.native import native_columns
from sharpseek.data.preprocess import (
    heliocentric_mu,
    to_model_space,
)
from sharpseek.physics.native import patch_quantities
from sharpseek.physics.parameters import compute_parameters

__all__ = [
    "DATASET_SCHEMA",
    "FIELD_UNITS",
    "USFLUX_RATIO_RANGE",
    "data_quality_flags",
    "derive_mu",
    "frame_to_record",
    "model_space_annotator",
]

#: Bump when the dataset's columns or the preprocessing change, so old versions are not reused.
DATASET_SCHEMA = 1
#: Our flux above 100 G over JSOC's USFLUX outside this range flags the record (measured on
#: the real samples: 1.0-4.1; USFLUX uses JSOC's own strong-field mask).
USFLUX_RATIO_RANGE = (0.5, 6.0)
#: BUNIT values of a field strength that JSOC and others write (Mx/cm^2 is a gauss).
FIELD_UNITS = u.G


def frame_to_record(
    br: np.ndarray,
    meta: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    los: np.ndarray | None = None,
):
    """One frame (Br [G], ny x nx, original resolution) -> a :class:`PatchRecord`.

    Adds the resize scales; the physical-unit quantities of SCIENCE.md at original
    resolution: ``flux_mx`` (all pixels), ``flux_strong_mx`` (|Br| > 100 G),
    ``flux_positive_mx``, ``flux_negative_mx``; the native-scale parameters of
    :func:`sharpseek.data.native.native_columns` (``psep_mm``, ``tilt_cea``, ``joy_tilt_cea``,
    ``r_jsoc`` on ``los`` when given, ``flux_imbalance``, ``r_jsoc_segment``), all from the
    unclipped field; ``mu`` when the metadata lack it; and ``dq_flags`` where JSOC's own
    keywords disagree strongly with ours.
    """
    meta = dict(meta)
    patch = to_model_space(br)
    quantities = patch_quantities(
        np.asarray(br) * u.G,
        pixel_scale=float(meta.get("cdelt1") or 0.03) * u.deg,
        rsun_ref=float(meta.get("rsun_ref") or 6.96e8) * u.m,
    )
    if meta.get("mu") is None:
        meta["mu"] = derive_mu(meta)
    columns = {
        "scale_x": patch.scale_x,
        "scale_y": patch.scale_y,
        "nan_fraction": patch.nan_fraction,
        "flux_mx": quantities["unsigned_flux"].to_value(u.Mx),
        "flux_strong_mx": quantities["unsigned_flux_strong"].to_value(u.Mx),
        "flux_positive_mx": quantities["positive_flux"].to_value(u.Mx),
        "flux_negative_mx": quantities["negative_flux"].to_value(u.Mx),
        **native_columns(br, meta, los=los),
    }
    columns["dq_flags"] = ",".join(data_quality_flags(meta, columns))
    if extra:
        columns.update(extra)
    return PatchRecord(image=patch.image, meta=meta, columns=columns)


def derive_mu(meta: dict[str, Any]) -> float:
    """mu = cos(heliocentric angle) of the patch centre (SCIENCE.md "Data"): from LAT_FWT and
    LON_FWT, falling back to CRVAL2 and CRVAL1 - CRLN_OBS; B0 = CRLT_OBS. NaN if unknown."""

    def number(key: str) -> float:
        return _float(meta.get(key))

    lat, lon = number("lat_fwt"), number("lon_fwt")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        lat, lon = number("crval2"), number("crval1") - number("crln_obs")
    b0 = number("crlt_obs")
    if not math.isfinite(b0):
        b0 = 0.0
    return float(heliocentric_mu(lat, lon, b0))


def data_quality_flags(meta: dict[str, Any], columns: dict[str, Any]) -> list[str]:
    """Where JSOC's keywords disagree strongly with what we measure (names of flags)."""
    flags = []
    usflux = _float(meta.get("usflux"))
    if math.isfinite(usflux) and usflux > 0:
        ratio = columns["flux_strong_mx"] / usflux
        lo, hi = USFLUX_RATIO_RANGE
        if not lo <= ratio <= hi:
            flags.append(f"usflux_ratio={ratio:.2g}")
    if columns["nan_fraction"] > 0.5:
        flags.append("mostly_nan")
    return flags


def model_space_annotator(settings: Settings):
    """The per-shard annotation: the batched physics of :mod:`sharpseek.physics.parameters`."""

    def annotate(images: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        latitude = np.array([_float(r.get("lat_fwt")) for r in rows], dtype=np.float64)
        params = compute_parameters(
            images, latitude=latitude, chunk_size=settings.physics_chunk_size
        )
        out = {k: np.asarray(v) for k, v in params.items()}
        # which frames training and the index leave out (sharpseek.data.exclusion)
        out[EXCLUDED_COLUMN] = exclusion_reasons(
            [_float(r.get("nan_fraction")) for r in rows],
            [_float(r.get("mu")) for r in rows],
            **exclusion_rule(settings),
        )
        return out

    return annotate


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
