"""The one interface of the vector index, and the logic both backends share.

:class:`VectorIndex` owns the rules: collections per encoder version behind one live alias,
idempotent and incremental writes, NRT records replaced by their definitive ones, checked
queries, one request per search with the filter inside, grouping by region, and the errors.
A backend (:class:`~sharpseek.search.index.edge.EdgeIndex`,
:class:`~sharpseek.search.index.server.ServerIndex`) supplies only storage primitives: create and
drop a collection, read and switch the alias, write, delete, look up, count and query.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES, record_id
from sharpseek.search.index.filters import Condition, SearchFilter
from sharpseek.search.index.points import (
    FIELD_KINDS,
    INDEXED_FIELDS,
    Points,
    build_points,
    point_id,
)

__all__ = [
    "CollectionInfo",
    "EmptyIndexError",
    "EncoderMismatchError",
    "IndexConfig",
    "IndexedRecord",
    "ReindexResult",
    "SearchHit",
    "UpsertResult",
    "VectorIndex",
    "iter_batches",
    "recall_at_k",
]

log = logging.getLogger(__name__)

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

    def __post_init__(self) -> None:
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
    """What a collection is: stored with it (server: collection metadata; embedded: a file)."""

    name: str
    encoder_version: str
    dim: int
    fields: Mapping[str, str]
    complete: bool = False  # filled to the end by a reindex (only then can it go live)
    created: str = ""
    dataset_versions: tuple[str, ...] = ()  # the dataset versions its records came from

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encoder_version": self.encoder_version,
            "dim": self.dim,
            "fields": dict(self.fields),
            "complete": self.complete,
            "created": self.created,
            "dataset_versions": list(self.dataset_versions),
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
    """A stored point looked up by record id (``vector`` when asked for)."""

    record_id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


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


class VectorIndex(ABC):
    """SimSiam embeddings of SHARP frames, searchable by Euclidean distance with filters.

    One collection per encoder version; an alias names the live one. Every search resolves
    the alias once and queries that one collection, so it sees the old collection or the
    new one, never a mix; a reindex fills the new collection beside the old and switches
    only when it is complete and non-empty.

    Backends implement the ``_`` primitives; everything public is here.
    """

    backend: str = ""

    def __init__(self, config: IndexConfig | None = None) -> None:
        self.config = config or IndexConfig()
        self._info_cache: dict[str, CollectionInfo] = {}

    # ------------------------------------------------------------------ backend primitives
    @abstractmethod
    def _live_name(self) -> str | None:
        """Name of the collection the alias points at, or None."""

    @abstractmethod
    def _set_live(self, name: str) -> None:
        """Point the alias at ``name``, atomically."""

    @abstractmethod
    def _read_info(self, name: str) -> CollectionInfo | None:
        """The stored info of collection ``name``, or None when there is no such collection."""

    @abstractmethod
    def _write_info(self, name: str, info: CollectionInfo) -> None: ...

    @abstractmethod
    def _names(self) -> list[str]:
        """Names of this index's collections (``<name>--*``)."""

    @abstractmethod
    def _create(self, name: str, info: CollectionInfo) -> None:
        """Create an empty collection with its payload indexes and store ``info``."""

    @abstractmethod
    def _drop(self, name: str) -> None: ...

    @abstractmethod
    def _upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list) -> None: ...

    @abstractmethod
    def _delete(self, name: str, ids: list[str]) -> None: ...

    @abstractmethod
    def _existing(self, name: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored."""

    @abstractmethod
    def _count(self, name: str) -> int:
        """Exact number of points."""

    @abstractmethod
    def _query(
        self,
        name: str,
        vector: list[float],
        limit: int,
        must: list[Condition],
        must_not: list[Condition],
        exact: bool,
        hnsw_ef: int,
    ) -> list[RawHit]:
        """Nearest points first, the filter in the same request."""

    @abstractmethod
    def _retrieve(self, name: str, ids: list[str], with_vector: bool) -> list[tuple]:
        """(id, payload, vector or None) of the stored ``ids``."""

    def _scroll(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, dict]], Any]:
        """One page of (point id, payload) of ``name`` from ``offset`` (None: the start) and
        the next page's offset (None after the last page)."""
        raise NotImplementedError

    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None:
        """Set the keys of ``payload`` on the points ``ids`` (other keys untouched)."""
        raise NotImplementedError

    def _delete_payload(self, name: str, ids: list[str], keys: list[str]) -> None:
        """Remove ``keys`` from the payloads of the points ``ids``."""
        raise NotImplementedError

    def _add_field_index(self, name: str, key: str, kind: str) -> None:
        """Create the payload index of ``key`` (a :data:`FIELD_KINDS` kind) in ``name``."""
        raise NotImplementedError

    def _size(self, name: str) -> int:
        """Number of points, for the exact-or-HNSW choice (may be a little stale)."""
        return self._count(name)

    def _flush(self, name: str) -> None:
        """Make writes durable and visible to other processes (no-op where every write
        already is)."""
        return None

    def _begin_write(self, name: str) -> None:
        """Called before the writes of one call to ``name`` (embedded: take the writer lock
        and a private generation of the collection); ``_flush`` ends them."""
        return None

    def _after_fill(self, name: str, points: int) -> None:
        """Called when a reindex has filled ``name``, before it goes live."""
        return None

    def optimize(self) -> bool:
        """Merge segments and build the HNSW graph of the live collection where the backend
        leaves that to the caller (embedded); a server optimizes on its own: no-op."""
        return False

    def close(self) -> None:
        """Release what the backend holds open."""
        return None

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ collections
    def collection_name(self, encoder_version: str) -> str:
        """The collection of ``encoder_version``: ``<name>--<encoder_version>``."""
        _check_version(encoder_version)
        return f"{self.config.name}--{encoder_version}"

    def live(self) -> CollectionInfo | None:
        """The live collection's info, or None when nothing is live yet."""
        name = self._live_name()
        return None if name is None else self._info(name, fresh=True)

    def count(self) -> int:
        """Points in the live collection (0 when nothing is live)."""
        name = self._live_name()
        return 0 if name is None else self._count(name)

    def status(self) -> dict[str, Any]:
        """Every collection of this index: encoder version, completeness, points, liveness."""
        live = self._live_name()
        rows = []
        for name in sorted(self._names()):
            info = self._read_info(name)
            if info is None:
                continue
            rows.append(
                {
                    "collection": name,
                    "encoder_version": info.encoder_version,
                    "dim": info.dim,
                    "complete": info.complete,
                    "points": self._count(name),
                    "live": name == live,
                    "created": info.created,
                    "dataset_versions": list(info.dataset_versions),
                }
            )
        return {
            "backend": self.backend,
            "alias": self.config.name,
            "live": live,
            "collections": rows,
        }

    def switch(self, encoder_version: str) -> CollectionInfo:
        """Make the (complete, non-empty) collection of ``encoder_version`` live: a rollback."""
        name = self.collection_name(encoder_version)
        info = self._read_info(name)
        if info is None:
            raise ValueError(f"no collection for encoder version {encoder_version!r} ({name})")
        if not info.complete:
            raise ValueError(
                f"collection {name} is incomplete (an interrupted reindex); finish it with "
                f"reindex({encoder_version!r}, ...)"
            )
        if self._count(name) == 0:
            raise ValueError(f"collection {name} is empty; it cannot go live")
        self._set_live(name)
        log.info("index %s: %s is live", self.config.name, name)
        return info

    def drop(self, encoder_version: str) -> None:
        """Delete the collection of ``encoder_version``; the live one is refused."""
        name = self.collection_name(encoder_version)
        if name == self._live_name():
            raise ValueError(f"collection {name} is live; switch to another before dropping it")
        if self._read_info(name) is None:
            raise ValueError(f"no collection for encoder version {encoder_version!r} ({name})")
        self._info_cache.pop(name, None)
        self._drop(name)

    # ------------------------------------------------------------------ writing
    def reindex(
        self,
        encoder_version: str,
        batches: Iterable[tuple[pd.DataFrame, Any]],
        *,
        dataset_version: str,
        drop_previous: bool = False,
    ) -> ReindexResult:
        """Fill the collection of a new encoder version beside the live one, then switch.

        Parameters
        ----------
        encoder_version : str
            The encoder that made the vectors; names the collection.
        batches : iterable of (rows, vectors)
            Manifest rows (DataFrame) and their embeddings (n, dim), e.g. from
            :func:`iter_batches`. Consumed once.
        dataset_version : str
            The dataset version the rows come from (stored in each payload).
        drop_previous : bool
            Delete the previously live collection after the switch (default: keep it, so
            :meth:`switch` can roll back).

        The alias moves only after the last batch is written, the collection is marked
        complete and (embedded, at or above ``exact_threshold``) its HNSW graph is built.
        Until then every search sees the old collection. If a batch fails the alias stays
        where it was and a rerun resumes: records already in the new collection are skipped.
        """
        name = self.collection_name(encoder_version)
        previous = self._live_name()
        if name == previous:
            raise ValueError(
                f"encoder version {encoder_version!r} is already live ({name}); add records "
                f"to it with upsert_records"
            )
        info = self._read_info(name)
        if info is None:
            info = CollectionInfo(
                name=name,
                encoder_version=encoder_version,
                dim=self.config.dim,
                fields=self.config.fields,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            self._create(name, info)
            log.info("index %s: created %s", self.config.name, name)
        else:
            self._begin_write(name)
            log.info("index %s: resuming %s (%d points)", self.config.name, name, self._count(name))
        totals = UpsertResult()
        for i, (rows, vectors) in enumerate(batches):
            totals += self._write(name, info, rows, vectors, dataset_version)
            log.info("index %s: batch %d, %d points added so far", name, i + 1, totals.added)
        self._flush(name)
        points = self._count(name)
        if points == 0:
            raise ValueError(
                f"reindex of {encoder_version!r} wrote no points; the live collection "
                f"({previous}) is unchanged"
            )
        info = self._read_info(name) or info
        self._write_info(name, replace(info, complete=True))
        self._after_fill(name, points)
        self._set_live(name)
        self._info_cache.pop(name, None)
        log.info(
            "index %s: %s is live (%d points; was %s)", self.config.name, name, points, previous
        )
        if drop_previous and previous is not None:
            self._info_cache.pop(previous, None)
            self._drop(previous)
        return ReindexResult(name, encoder_version, previous, points, totals)

    def upsert_records(
        self,
        rows: pd.DataFrame,
        vectors: Any,
        *,
        encoder_version: str,
        dataset_version: str,
    ) -> UpsertResult:
        """Add to the live collection the records it lacks (incremental indexing).

        Records already present are skipped (counted in ``skipped``). An NRT record whose
        definitive record is present (or in the same call) is not added (``superseded``);
        a definitive record deletes its NRT twin (``replaced``). ``encoder_version`` must be
        the live collection's: embeddings of two encoders never share a collection.
        """
        name, info = self._require_live(encoder_version)
        self._begin_write(name)
        info = self._read_info(name) or info  # as the last writer left it
        result = self._write(name, info, rows, vectors, dataset_version)
        self._flush(name)
        return result

    def replace_nrt(
        self,
        rows: pd.DataFrame,
        vectors: Any,
        *,
        encoder_version: str,
        dataset_version: str,
    ) -> UpsertResult:
        """Definitive records replace their near-real-time twins in the live collection.

        ``rows`` must all be of the definitive series. Each is added (if missing) before its
        NRT twin (same HARPNUM and T_REC) is deleted, so the frame is never absent.
        """
        series = set(rows["series"].astype(str)) if len(rows) else set()
        if series - {DEFINITIVE_SERIES}:
            raise ValueError(
                f"replace_nrt takes records of {DEFINITIVE_SERIES!r} only, got {sorted(series)}"
            )
        return self.upsert_records(
            rows, vectors, encoder_version=encoder_version, dataset_version=dataset_version
        )

    def _write(
        self,
        name: str,
        info: CollectionInfo,
        rows: pd.DataFrame,
        vectors: Any,
        dataset_version: str,
    ) -> UpsertResult:
        points = build_points(
            rows,
            vectors,
            dim=info.dim,
            dataset_version=dataset_version,
            encoder_version=info.encoder_version,
            fields=info.fields,
        )
        result = UpsertResult()
        if not len(points):
            return result
        if dataset_version not in info.dataset_versions:
            info = replace(info, dataset_versions=(*info.dataset_versions, dataset_version))
            self._write_info(name, info)
        batch_ids: dict[str, int] = {}
        for i, pid in enumerate(points.ids):
            if pid in batch_ids:
                result.skipped += 1  # repeated in the input: the first one counts
            else:
                batch_ids[pid] = i
        present = self._existing_chunked(name, list(batch_ids))
        result.skipped += len(present)

        # NRT rows whose definitive twin is stored or comes in this call are superseded
        nrt = [i for i in batch_ids.values() if points.series[i] == NRT_SERIES]
        twin_of = {i: point_id(self._twin(points, i, DEFINITIVE_SERIES)) for i in nrt}
        stored_twins = self._existing_chunked(name, list(set(twin_of.values())))
        take = []
        for pid, i in batch_ids.items():
            if pid in present:
                continue
            if i in twin_of and (twin_of[i] in batch_ids or twin_of[i] in stored_twins):
                result.superseded += 1
                continue
            take.append(i)
        for start in range(0, len(take), self.config.batch_size):
            chunk = take[start : start + self.config.batch_size]
            self._upsert(
                name,
                [points.ids[i] for i in chunk],
                points.vectors[chunk],
                [points.payloads[i] for i in chunk],
            )
        result.added = len(take)

        # definitive rows (new or already stored) delete their NRT twins: add first, then
        # delete, so a search in between sees the frame twice at worst, never not at all
        definitive = [i for i in batch_ids.values() if points.series[i] == DEFINITIVE_SERIES]
        nrt_twins = [point_id(self._twin(points, i, NRT_SERIES)) for i in definitive]
        stale = sorted(self._existing_chunked(name, nrt_twins))
        for start in range(0, len(stale), self.config.batch_size):
            self._delete(name, stale[start : start + self.config.batch_size])
        result.replaced = len(stale)
        return result

    def scan(self, keys: Sequence[str], *, page: int = 2000) -> Iterator[dict[str, Any]]:
        """The payload fields ``keys`` (plus ``record_id``) of every point of the live
        collection, page by page (bounded memory); a field a point lacks is None."""
        name, _ = self._require_live(None)
        wanted = ["record_id", *[k for k in keys if k != "record_id"]]
        offset: Any = None
        while True:
            rows, offset = self._scroll(name, offset, page)
            for _, payload in rows:
                yield {k: (payload or {}).get(k) for k in wanted}
            if offset is None:
                return

    def update_payloads(
        self, payloads: Mapping[str, Mapping[str, Any]], *, fields: Mapping[str, str]
    ) -> int:
        """Set payload fields of stored points in the live collection, vectors untouched.

        Parameters
        ----------
        payloads : mapping record id -> {field: value}
            The fields to set on each record; a None value removes the field (a range
            filter then never matches it). Records the collection lacks are left out.
        fields : mapping field -> kind
            Payload indexes these fields need; created where the collection lacks them (and
            recorded in its info), so the fields can be filtered on.

        Returns the number of points written. Points with the same new fields are written
        in one request.
        """
        for key, kind in fields.items():
            if kind not in FIELD_KINDS:
                raise ValueError(f"field {key!r}: unknown kind {kind!r}; choose {FIELD_KINDS}")
        name, _ = self._require_live(None)
        self._begin_write(name)
        try:
            info = self._read_info(name) or self._info(name, fresh=True)
            missing = {k: v for k, v in fields.items() if k not in info.fields}
            for key, kind in missing.items():
                self._add_field_index(name, key, kind)
            if missing:
                self._write_info(name, replace(info, fields={**info.fields, **missing}))
                self._info_cache.pop(name, None)
            ids = {point_id(rid): rid for rid in payloads}
            present = self._existing_chunked(name, list(ids))
            groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
            removals: dict[tuple[str, ...], list[str]] = {}
            for pid in present:
                values = payloads[ids[pid]]
                kept = {k: v for k, v in values.items() if v is not None}
                text = json.dumps(kept, sort_keys=True, default=str)
                groups.setdefault(text, (kept, []))[1].append(pid)
                gone = tuple(sorted(k for k, v in values.items() if v is None))
                if gone:
                    removals.setdefault(gone, []).append(pid)
            for kept, pids in groups.values():
                for start in range(0, len(pids), self.config.batch_size):
                    chunk = pids[start : start + self.config.batch_size]
                    if kept:
                        self._set_payload(name, chunk, kept)
            for keys, pids in removals.items():
                for start in range(0, len(pids), self.config.batch_size):
                    self._delete_payload(
                        name, pids[start : start + self.config.batch_size], list(keys)
                    )
        finally:
            self._flush(name)
        return len(present)

    @staticmethod
    def _twin(points: Points, i: int, series: str) -> str:
        return record_id(series, points.harpnums[i], points.t_recs[i])

    def _existing_chunked(self, name: str, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), self.config.batch_size):
            found |= self._existing(name, ids[start : start + self.config.batch_size])
        return found

    # ------------------------------------------------------------------ reading
    def search(
        self,
        vector: Any,
        *,
        limit: int = 10,
        filter: SearchFilter | None = None,
        group_by_harp: bool = True,
        per_region: int = 1,
        exact: bool | None = None,
        hnsw_ef: int | None = None,
        encoder_version: str | None = None,
    ) -> list[SearchHit]:
        """Frames nearest to ``vector`` (Euclidean), best first (smallest
        :attr:`SearchHit.distance` first).

        Parameters
        ----------
        vector : array-like (dim,)
            The query embedding; finite, of the live collection's dimension.
        limit : int
            Number of regions (``group_by_harp``) or of frames returned.
        filter : SearchFilter, optional
            Sent inside the same request as the vector query.
        group_by_harp : bool
            One entry per region (HARP; see :func:`~sharpseek.search.index.points.region_key`):
            its best ``per_region`` frames, regions ordered by their best frame.
        exact : bool, optional
            Exact (brute-force) or HNSW search; default: exact below
            ``config.exact_threshold`` points.
        hnsw_ef : int, optional
            HNSW beam (default ``config.hnsw_ef``).
        encoder_version : str, optional
            The encoder that made ``vector``; a different live encoder is an error. Give it
            whenever known.

        Raises
        ------
        EmptyIndexError
            Nothing is live, or the live collection has no points.
        EncoderMismatchError
            ``encoder_version`` differs from the live collection's.
        ValueError
            A vector of the wrong shape or with NaN/inf; an unknown filter field; bad limits.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if isinstance(per_region, bool) or not isinstance(per_region, int) or per_region < 1:
            raise ValueError(f"per_region must be a positive integer, got {per_region!r}")
        ef = int(hnsw_ef or self.config.hnsw_ef)
        for attempt in range(2):
            name, info = self._require_live(encoder_version, search=True)
            query = _check_query(vector, info.dim)
            must, must_not = (filter or SearchFilter()).conditions(info.fields)
            use_exact = self._size(name) < self.config.exact_threshold if exact is None else exact
            try:
                if group_by_harp:
                    raw = self._grouped(
                        name, query, limit, per_region, must, must_not, bool(use_exact), ef
                    )
                else:
                    raw = self._query(name, query, limit, must, must_not, bool(use_exact), ef)
                break
            except CollectionGone:
                if attempt:
                    raise
                self._info_cache.pop(name, None)
                log.info("index %s: %s went away during a search; retrying", self.config.name, name)
        if not raw and self._count(name) == 0:
            raise EmptyIndexError(
                f"the live collection {name} of index {self.config.name!r} has no points"
            )
        hits = [_hit(h) for h in raw]
        wrong = {h.payload.get("encoder_version") for h in hits} - {info.encoder_version}
        if wrong:
            raise RuntimeError(
                f"collection {name} holds points of encoder version(s) {sorted(map(str, wrong))}"
                f" besides {info.encoder_version!r}: it is corrupt; reindex it"
            )
        return hits

    def missing(self, record_ids: Sequence[str]) -> list[str]:
        """The ``record_ids`` the live collection lacks (all of them when nothing is live)."""
        name = self._live_name()
        if name is None:
            return list(record_ids)
        present = self._existing_chunked(name, [point_id(r) for r in record_ids])
        return [r for r in record_ids if point_id(r) not in present]

    def get(self, record_ids: Sequence[str], *, with_vector: bool = False) -> list[IndexedRecord]:
        """The stored records among ``record_ids`` (in that order; missing ones left out)."""
        name, _ = self._require_live(None)
        by_id = {
            str(pid): (payload, vector)
            for pid, payload, vector in self._retrieve(
                name, [point_id(r) for r in record_ids], with_vector
            )
        }
        out = []
        for rid in record_ids:
            found = by_id.get(point_id(rid))
            if found is not None:
                payload, vector = found
                vec = None if vector is None else np.asarray(vector, dtype=np.float32)
                out.append(IndexedRecord(rid, payload or {}, vec))
        return out

    def _grouped(
        self,
        name: str,
        vector: list[float],
        limit: int,
        per_region: int,
        must: list[Condition],
        must_not: list[Condition],
        exact: bool,
        hnsw_ef: int,
    ) -> list[RawHit]:
        """The best ``per_region`` frames of the ``limit`` regions nearest to ``vector``.

        Exact (for exact search): rounds of nearest-point queries, each excluding the regions
        already found (the first frame of a region met in distance order is its best, so
        regions come out in the right order); regions short of ``per_region`` frames whose
        round did not see all its candidates get one query each for their best frames.
        """
        groups: dict[str, list[RawHit]] = {}
        complete: set[str] = set()
        fetch = max(2 * limit * per_region, 16)
        while len(groups) < limit:
            excluded = [Condition("region", "any", tuple(groups))] if groups else []
            hits = self._query(name, vector, fetch, must, must_not + excluded, exact, hnsw_ef)
            exhausted = len(hits) < fetch
            new = []
            for hit in hits:
                region = str(hit[2].get("region"))
                group = groups.get(region)
                if group is None:
                    if len(groups) >= limit:
                        continue
                    groups[region] = group = []
                    new.append(region)
                if len(group) < per_region:
                    group.append(hit)
            if exhausted:
                complete.update(new)  # the round saw every remaining candidate
                break
            fetch = min(2 * fetch, _MAX_FETCH)
        for region, group in groups.items():
            if len(group) < per_region and region not in complete:
                only = [*must, Condition("region", "any", (region,))]
                groups[region] = self._query(
                    name, vector, per_region, only, must_not, exact, hnsw_ef
                )
        return [hit for group in groups.values() for hit in group]

    # ------------------------------------------------------------------ helpers
    def _info(self, name: str, *, fresh: bool = False) -> CollectionInfo:
        info = None if fresh else self._info_cache.get(name)
        if info is None:
            info = self._read_info(name)
            if info is None:
                raise RuntimeError(
                    f"index {self.config.name!r} names collection {name}, which does not exist"
                )
            self._info_cache[name] = info
        return info

    def _require_live(
        self, encoder_version: str | None, *, search: bool = False
    ) -> tuple[str, CollectionInfo]:
        name = self._live_name()
        if name is None:
            raise EmptyIndexError(
                f"index {self.config.name!r} ({self.backend}) has no live collection: "
                f"run a reindex first"
            )
        info = self._info(name, fresh=not search)
        if encoder_version is not None and encoder_version != info.encoder_version:
            raise EncoderMismatchError(
                f"the query comes from encoder version {encoder_version!r} but the live "
                f"collection {name} holds encoder version {info.encoder_version!r}"
            )
        return name, info


def iter_batches(
    rows: pd.DataFrame, vectors: Any, size: int = 2000
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Cut manifest rows and their (n, dim) embeddings into (rows, vectors) batches."""
    vectors = np.asarray(vectors)
    if len(vectors) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(vectors)} vectors")
    for start in range(0, len(rows), size):
        yield rows.iloc[start : start + size], vectors[start : start + size]


def recall_at_k(
    index: VectorIndex,
    queries: Any,
    *,
    k: int = 10,
    hnsw_ef: int | None = None,
    filter: SearchFilter | None = None,
) -> float:
    """Mean recall@k of HNSW search against exact search on the live collection.

    For each query, the fraction of the exact k nearest frames (no grouping) that the HNSW
    search returns. Where no HNSW graph is built (below the backend's indexing threshold,
    or qdrant-client's local mode, which is always exact) this is 1.0 by construction.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    recalls = []
    for query in queries:
        truth = index.search(query, limit=k, filter=filter, group_by_harp=False, exact=True)
        if not truth:
            continue
        found = index.search(
            query, limit=k, filter=filter, group_by_harp=False, exact=False, hnsw_ef=hnsw_ef
        )
        expected = {h.record_id for h in truth}
        recalls.append(len(expected & {h.record_id for h in found}) / len(expected))
    if not recalls:
        raise ValueError("no query had any exact match: recall is undefined")
    return float(np.mean(recalls))


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
