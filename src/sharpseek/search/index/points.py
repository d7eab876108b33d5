"""Points of the index: ids, payloads and vectors built from manifest rows.

A point is one SHARP frame (or synthetic frame):

- its **id** is ``uuid5(RECORD_NAMESPACE, record_id)`` with ``record_id`` =
  ``series:HARPNUM:T_REC`` (:func:`sharpseek.data.dataset.record_id`), so re-adding a record
  overwrites the same point (idempotent) and a synthetic record (series ``synthetic``) can
  never take the id of a real one;
- its **vector** is the SimSiam embedding (the 100-d projection output, SCIENCE.md), or one
  per space of the collection (:mod:`sharpseek.search.index.named_vectors`);
- its **payload** is the manifest row: identity, T_REC as an RFC 3339 datetime, NOAA numbers
  (``noaa_ar`` as JSOC gives it, 0 = none; ``noaa_ars`` as a list of ints), position (LAT_FWT,
  LON_FWT, mu), QUALITY, every physical parameter in model space and in physical units, plus
  ``region``, ``dataset_version`` and ``encoder_version``.

Values NaN or +-inf are stored as null (JSON has neither): a range filter never matches a
null, so a frame whose PSEP is unknown (not bipolar) is never returned by a PSEP range.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES
from sharpseek.search.index.named_vectors import DEFAULT_SPACES, SpaceVectors, vectors_by_space

__all__ = [
    "FIELD_KINDS",
    "INDEXED_FIELDS",
    "NOT_PAYLOAD",
    "RECORD_NAMESPACE",
    "Points",
    "build_points",
    "point_id",
    "region_key",
    "rfc3339",
]

FieldKind = Literal["float", "integer", "datetime", "keyword"]

#: Kinds of payload index. Booleans are deliberately absent: qdrant-edge-py 0.9.0 turns
#: ``MatchValue(True)`` into the integer 1, so a boolean filter silently matches nothing
#: (measured). ``bipolar`` is stored, but filter on ``psep`` (null unless bipolar) instead.
FIELD_KINDS: tuple[str, ...] = ("float", "integer", "datetime", "keyword")

#: Payload fields that get a payload index in every collection, and so can be filtered on.
#: A filter on any other field is refused (ValueError naming it).
INDEXED_FIELDS: dict[str, FieldKind] = {
    # identity and provenance
    "record_id": "keyword",
    "series": "keyword",
    "region": "keyword",  # series family + HARPNUM: what "one frame per region" groups by
    "harpnum": "integer",
    "t_rec": "datetime",  # TAI, written with a Z (see rfc3339)
    "dataset_version": "keyword",
    "encoder_version": "keyword",
    "source": "keyword",
    # NOAA numbers, QUALITY
    "noaa_ar": "integer",
    "noaa_ars": "integer",  # a list: a match on any element matches the point
    "quality": "integer",
    # position on the disk
    "lat_fwt": "float",
    "lon_fwt": "float",
    "mu": "float",
    # model-space physics (sharpseek.physics.parameters.compute_parameters)
    "tuf": "float",
    "tpf": "float",
    "tnf": "float",
    "psep": "float",
    "r": "float",
    "tilt": "float",
    "joy_tilt": "float",
    "orientation": "float",
    "sigma": "float",
    "alpha": "float",
    "grad": "float",
    # physical units at original resolution (sharpseek.data.ingest_records.frame_to_record)
    "flux_mx": "float",
    "flux_strong_mx": "float",
    "flux_positive_mx": "float",
    "flux_negative_mx": "float",
    "psep_mm": "float",
    # native-scale parameters of a real frame (sharpseek.data.native.native_columns)
    "tilt_cea": "float",
    "joy_tilt_cea": "float",
    "r_jsoc": "float",
    "r_jsoc_segment": "keyword",
    "flux_imbalance": "float",
    # JSOC's own keywords, for comparison
    "usflux": "float",
    "r_value": "float",
}

#: Manifest columns left out of the payload: where a dataset version keeps the image
#: (they change from one dataset version to the next; the record does not).
NOT_PAYLOAD: frozenset[str] = frozenset({"shard", "shard_index"})

#: Namespace of the point ids. Fixed forever: changing it would orphan every indexed point.
RECORD_NAMESPACE = uuid.UUID("bf2410f8-470e-5d69-b96d-527cf10229d9")

_REQUIRED = ("series", "harpnum", "t_rec")
_NOAA_TOKEN = re.compile(r"\d+")


def point_id(rid: str) -> str:
    """The point id of a record id: ``str(uuid5(RECORD_NAMESPACE, rid))``.

    >>> point_id("synthetic:1:20201215_120000_TAI") == point_id("synthetic:1:20201215_120000_TAI")
    True
    >>> point_id("synthetic:1:20201215_120000_TAI") == point_id(
    ...     "hmi.sharp_cea_720s:1:20201215_120000_TAI")
    False
    """
    return str(uuid.uuid5(RECORD_NAMESPACE, rid))


def region_key(series: str, harpnum: int) -> str:
    """The region a frame belongs to: its HARP, within a series family.

    The near-real-time and definitive series number HARPs alike, so they share a family
    (``hmi.sharp_cea_720s``); any other series (``synthetic``) is its own family, so synthetic
    HARP 1 and real HARP 1 are different regions.

    >>> region_key("hmi.sharp_cea_720s_nrt", 377), region_key("synthetic", 377)
    ('hmi.sharp_cea_720s:377', 'synthetic:377')
    """
    family = DEFINITIVE_SERIES if series in (DEFINITIVE_SERIES, NRT_SERIES) else series
    return f"{family}:{int(harpnum)}"


def rfc3339(value: Any) -> str:
    """A naive T_REC (TAI) as RFC 3339 text for a Qdrant datetime payload.

    Qdrant knows no TAI: the TAI clock reading is written with a ``Z``, and every time a
    filter compares with is converted to TAI first (:mod:`sharpseek.search.index.filters`), so
    comparisons are exact in TAI.

    >>> rfc3339(pd.Timestamp("2014-02-01 12:00:00"))
    '2014-02-01T12:00:00Z'
    """
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        raise ValueError(f"T_REC {value!r} has a time zone; T_REC is a naive TAI time")
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass
class Points:
    """Points ready to write, in row order. ``vectors`` is float32 (n, dim): the first
    space's; ``by_space`` maps every space to its float32 (n, dim) vectors."""

    ids: list[str]
    record_ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    series: list[str]
    harpnums: list[int]
    t_recs: list[pd.Timestamp]
    by_space: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def build_points(
    rows: pd.DataFrame,
    vectors: SpaceVectors,
    *,
    dim: int,
    dataset_version: str,
    encoder_version: str,
    fields: Mapping[str, str] = INDEXED_FIELDS,
    spaces: Sequence[str] = DEFAULT_SPACES,
    collection: str = "the collection",
) -> Points:
    """Manifest rows and their embeddings -> :class:`Points`.

    Parameters
    ----------
    rows : DataFrame
        Manifest rows (:attr:`sharpseek.data.dataset.Dataset.manifest`): at least ``series``,
        ``harpnum`` and ``t_rec`` (naive datetime, TAI). A ``record_id`` column, when present,
        must agree with the identity computed from those three.
    vectors : array-like (n, dim) or mapping space -> array-like (n, dim)
        The embeddings of the rows, in order; finite. An array where ``spaces`` has one
        space; else a mapping with exactly ``spaces`` as keys
        (:func:`~sharpseek.search.index.named_vectors.vectors_by_space`).
    fields : mapping
        Indexed fields and their kinds: their values are coerced to that kind (a value that
        cannot be is an error naming the column), so every point of a collection agrees with
        its payload indexes.
    spaces : sequence of str
        The spaces of the collection written to (the first is its default); ``collection``
        names it in the errors.
    """
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    missing = [c for c in _REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the identity column(s) {missing}")
    by_space = vectors_by_space(vectors, spaces, n=len(rows), dim=dim, collection=collection)
    rows = rows.reset_index(drop=True)

    t_rec = pd.to_datetime(rows["t_rec"])
    if getattr(t_rec.dt, "tz", None) is not None:
        raise ValueError("t_rec has a time zone; T_REC must be a naive TAI datetime")
    if t_rec.isna().any() or rows["harpnum"].isna().any() or rows["series"].isna().any():
        raise ValueError("rows with a missing series, harpnum or t_rec cannot be indexed")
    series = rows["series"].astype(str)
    harpnum = _integers(rows["harpnum"], "harpnum")
    harp_text = pd.Series([str(h) for h in harpnum], index=rows.index)
    # the same text as sharpseek.data.dataset.record_id, vectorised (a test pins the equality)
    rids = (series + ":" + harp_text + ":" + t_rec.dt.strftime("%Y%m%d_%H%M%S") + "_TAI").tolist()
    if "record_id" in rows.columns:
        given = rows["record_id"].astype(str).tolist()
        bad = next((i for i, (a, b) in enumerate(zip(given, rids, strict=True)) if a != b), None)
        if bad is not None:
            raise ValueError(
                f"row {bad}: record_id {given[bad]!r} disagrees with its series, harpnum and "
                f"t_rec ({rids[bad]!r})"
            )

    keys: list[str] = []
    columns: list[list[Any]] = []
    for name in rows.columns:
        if name in NOT_PAYLOAD or name in ("record_id", "noaa_ars"):
            continue
        keys.append(str(name))
        columns.append(_column(rows[name], fields.get(name), str(name)))
    keys += ["record_id", "noaa_ars", "region", "dataset_version", "encoder_version"]
    columns += [
        rids,
        _noaa_lists(rows),
        [region_key(s, h) for s, h in zip(series, harpnum, strict=True)],
        [dataset_version] * len(rows),
        [encoder_version] * len(rows),
    ]
    payloads = [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]
    return Points(
        ids=[point_id(r) for r in rids],
        record_ids=rids,
        vectors=by_space[tuple(spaces)[0]],
        payloads=payloads,
        series=series.tolist(),
        harpnums=harpnum,
        t_recs=list(t_rec),
        by_space=by_space,
    )


def _integers(column: pd.Series, name: str) -> list[int]:
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any() or (values % 1 != 0).any():
        raise ValueError(f"column {name!r} must hold integers")
    return [int(v) for v in values]


def _column(column: pd.Series, kind: str | None, name: str) -> list[Any]:
    """Plain JSON-able values of one column; NaN/inf/NA -> None; coerced to ``kind``."""
    if kind == "datetime" or pd.api.types.is_datetime64_any_dtype(column):
        times = pd.to_datetime(column, errors="coerce")
        return [None if pd.isna(t) else rfc3339(t) for t in times]
    if kind in ("float", "integer"):
        values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
        bad = column.notna().to_numpy() & np.isnan(values)
        if bad.any():
            raise ValueError(
                f"column {name!r} is indexed as {kind} but row {int(np.flatnonzero(bad)[0])} "
                f"holds {column.iloc[int(np.flatnonzero(bad)[0])]!r}"
            )
        finite = np.isfinite(values)
        if kind == "integer":
            if (values[finite] % 1 != 0).any():
                raise ValueError(f"column {name!r} is indexed as integer but holds fractions")
            return [int(v) if ok else None for v, ok in zip(values, finite, strict=True)]
        return [float(v) if ok else None for v, ok in zip(values, finite, strict=True)]
    if kind == "keyword":
        return [None if _missing(v) else str(v) for v in column.tolist()]
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_integer_dtype(column):
        return [None if _missing(v) else v for v in column.tolist()]
    if pd.api.types.is_float_dtype(column):
        return [v if np.isfinite(v) else None for v in column.astype(float).tolist()]
    return [_plain(v) for v in column.tolist()]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and not np.isfinite(value)


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        return None if _missing(value) else value
    if isinstance(value, pd.Timestamp):
        return rfc3339(value)
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _noaa_lists(rows: pd.DataFrame) -> list[list[int]]:
    """``noaa_ars`` as sorted lists of ints, with ``noaa_ar`` added when it is > 0."""
    n = len(rows)
    ars = rows["noaa_ars"].tolist() if "noaa_ars" in rows.columns else [None] * n
    ar = rows["noaa_ar"].tolist() if "noaa_ar" in rows.columns else [None] * n
    out = []
    for i, (text, single) in enumerate(zip(ars, ar, strict=True)):
        numbers: set[int] = set()
        if isinstance(text, str):
            for token in re.split(r"[,;\s]+", text.strip()):
                if not token:
                    continue
                if not _NOAA_TOKEN.fullmatch(token):
                    raise ValueError(f"row {i}: noaa_ars {text!r} is not a list of NOAA numbers")
                numbers.add(int(token))
        elif isinstance(text, list | tuple | np.ndarray):
            numbers.update(int(v) for v in text)
        elif not _missing(text):
            numbers.add(int(text))
        if not _missing(single) and int(single) > 0:
            numbers.add(int(single))
        out.append(sorted(numbers))
    return out
