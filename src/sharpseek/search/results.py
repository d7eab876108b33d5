"""A query and its matches as the user sees them: the :class:`Query` (image, parameters, region,
what it is), the hits as a table with the query's and the match's parameters side by side
(:func:`hits_frame`), the table as JSON (:func:`results_to_json`, ``sharpseek search --json``),
and the JSOC link of a record (:func:`jsoc_url`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from sharpseek.data.flare_windows import FLARE_COLUMN, flare_columns, flare_summary
from sharpseek.physics.definitions import NATIVE_PARAMETERS, SHOWN_PARAMETERS
from sharpseek.search.index import (
    SearchHit,
)

__all__ = ["Query", "hits_frame", "jsoc_url", "results_to_json"]

# ---------------------------------------------------------------------------------------------
# links, baselines, filters on tables


def jsoc_url(
    series: str, harpnum: int, t_rec: Any, base: str = "http://jsoc.stanford.edu/"
) -> str | None:
    """A link to the record at JSOC (its LookData page), or None for a synthetic record.

    >>> jsoc_url("hmi.sharp_cea_720s", 377, pd.Timestamp("2011-02-15 01:36"))
    'http://jsoc.stanford.edu/ajax/lookdata.html?ds=hmi.sharp_cea_720s%5B377%5D%5B2011.02.15_01%3A36%3A00_TAI%5D'
    """
    if not str(series).startswith("hmi."):
        return None
    spec = f"{series}[{int(harpnum)}][{pd.Timestamp(t_rec):%Y.%m.%d_%H:%M:%S}_TAI]"
    return f"{base.rstrip('/')}/ajax/lookdata.html?ds={quote(spec, safe='.')}"


# ---------------------------------------------------------------------------------------------
# queries


@dataclass
class Query:
    """A search query: an embedding, and the active region it stands for.

    Attributes
    ----------
    vector : ndarray (dim,) float32
        The SimSiam embedding.
    encoder_version : str
        The encoder that made ``vector``; the live collection must hold the same.
    kind : "latent", "image" or "record"
    description : str
        What it is, e.g. ``seed 7, tuf +2.0`` or the file name or record id.
    image : ndarray (128, 128) or None
        The model-space image (None for a record query whose image is not at hand).
    parameters : dict
        Its physical parameters: model space (:data:`sharpseek.physics.definitions.SHOWN_PARAMETERS`
        and more) and, for a real frame (a FITS file, an indexed record), the native ones.
    region : str or None
        For a record query, its region (left out of the results by default).
    latent : ndarray or None
        For a latent query, z after the shifts.
    t_rec : Timestamp or None
        For a record query, its T_REC (naive TAI): the look-alike outlook counts only
        neighbours whose outcome had closed by then.
    space : str
        The embedding space of ``vector`` and of the indexed vectors it is compared with
        (:mod:`sharpseek.search.spaces`): ``region`` for real queries, the settings'
        ``retrieval.generated_space`` for generated ones.
    generated : bool
        The image came from the generator (a seed, a shift, a generated PNG): its nearest
        regions are re-ranked by their picture (:mod:`sharpseek.search.picture`).
    """

    vector: np.ndarray
    encoder_version: str
    kind: str
    description: str
    image: np.ndarray | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    region: str | None = None
    latent: np.ndarray | None = None
    t_rec: pd.Timestamp | None = None
    space: str = "region"
    generated: bool = False


def hits_frame(query: Query, hits: Sequence[SearchHit], *, jsoc_base: str) -> pd.DataFrame:
    """Search hits as the table :meth:`Searcher.search` returns (its columns), best first,
    with the query's parameters beside each match's; ``attrs["query"]`` describes the query.
    ``jsoc_base`` is the JSOC server of the links (``settings.jsoc.server_url``).
    """
    rows = []
    for rank, hit in enumerate(hits, start=1):
        p = hit.payload
        row = {
            "rank": rank,
            "record_id": hit.record_id,
            "series": p.get("series"),
            "harpnum": hit.harpnum,
            "region": hit.region,
            "t_rec": pd.Timestamp(hit.t_rec),
            "noaa_ars": hit.noaa_ars,
            "distance": hit.distance,
            "lat_fwt": hit.parameter("lat_fwt"),
            "lon_fwt": hit.parameter("lon_fwt"),
            "mu": hit.parameter("mu"),
            "jsoc_url": jsoc_url(str(p.get("series")), hit.harpnum, hit.t_rec, jsoc_base),
            "dataset_version": p.get("dataset_version"),
        }
        row["match_r_jsoc_segment"] = p.get("r_jsoc_segment")
        # flare history and outcome (labels of what happened around T_REC, never features)
        row["flares"] = flare_summary(p)
        for key in flare_columns(p):
            row[key] = p.get(key)
        for name in _ALL_SHOWN:
            row[f"query_{name}"] = _float(query.parameters.get(name))
            row[f"match_{name}"] = hit.parameter(name)
        rows.append(row)
    flare_fields = sorted({k for row in rows for k in row if FLARE_COLUMN.match(k)})
    columns = _columns()
    at = columns.index("dataset_version") + 1
    columns = [*columns[:at], "flares", *flare_fields, *columns[at:]]
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["query"] = _describe(query)
    return frame


#: Query and match side by side: the model-space parameters (all a generated query has) and
#: the native-scale ones of a real frame (NaN for a generated query).
_ALL_SHOWN = (*SHOWN_PARAMETERS, *NATIVE_PARAMETERS)


def results_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """A search result as plain JSON: ``{"query": {...}, "results": [...]}`` with each match's
    parameters under ``query`` and ``match`` side by side."""
    results = []
    for _, row in frame.iterrows():
        item = {
            key: _plain(row[key])
            for key in frame.columns
            if not key.startswith(("query_", "match_"))
        }
        item["r_jsoc_segment"] = _plain(row.get("match_r_jsoc_segment"))
        item["parameters"] = {
            name: {
                "query": _plain(row[f"query_{name}"]),
                "match": _plain(row[f"match_{name}"]),
                "space": "model" if name in SHOWN_PARAMETERS else "native",
            }
            for name in _ALL_SHOWN
            if f"query_{name}" in row
        }
        results.append(item)
    return {"query": frame.attrs.get("query", {}), "results": results}


# ---------------------------------------------------------------------------------------------
def _columns() -> list[str]:
    base = [
        "rank", "record_id", "series", "harpnum", "region", "t_rec", "noaa_ars", "distance",
        "lat_fwt", "lon_fwt", "mu", "jsoc_url", "dataset_version",
    ]  # fmt: skip
    base.append("match_r_jsoc_segment")
    for name in _ALL_SHOWN:
        base += [f"query_{name}", f"match_{name}"]
    return base


def _describe(query: Query) -> dict[str, Any]:
    return {
        "kind": query.kind,
        "description": query.description,
        "encoder_version": query.encoder_version,
        "space": query.space,
        "parameters": {k: _plain(query.parameters.get(k)) for k in _ALL_SHOWN},
        "r_jsoc_segment": query.parameters.get("r_jsoc_segment"),
    }


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
