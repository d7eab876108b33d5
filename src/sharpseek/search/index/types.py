"""The vector index's value types, errors and argument checks, shared by every part of it.

Its configuration (:class:`IndexConfig`), what a collection records (:class:`CollectionInfo`),
what a search returns (:class:`SearchHit`, :class:`IndexedRecord`), what writes report
(:class:`UpsertResult`, :class:`ReindexResult`), the errors, and the one conversion of a
backend's raw hit (:data:`RawHit`) into a hit's Euclidean ``distance``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from sharpseek.search.index.named_vectors import DEFAULT_SPACES, check_spaces, stored_as_named
from sharpseek.search.index.points import (
    FIELD_KINDS,
    INDEXED_FIELDS,
)

__all__ = [
    "DISTANCE",
    "RawHit",
    "EmptyIndexError",
    "EncoderMismatchError",
    "CollectionGone",
    "IndexBusyError",
    "SpaceMissingError",
    "IndexConfig",
    "CollectionInfo",
    "SearchHit",
    "IndexedRecord",
    "UpsertResult",
    "ReindexResult",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Largest number of points one grouping round asks for.
_MAX_FETCH = 4096
#: The metric of every collection (both backends create theirs with Qdrant's ``Euclid``).
DISTANCE = "euclid"
#: Raw hit of a backend query: (point id, Qdrant's score, payload); :func:`_hit` turns the
#: score into :attr:`SearchHit.distance`, once, for every backend.
RawHit = tuple[str, float, dict[str, Any]]


class EmptyIndexError(LookupError):
    """Search on an index that holds nothing: no live collection, or a live one without points.

    An empty index is an operational fault (nothing was indexed, or indexing failed), not an
    answer, so it is an error rather than an empty list. A filter that matches no frame in a
    filled index is an answer: that search returns ``[]``.
    """


class EncoderMismatchError(ValueError):
    """A vector from one encoder version against a collection of another: distances between
    embeddings of different encoders mean nothing, so this is refused."""


class CollectionGone(RuntimeError):
    """The collection a request named was dropped meanwhile (the caller re-resolves once)."""


class IndexBusyError(RuntimeError):
    """Another process kept writing to the embedded index for longer than
    ``IndexConfig.write_timeout_s``; names it. Nothing was written."""


class SpaceMissingError(ValueError):
    """A search in a space (named vector) the live collection does not have: names the
    collection, the space asked for and the spaces it has; a rebuild with that space in
    ``IndexConfig.spaces`` makes one that has it."""


@dataclass(frozen=True)
class IndexConfig:
    """Settings of an index (one dataclass; the application's settings fill it).

    Attributes
    ----------
    name : str
        The alias (server) or pointer (embedded) naming the live collection; collections are
        ``<name>--<encoder_version>``.
    dim : int
        Dimension of the vectors of new collections (SimSiam projection output: 100).
    exact_threshold : int
        Live collections with fewer points than this are searched exactly (brute force);
        at or above it, with HNSW. The default puts 1,000,000 points on HNSW.
    hnsw_m, hnsw_ef_construct : int
        HNSW graph degree and build beam (Qdrant's defaults).
    hnsw_ef : int
        HNSW search beam (see docs/index.md for the recall it gives).
    indexing_threshold_kb : int
        Segments smaller than this (vectors, in KB) get no HNSW graph and are searched
        exactly (Qdrant's optimizer setting; 10,000 KB ~ 25,000 vectors of 100 floats).
    full_scan_threshold_kb : int
        Qdrant scans (exactly) a segment smaller than this even when it has an HNSW graph,
        and a filtered search whose candidates are fewer (Qdrant's default, 10,000 KB).
    batch_size : int
        Points per write request.
    write_timeout_s : float
        Embedded: how long a writer waits for another process's write to the same index
        folder before it gives up with :class:`IndexBusyError` (readers never wait).
    extra_fields : mapping of field -> kind
        Payload indexes beyond :data:`~sharpseek.search.index.points.INDEXED_FIELDS` (kinds:
        float, integer, datetime, keyword), fixed when a collection is created.
    spaces : tuple of str
        The vector spaces of new collections, each (dim,) per point; the first is the
        default of searches. Exactly ``("region",)``: one unnamed vector per point; else
        Qdrant named vectors (:mod:`sharpseek.search.index.named_vectors`).
    """

    name: str = "sharps"
    dim: int = 100
    exact_threshold: int = 1_000_000
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 512
    indexing_threshold_kb: int = 10_000
    full_scan_threshold_kb: int = 10_000
    batch_size: int = 2000
    write_timeout_s: float = 600.0
    extra_fields: Mapping[str, str] = field(default_factory=dict)
    spaces: tuple[str, ...] = DEFAULT_SPACES

    def __post_init__(self) -> None:
        object.__setattr__(self, "spaces", check_spaces(self.spaces, "IndexConfig.spaces"))
        if not _NAME.fullmatch(self.name) or "--" in self.name:
            raise ValueError(f"index name {self.name!r}: use letters, digits, '_', '.', single '-'")
        for attr in (
            "dim",
            "hnsw_m",
            "hnsw_ef_construct",
            "hnsw_ef",
            "indexing_threshold_kb",
            "full_scan_threshold_kb",
            "batch_size",
        ):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if self.exact_threshold < 0:
            raise ValueError(f"exact_threshold must be >= 0, got {self.exact_threshold}")
        for key, kind in self.extra_fields.items():
            if kind not in FIELD_KINDS:
                raise ValueError(f"extra field {key!r}: kind {kind!r} not in {FIELD_KINDS}")

    @property
    def fields(self) -> dict[str, str]:
        """Payload indexes of a new collection: field name -> kind."""
        return {**INDEXED_FIELDS, **dict(self.extra_fields)}


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is: stored with it (server: collection metadata; embedded: a file).

    ``spaces``: its vector spaces, each (dim,) per point, the first the default of searches;
    a stored info without them (written before spaces existed) has ``("region",)``.
    """

    name: str
    encoder_version: str
    dim: int
    fields: Mapping[str, str]
    complete: bool = False  # filled to the end by a reindex (only then can it go live)
    created: str = ""
    dataset_versions: tuple[str, ...] = ()  # the dataset versions its records came from
    spaces: tuple[str, ...] = DEFAULT_SPACES

    def __post_init__(self) -> None:
        object.__setattr__(self, "spaces", check_spaces(self.spaces, f"{self.name} spaces"))

    @property
    def named_vectors(self) -> bool:
        """Whether its points hold Qdrant named vectors, one per space (else one unnamed
        vector: spaces exactly ``("region",)``)."""
        return stored_as_named(self.spaces)

    def using(self, space: str | None) -> str | None:
        """The Qdrant vector name of ``space`` (None: the first space) for a query: the
        space itself, or None (the unnamed vector) in a single ``("region",)`` collection.

        Raises :class:`SpaceMissingError` when the collection lacks ``space``.
        """
        space = self.spaces[0] if space is None else space
        if space not in self.spaces:
            raise SpaceMissingError(
                f"collection {self.name} has no {space!r} vectors (its spaces: "
                f"{list(self.spaces)}, an index built before that space); rebuild it with "
                f"`sharpseek index build` (or `make demo`), {space!r} in settings "
                f"index.spaces (IndexConfig.spaces)"
            )
        return space if self.named_vectors else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encoder_version": self.encoder_version,
            "dim": self.dim,
            "fields": dict(self.fields),
            "complete": self.complete,
            "created": self.created,
            "dataset_versions": list(self.dataset_versions),
            "spaces": list(self.spaces),
            "distance": DISTANCE,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CollectionInfo:
        return cls(
            name=data["name"],
            encoder_version=data["encoder_version"],
            dim=int(data["dim"]),
            fields=dict(data["fields"]),
            complete=bool(data.get("complete", False)),
            created=str(data.get("created", "")),
            dataset_versions=tuple(data.get("dataset_versions", ())),
            spaces=tuple(data.get("spaces", DEFAULT_SPACES)),
        )


@dataclass(frozen=True)
class SearchHit:
    """One frame a search found: the one result type from the index up to ``sharpseek
    search``'s JSON and table and the UI's result cards (plain values only).

    Attributes
    ----------
    record_id : str
    distance : float
        How far the frame lies from the query, >= 0, smaller is closer. From the index: the
        Euclidean distance between the query's SimSiam embedding and the frame's, the metric
        of the collection (Qdrant ``Euclid``; 0 for the same embedding). From the paper's
        baselines (:meth:`sharpseek.search.searcher.Searcher.baseline_search`): the Euclidean or
        Mahalanobis distance in the (TUF, R, PSEP) space.
    harpnum : int
    t_rec : datetime
        T_REC, naive TAI.
    region : str
        The region key (:func:`~sharpseek.search.index.points.region_key`).
    payload : dict
        The stored payload: series, NOAA numbers, position, the physical parameters, ...
    image : ndarray (128, 128) or None
        The frame's model-space image where a caller looked it up (the UI does, with
        :meth:`with_image`); the index leaves it None.
    """

    record_id: str
    distance: float
    harpnum: int
    t_rec: datetime
    region: str
    payload: dict[str, Any]
    image: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def series(self) -> str:
        """The JSOC series (``synthetic`` for synthetic records)."""
        return str(self.payload.get("series") or "")

    @property
    def noaa_ars(self) -> list[int]:
        """The NOAA active-region numbers of the frame (empty when none)."""
        return [int(n) for n in self.payload.get("noaa_ars") or []]

    @property
    def similarity(self) -> float:
        """1 / (1 + distance): 1 is identical, toward 0 far (for display only)."""
        return 1.0 / (1.0 + self.distance)

    def parameter(self, name: str) -> float:
        """A physical parameter of the frame from its payload (model units), NaN if absent."""
        try:
            return float(self.payload.get(name))
        except (TypeError, ValueError):
            return float("nan")

    def with_image(self, image: np.ndarray | None) -> SearchHit:
        """The same hit carrying the frame's model-space image."""
        return replace(self, image=image)


@dataclass(frozen=True)
class IndexedRecord:
    """A stored point looked up by record id (vectors when asked for).

    ``vector``: float32 (dim,), the collection's first space; ``vectors``: space -> float32
    (dim,) for every space of the collection. Both None unless asked for.
    """

    record_id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None
    vectors: dict[str, np.ndarray] | None = None


@dataclass
class UpsertResult:
    """What a write did, in records."""

    added: int = 0
    skipped: int = 0  # already in the collection (or repeated in the input)
    superseded: int = 0  # NRT records not added because their definitive one is there
    replaced: int = 0  # NRT points deleted because their definitive record is now there

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.added += other.added
        self.skipped += other.skipped
        self.superseded += other.superseded
        self.replaced += other.replaced
        return self


@dataclass(frozen=True)
class ReindexResult:
    """What a reindex did: the collection now live, the one it replaced, and the counts."""

    collection: str
    encoder_version: str
    previous: str | None
    points: int
    writes: UpsertResult


def _check_version(encoder_version: str) -> None:
    if not isinstance(encoder_version, str) or not _VERSION.fullmatch(encoder_version):
        raise ValueError(
            f"encoder version {encoder_version!r}: use 1-100 letters, digits, '_', '.', '-'"
        )


def _check_query(vector: Any, dim: int) -> list[float]:
    array = np.asarray(vector)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"query vector must be numeric, got dtype {array.dtype}")
    if array.shape != (dim,):
        raise ValueError(f"query vector has shape {array.shape}; expected ({dim},)")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"query vector has {int(bad.sum())} NaN or infinite value(s)")
    return array.tolist()


def _distance(score: float) -> float:
    """The distance of a hit from the score Qdrant gives it.

    What Qdrant's score means depends on the collection's metric: for ``Euclid`` (every
    collection here, :data:`DISTANCE`) it is the Euclidean distance itself, not squared
    (smaller is closer; both backends, tested against numpy); for ``Cosine`` and ``Dot`` it
    would be a similarity (larger is closer): changing :data:`DISTANCE` means converting here.
    """
    return float(score)


def _hit(raw: RawHit) -> SearchHit:
    _, score, payload = raw
    payload = dict(payload or {})
    t_rec = payload.get("t_rec")
    when = datetime.fromisoformat(t_rec).replace(tzinfo=None) if isinstance(t_rec, str) else t_rec
    return SearchHit(
        record_id=str(payload.get("record_id")),
        distance=_distance(score),
        harpnum=int(payload.get("harpnum", -1)),
        t_rec=when,
        region=str(payload.get("region")),
        payload=payload,
    )
