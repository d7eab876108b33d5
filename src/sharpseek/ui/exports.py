"""What the Export page hands out: CSV of results, .npy of images, JSOC links, URLs (its PNGs
are sharpseek's one magnetogram PNG, :func:`sharpseek.search.png_bytes`)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from sharpseek.physics import PARAMETER_UNITS, SHOWN_PARAMETERS

__all__ = ["image_npy", "results_table", "share_url"]


def results_table(
    matches: Sequence, query_params: Mapping[str, float] | None = None, *, jsoc_url: str
) -> pd.DataFrame:
    """One row per match (a :class:`~sharpseek.index.SearchHit`): identity, T_REC (TAI), NOAA
    numbers, distance, similarity, its parameters (model units, named ``<parameter>
    [<unit>]``) and its JSOC link; the query's parameters as a first row (``record_id`` =
    ``query``) when given."""
    from sharpseek.search import jsoc_url as record_url

    def unit(p: str) -> str:
        return f"{p} [{PARAMETER_UNITS[p]}]" if PARAMETER_UNITS.get(p) else p

    rows = []
    if query_params is not None:
        rows.append(
            {
                "rank": 0,
                "record_id": "query",
                **{unit(p): query_params.get(p) for p in SHOWN_PARAMETERS},
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
                "jsoc_url": record_url(m.series, m.harpnum, pd.Timestamp(m.t_rec), jsoc_url) or "",
            }
        )
    return pd.DataFrame(rows)


def image_npy(image: np.ndarray) -> bytes:
    """A model-space image (128, 128) float32, b = Br / 1000 G, as .npy bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def share_url(base: str, query: Mapping[str, str]) -> str:
    """``base`` (the app's address, without a query) with the view's query string."""
    return f"{base.split('?')[0]}?{urlencode(dict(query))}"
