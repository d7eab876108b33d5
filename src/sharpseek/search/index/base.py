"""The one interface of the vector index, and the logic both backends share.

:class:`VectorIndex` owns the rules: collections per encoder version behind one live alias,
idempotent and incremental writes, NRT records replaced by their definitive ones, checked
queries, one request per search with the filter inside, grouping by region, and the errors.
A backend (:class:`~sharpseek.search.index.edge.EdgeIndex`,
:class:`~sharpseek.search.index.server.ServerIndex`) supplies only storage primitives: create and
drop a collection, read and switch the alias, write, delete, look up, count and query.

Here: the primitives, the collections and the read path; the write path is the mixin
:class:`~sharpseek.search.index.writes.IndexWrites`, the value types and errors are in
:mod:`sharpseek.search.index.types`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sharpseek.search.index.filters import Condition, SearchFilter
from sharpseek.search.index.named_vectors import DEFAULT_SPACES
from sharpseek.search.index.points import point_id
from sharpseek.search.index.types import (
    _MAX_FETCH,
    CollectionGone,
    CollectionInfo,
    EmptyIndexError,
    EncoderMismatchError,
    IndexConfig,
    IndexedRecord,
    RawHit,
    SearchHit,
    _check_query,
    _check_version,
    _hit,
)
from sharpseek.search.index.writes import IndexWrites

__all__ = [
    "VectorIndex",
    "recall_at_k",
]

log = logging.getLogger(__name__)


class VectorIndex(IndexWrites, ABC):
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
        """Create an empty collection with its payload indexes and store ``info``: one
        unnamed vector per point, or one named vector per space where
        ``info.named_vectors``, each (info.dim,), Euclidean."""

    @abstractmethod
    def _drop(self, name: str) -> None: ...

    @abstractmethod
    def _upsert(
        self,
        name: str,
        ids: list[str],
        vectors: np.ndarray | dict[str, np.ndarray],
        payloads: list,
    ) -> None:
        """Write points: ``vectors`` float32 (n, dim), the unnamed vectors, or (a collection
        of named vectors) space -> float32 (n, dim)."""

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
        using: str | None = None,
    ) -> list[RawHit]:
        """Nearest points first, the filter in the same request; ``using``: the named
        vector to search (None: the unnamed one)."""

    @abstractmethod
    def _retrieve(self, name: str, ids: list[str], with_vector: bool) -> list[tuple]:
        """(id, payload, vector or None) of the stored ``ids``; the vector a list of floats,
        or space -> list of floats in a collection of named vectors."""

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
        """The collection of ``encoder_version`` with the configured spaces:
        ``<name>--<encoder_version>`` for the region space alone (as before spaces existed),
        ``<name>--<encoder_version>--<space>-<space>`` for several (a collection of the same
        encoder with other spaces is another collection, built beside the live one)."""
        _check_version(encoder_version)
        spaces = tuple(self.config.spaces)
        suffix = "" if spaces == DEFAULT_SPACES else "--" + "-".join(spaces)
        return f"{self.config.name}--{encoder_version}{suffix}"

    def live(self) -> CollectionInfo | None:
        """The live collection's info, or None when nothing is live yet."""
        name = self._live_name()
        return None if name is None else self._info(name, fresh=True)

    def count(self) -> int:
        """Points in the live collection (0 when nothing is live)."""
        name = self._live_name()
        return 0 if name is None else self._count(name)

    def status(self) -> dict[str, Any]:
        """Every collection of this index: encoder version, completeness, points, liveness,
        vector spaces."""
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
                    "spaces": list(info.spaces),
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
        space: str | None = None,
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
        space : str, optional
            The vector space searched (``region``: real queries; ``symmetric``: generated
            ones); default the live collection's first space. Grouping uses it too.

        Raises
        ------
        EmptyIndexError
            Nothing is live, or the live collection has no points.
        EncoderMismatchError
            ``encoder_version`` differs from the live collection's.
        SpaceMissingError
            The live collection has no ``space`` (a ValueError; reindex with it).
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
            using = info.using(space)
            query = _check_query(vector, info.dim)
            must, must_not = (filter or SearchFilter()).conditions(info.fields)
            use_exact = self._size(name) < self.config.exact_threshold if exact is None else exact
            try:
                if group_by_harp:
                    raw = self._grouped(
                        name, query, limit, per_region, must, must_not, bool(use_exact), ef, using
                    )
                else:
                    raw = self._query(
                        name, query, limit, must, must_not, bool(use_exact), ef, using
                    )
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
        """The stored records among ``record_ids`` (in that order; missing ones left out).

        ``with_vector``: each record's :attr:`IndexedRecord.vector` (float32 (dim,), the first
        space) and :attr:`IndexedRecord.vectors` (space -> float32 (dim,), every space).
        """
        name, info = self._require_live(None)
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
                vectors = None if vector is None else _by_space(vector, info.spaces)
                first = None if vectors is None else vectors[info.spaces[0]]
                out.append(IndexedRecord(rid, payload or {}, first, vectors))
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
        using: str | None = None,
    ) -> list[RawHit]:
        """The best ``per_region`` frames of the ``limit`` regions nearest to ``vector`` in
        the named vector ``using`` (None: the unnamed one).

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
            hits = self._query(
                name, vector, fetch, must, must_not + excluded, exact, hnsw_ef, using
            )
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
                    name, vector, per_region, only, must_not, exact, hnsw_ef, using
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


def recall_at_k(
    index: VectorIndex,
    queries: Any,
    *,
    k: int = 10,
    hnsw_ef: int | None = None,
    filter: SearchFilter | None = None,
    space: str | None = None,
) -> float:
    """Mean recall@k of HNSW search against exact search on the live collection, in the
    vector space ``space`` (default its first); ``queries`` (q, dim) or (dim,).

    For each query, the fraction of the exact k nearest frames (no grouping) that the HNSW
    search returns. Where no HNSW graph is built (below the backend's indexing threshold,
    or qdrant-client's local mode, which is always exact) this is 1.0 by construction.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    recalls = []
    for query in queries:
        truth = index.search(
            query, limit=k, filter=filter, group_by_harp=False, exact=True, space=space
        )
        if not truth:
            continue
        found = index.search(
            query,
            limit=k,
            filter=filter,
            group_by_harp=False,
            exact=False,
            hnsw_ef=hnsw_ef,
            space=space,
        )
        expected = {h.record_id for h in truth}
        recalls.append(len(expected & {h.record_id for h in found}) / len(expected))
    if not recalls:
        raise ValueError("no query had any exact match: recall is undefined")
    return float(np.mean(recalls))


def _by_space(stored: Any, spaces: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A point's stored vector(s) as space -> float32 (dim,): the named vectors of a
    collection of several spaces, or the one unnamed vector as the first space's."""
    if isinstance(stored, Mapping):
        return {space: np.asarray(stored[space], dtype=np.float32) for space in spaces}
    return {spaces[0]: np.asarray(stored, dtype=np.float32)}
