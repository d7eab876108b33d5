"""What the Export page hands out: CSV of results, .npy of images, JSOC links, URLs (its PNGs
are sharpseek's one magnetogram PNG, :func:`sharpseek.data.images.png_bytes`)."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from sharpseek.data.flare_windows import flare_columns, flare_summary
from sharpseek.physics.definitions import (
    BASELINE_PARAMETERS,
    CARD_NATIVE_PARAMETERS,
    NATIVE_PARAMETERS,
    NATIVE_UNITS,
    PARAMETER_UNITS,
    POSITION_FIELDS,
    SHOWN_PARAMETERS,
)
from sharpseek.search.results import jsoc_url as record_url

__all__ = ["export_stem", "has_native", "image_npy", "results_table", "share_url", "summary"]


def has_native(values: Mapping[str, Any]) -> bool:
    """Whether ``values`` (a payload, a query's parameters) hold native-scale measures: a real
    frame measured on its CEA grid (``r_jsoc`` is a number for every such frame)."""
    return math.isfinite(_number(values.get("r_jsoc")))


def summary(values: Mapping[str, Any]) -> str:
    """The short, labelled summary of a frame or query (the UI's result cards): each value
    with its unit, to 3 significant digits.

    A real frame (:func:`has_native`) is summarised first by its native values
    (:data:`~sharpseek.physics.definitions.CARD_NATIVE_PARAMETERS`, with the segment JSOC's R was computed
    on), then by the model-space baseline (TUF, R, PSEP of the 128x128 image, in the units of
    docs/physics.md); anything else — a generated image — by the model-space baseline alone.
    Where the frame's disk position is known (``mu``, ``lat_fwt``, ``lon_fwt``), it follows.

    >>> summary({"tuf": 1.25e6, "r": 2.4e5, "psep": 29.4, "psep_mm": 56.95, "tilt_cea": 17.31,
    ...          "r_jsoc": 4.627, "r_jsoc_segment": "magnetogram", "mu": 0.934,
    ...          "lat_fwt": -12.25, "lon_fwt": 20.1})
    'native CEA grid: psep_mm 57.0 Mm, tilt_cea 17.3 deg, r_jsoc 4.63 (magnetogram); model space: TUF 1.25e+06 G px, R 2.40e+05 G px, PSEP 29.4 model px; position: mu 0.934, lat -12.2 deg, lon 20.1 deg'
    >>> summary({"tuf": 1.25e6, "r": 2.4e5, "psep": 29.4})
    'model space: TUF 1.25e+06 G px, R 2.40e+05 G px, PSEP 29.4 model px'
    """  # noqa: E501
    model = "model space: " + ", ".join(
        _quantity(p.upper(), values.get(p), PARAMETER_UNITS[p]) for p in BASELINE_PARAMETERS
    )
    position = ", ".join(
        _quantity(label, values.get(key), POSITION_FIELDS[key][0])
        for key, label in (("mu", "mu"), ("lat_fwt", "lat"), ("lon_fwt", "lon"))
        if math.isfinite(_number(values.get(key)))
    )
    where = f"; position: {position}" if position else ""
    if not has_native(values):
        return model + where
    parts = [_quantity(p, values.get(p), NATIVE_UNITS[p]) for p in CARD_NATIVE_PARAMETERS]
    segment = values.get("r_jsoc_segment")
    native = "native CEA grid: " + ", ".join(parts) + (f" ({segment})" if segment else "")
    return f"{native}; {model}{where}"


def _quantity(label: str, value: Any, unit: str) -> str:
    """``label value unit``, the value to 3 significant digits (``nan`` where missing)."""
    return f"{label} {_number(value):#.3g} {unit}".rstrip()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def results_table(
    matches: Sequence, query_params: Mapping[str, float] | None = None, *, jsoc_url: str
) -> pd.DataFrame:
    """One row per match (a :class:`~sharpseek.search.index.SearchHit`): identity, T_REC (TAI), NOAA
    numbers, distance, similarity, its model-space parameters (named ``<parameter>
    [<unit>]``), its native-scale ones (``psep_mm [Mm]``, ``tilt_cea [deg]``, ...,
    ``r_jsoc_segment``; empty for a generated query), its disk position (``mu``,
    ``lat_fwt [deg]``, ``lon_fwt [deg]``) and its JSOC link; the query's parameters
    as a first row (``record_id`` = ``query``) when given."""
    units = {**PARAMETER_UNITS, **NATIVE_UNITS, **{k: u for k, (u, _) in POSITION_FIELDS.items()}}

    def unit(p: str) -> str:
        return f"{p} [{units[p]}]" if units.get(p) else p

    shown = (*SHOWN_PARAMETERS, *NATIVE_PARAMETERS, "r_jsoc_segment")

    rows = []
    if query_params is not None:
        rows.append(
            {
                "rank": 0,
                "record_id": "query",
                **{unit(p): query_params.get(p) for p in shown},
            }
        )
    for rank, m in enumerate(matches, start=1):
        rows.append(
            {
                "rank": rank,
                "record_id": m.record_id,
                "series": m.series,
                "harpnum": m.harpnum,
                "t_rec_tai": pd.Timestamp(m.t_rec).isoformat() if m.t_rec is not None else "",
                "noaa_ars": " ".join(str(n) for n in m.noaa_ars),
                "distance": m.distance,
                "similarity": m.similarity,
                **{unit(p): m.parameter(p) for p in SHOWN_PARAMETERS},
                **{unit(p): m.parameter(p) for p in NATIVE_PARAMETERS},
                "r_jsoc_segment": m.payload.get("r_jsoc_segment"),
                **{unit(k): m.parameter(k) for k in POSITION_FIELDS},
                "jsoc_url": record_url(m.series, m.harpnum, pd.Timestamp(m.t_rec), jsoc_url) or "",
                # what happened around T_REC (labels, never features of the frame)
                "flares": flare_summary(m.payload),
                **{k: m.payload.get(k) for k in flare_columns(m.payload)},
            }
        )
    return pd.DataFrame(rows)


def export_stem(
    *,
    seed: int | None = None,
    shifts: Mapping[str, float] | None = None,
    series: str | None = None,
    harpnum: int | None = None,
    t_rec: Any = None,
    segment: str = "Br",
    fallback: str = "image",
    inverted: bool = False,
) -> str:
    """The file name (without extension) of an exported image, saying what it holds.

    A real frame is named as JSOC names its segment files (``series.HARPNUM.T_REC_TAI.segment``),
    a generated image by its seed; ``inverted``: the image is the GAN's reconstruction of that
    frame (G(z_hat), a generated image), so ``-gan`` follows the frame's name; the latent
    shifts applied follow, one ``-<parameter><signed shift>`` each; anything else (an upload
    with no header) keeps ``fallback`` (its file's stem), made safe for a file name.

    >>> export_stem(seed=3, shifts={"tuf": 1.5})
    'seed3-tuf+1.5'
    >>> export_stem(series="hmi.sharp_cea_720s", harpnum=7115, t_rec="2017-09-06 12:00")
    'hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br'
    >>> export_stem(fallback="upload my patch.npy", shifts={"r": -2, "psep": 0})
    'upload_my_patch-r-2'
    >>> export_stem(series="hmi.sharp_cea_720s", harpnum=7115, t_rec="2017-09-06 12:00",
    ...             inverted=True, shifts={"tuf": 1})
    'hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br-gan-tuf+1'
    """
    if series and harpnum is not None and t_rec is not None and not pd.isna(t_rec):
        stem = f"{series}.{int(harpnum)}.{pd.Timestamp(t_rec):%Y%m%d_%H%M%S}_TAI.{segment}"
    elif seed is not None:
        stem = f"seed{int(seed)}"
    else:
        name = fallback.rsplit("/", 1)[-1]
        name = name.rsplit(".", 1)[0] if "." in name else name
        stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "image"
    moved = "".join(f"-{p}{v:+g}" for p, v in (shifts or {}).items() if v)
    return stem + ("-gan" if inverted and seed is None else "") + moved


def image_npy(image: np.ndarray) -> bytes:
    """A model-space image (128, 128) float32, b = Br / 1000 G, as .npy bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def share_url(base: str, query: Mapping[str, str]) -> str:
    """``base`` (the app's address, without a query) with the view's query string."""
    return f"{base.split('?')[0]}?{urlencode(dict(query))}"
