"""Writing the vector index: batches of manifest rows and embeddings, reindex and upserts.

:class:`IndexWrites` holds the write path of :class:`~sharpseek.search.index.base.VectorIndex`
(idempotent and incremental writes into a collection per encoder version, the live alias
switched only when the new collection is complete, NRT records replaced by their definitive
ones); :func:`iter_batches` cuts a manifest and its embeddings into batches for it.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES, record_id
from sharpseek.search.index.named_vectors import SpaceVectors, slice_vectors, vectors_by_space
from sharpseek.search.index.points import FIELD_KINDS, Points, build_points, point_id
from sharpseek.search.index.types import CollectionInfo, ReindexResult, UpsertResult

__all__ = [
    "IndexWrites",
    "iter_batches",
]

log = logging.getLogger(__name__)


def iter_batches(
    rows: pd.DataFrame, vectors: SpaceVectors, size: int = 2000
) -> Iterator[tuple[pd.DataFrame, SpaceVectors]]:
    """Cut manifest rows and their embeddings into (rows, vectors) batches of ``size`` rows.

    ``vectors``: an array (n, dim), or a mapping space -> array (n, dim) (each batch then a
    mapping of the same spaces, arrays (size, dim)).
    """
    if isinstance(vectors, Mapping):
        vectors = {str(space): np.asarray(array) for space, array in vectors.items()}
        for space, array in vectors.items():
            if len(array) != len(rows):
                raise ValueError(f"{len(rows)} rows but {len(array)} {space!r} vectors")
    else:
        vectors = np.asarray(vectors)
        if len(vectors) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(vectors)} vectors")
    for start in range(0, len(rows), size):
        yield rows.iloc[start : start + size], slice_vectors(vectors, start, start + size)


class IndexWrites:
    """The write path of :class:`~sharpseek.search.index.base.VectorIndex`: reindex, upserts,
    NRT replacement and payload updates. A mixin: it relies on the index's backend primitives
    (``_upsert``, ``_existing``, ...) and its collection helpers (``_info``, ``_live_name``).
    """

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
            Manifest rows (DataFrame) and their embeddings, e.g. from :func:`iter_batches`:
            an array (n, dim) where the collection has one space, else a mapping space ->
            array (n, dim) with exactly its spaces (``config.spaces`` for a new collection).
            Consumed once; the first batch is checked before the collection is created.
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
        batches = iter(batches)
        first = next(batches, None)
        if first is not None:  # refuse vectors of the wrong spaces before creating anything
            spaces = self.config.spaces if info is None else info.spaces
            dim = self.config.dim if info is None else info.dim
            vectors_by_space(first[1], spaces, n=len(first[0]), dim=dim, collection=name)
            batches = itertools.chain([first], batches)
        if info is None:
            info = CollectionInfo(
                name=name,
                encoder_version=encoder_version,
                dim=self.config.dim,
                fields=self.config.fields,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                spaces=self.config.spaces,
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
        vectors: SpaceVectors,
        *,
        encoder_version: str,
        dataset_version: str,
    ) -> UpsertResult:
        """Add to the live collection the records it lacks (incremental indexing).

        Records already present are skipped (counted in ``skipped``). An NRT record whose
        definitive record is present (or in the same call) is not added (``superseded``);
        a definitive record deletes its NRT twin (``replaced``). ``encoder_version`` must be
        the live collection's: embeddings of two encoders never share a collection.

        ``vectors``: an array (n, dim) where the live collection has one space, else a
        mapping space -> array (n, dim) with exactly its spaces; anything else is a
        ValueError naming the collection and both sets of spaces, before any write.
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
        vectors: SpaceVectors,
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
        vectors: SpaceVectors,
        dataset_version: str,
    ) -> UpsertResult:
        points = build_points(
            rows,
            vectors,
            dim=info.dim,
            dataset_version=dataset_version,
            encoder_version=info.encoder_version,
            fields=info.fields,
            spaces=info.spaces,
            collection=name,
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
            if info.named_vectors:
                stored: Any = {space: array[chunk] for space, array in points.by_space.items()}
            else:
                stored = points.vectors[chunk]
            self._upsert(
                name, [points.ids[i] for i in chunk], stored, [points.payloads[i] for i in chunk]
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
