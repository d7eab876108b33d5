"""The server backend: a Qdrant server through qdrant-client (the full stack).

Collections are Qdrant collections ``<name>--<encoder_version>``; the live one is named by a
Qdrant alias ``<name>``, switched with one ``update_collection_aliases`` request (delete +
create, atomic on the server). What a collection is (:class:`CollectionInfo`) is kept in
Qdrant's collection metadata, which needs a server that has collection metadata (1.16 or
later). Grouping by region uses Qdrant's own ``query_points_groups`` (one request).

``ServerIndex.local()`` runs the same code on qdrant-client's local mode, the tests'
stand-in for a server: same client API, but no HTTP, no HNSW (always exact), no payload
indexes (filters evaluated in Python), and on-disk mode commits each point; fine for tests,
not for serving. See docs/index.md for what that leaves untested.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from sharpseek.search.index.base import VectorIndex
from sharpseek.search.index.filters import Condition
from sharpseek.search.index.types import (
    DISTANCE,
    CollectionGone,
    CollectionInfo,
    IndexConfig,
    RawHit,
)

__all__ = ["ServerIndex"]

log = logging.getLogger(__name__)

_SCHEMA = {
    "float": qm.PayloadSchemaType.FLOAT,
    "integer": qm.PayloadSchemaType.INTEGER,
    "datetime": qm.PayloadSchemaType.DATETIME,
    "keyword": qm.PayloadSchemaType.KEYWORD,
}
#: Qdrant's metric of :data:`~sharpseek.search.index.types.DISTANCE` (its score is then the
#: distance).
_METRIC = {"euclid": qm.Distance.EUCLID}
_META_KEY = "sharpseek"


class ServerIndex(VectorIndex):
    """The vector index on a Qdrant server (or qdrant-client's local mode).

    Parameters
    ----------
    client : QdrantClient
        Made by the caller (:meth:`connect`, :meth:`local`): no client is built at import.
    config : IndexConfig
    size_ttl_s : float
        How long a collection's point count is reused for the exact-or-HNSW choice.
    """

    backend = "server"

    def __init__(
        self, client: QdrantClient, config: IndexConfig | None = None, *, size_ttl_s: float = 30.0
    ) -> None:
        super().__init__(config)
        self.client = client
        self.size_ttl_s = size_ttl_s
        self._sizes: dict[str, tuple[float, int]] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        config: IndexConfig | None = None,
    ) -> ServerIndex:
        """An index on the Qdrant server at ``url`` (e.g. ``http://qdrant:6333``)."""
        return cls(QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s)), config)

    @classmethod
    def local(
        cls, path: str | Path | None = None, config: IndexConfig | None = None
    ) -> ServerIndex:
        """An index on qdrant-client's local mode: in memory, or in the folder ``path``."""
        client = QdrantClient(location=":memory:") if path is None else QdrantClient(path=str(path))
        return cls(client, config)

    def __repr__(self) -> str:
        return f"ServerIndex({type(self.client._client).__name__}, name={self.config.name!r})"

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ collections
    def _live_name(self) -> str | None:
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.config.name:
                return alias.collection_name
        return None

    def _set_live(self, name: str) -> None:
        operations: list = []
        if self._live_name() is not None:
            operations.append(
                qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.config.name))
            )
        operations.append(
            qm.CreateAliasOperation(
                create_alias=qm.CreateAlias(collection_name=name, alias_name=self.config.name)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def _read_info(self, name: str) -> CollectionInfo | None:
        if not self.client.collection_exists(name):
            return None
        metadata = self.client.get_collection(name).config.metadata or {}
        if _META_KEY not in metadata:
            raise RuntimeError(
                f"collection {name} has no sharpseek metadata: it was not made by sharpseek "
                f"(or the server predates collection metadata, Qdrant 1.16)"
            )
        return CollectionInfo.from_json(metadata[_META_KEY])

    def _write_info(self, name: str, info: CollectionInfo) -> None:
        self.client.update_collection(name, metadata={_META_KEY: info.to_json()})

    def _names(self) -> list[str]:
        prefix = f"{self.config.name}--"
        return [
            c.name for c in self.client.get_collections().collections if c.name.startswith(prefix)
        ]

    def _create(self, name: str, info: CollectionInfo) -> None:
        """One unnamed vector, or one named vector per space: (info.dim,), Euclidean."""
        params = qm.VectorParams(size=info.dim, distance=_METRIC[DISTANCE])
        self.client.create_collection(
            name,
            vectors_config={s: params for s in info.spaces} if info.named_vectors else params,
            hnsw_config=qm.HnswConfigDiff(
                m=self.config.hnsw_m,
                ef_construct=self.config.hnsw_ef_construct,
                full_scan_threshold=self.config.full_scan_threshold_kb,
            ),
            optimizers_config=qm.OptimizersConfigDiff(
                indexing_threshold=self.config.indexing_threshold_kb
            ),
            metadata={_META_KEY: info.to_json()},
        )
        for key, kind in info.fields.items():
            self.client.create_payload_index(name, key, _SCHEMA[kind], wait=True)

    def _drop(self, name: str) -> None:
        self._sizes.pop(name, None)
        self.client.delete_collection(name)

    # ------------------------------------------------------------------ points
    def _upsert(
        self,
        name: str,
        ids: list[str],
        vectors: np.ndarray | dict[str, np.ndarray],
        payloads: list,
    ) -> None:
        if isinstance(vectors, dict):  # named vectors: space -> (n, dim)
            lists: Any = {space: array.tolist() for space, array in vectors.items()}
        else:
            lists = vectors.tolist()
        batch = qm.Batch(ids=list(ids), vectors=lists, payloads=list(payloads))
        with _gone(name):
            self.client.upsert(name, points=batch, wait=True)

    def _delete(self, name: str, ids: list[str]) -> None:
        with _gone(name):
            self.client.delete(name, points_selector=qm.PointIdsList(points=list(ids)), wait=True)

    def _existing(self, name: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with _gone(name):
            records = self.client.retrieve(name, list(ids), with_payload=False, with_vectors=False)
        return {str(r.id) for r in records}

    def _scroll(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, dict]], Any]:
        with _gone(name):
            records, after = self.client.scroll(
                name, limit=limit, offset=offset, with_payload=True, with_vectors=False
            )
        return [(str(r.id), r.payload or {}) for r in records], after

    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None:
        with _gone(name):
            self.client.set_payload(name, payload=dict(payload), points=list(ids), wait=True)

    def _delete_payload(self, name: str, ids: list[str], keys: list[str]) -> None:
        with _gone(name):
            self.client.delete_payload(name, keys=list(keys), points=list(ids), wait=True)

    def _add_field_index(self, name: str, key: str, kind: str) -> None:
        self.client.create_payload_index(name, key, _SCHEMA[kind], wait=True)

    def _count(self, name: str) -> int:
        with _gone(name):
            n = int(self.client.count(name, exact=True).count)
        self._sizes[name] = (time.monotonic(), n)
        return n

    def _size(self, name: str) -> int:
        cached = self._sizes.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.size_ttl_s:
            return cached[1]
        return self._count(name)

    def _retrieve(self, name: str, ids: list[str], with_vector: bool) -> list[tuple]:
        with _gone(name):
            records = self.client.retrieve(
                name, list(ids), with_payload=True, with_vectors=with_vector
            )
        return [(str(r.id), r.payload, r.vector if with_vector else None) for r in records]

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
        with _gone(name):
            response = self.client.query_points(
                name,
                query=vector,
                using=using,
                limit=limit,
                query_filter=_filter(must, must_not),
                search_params=qm.SearchParams(hnsw_ef=hnsw_ef, exact=exact),
                with_payload=True,
            )
        return [(str(p.id), float(p.score), p.payload or {}) for p in response.points]

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
        """Qdrant's own grouping (``query_points_groups`` on ``region``, in the named vector
        ``using``, None the unnamed one): one request."""
        with _gone(name):
            response = self.client.query_points_groups(
                name,
                group_by="region",
                query=vector,
                using=using,
                limit=limit,
                group_size=per_region,
                query_filter=_filter(must, must_not),
                search_params=qm.SearchParams(hnsw_ef=hnsw_ef, exact=exact),
                with_payload=True,
            )
        return [
            (str(p.id), float(p.score), p.payload or {})
            for group in response.groups
            for p in group.hits
        ]


@contextlib.contextmanager
def _gone(name: str) -> Iterator[None]:
    """Map "no such collection" (local mode: ValueError; server: HTTP 404) to CollectionGone."""
    try:
        yield
    except UnexpectedResponse as err:
        if err.status_code == 404:
            raise CollectionGone(f"collection {name} does not exist") from err
        raise
    except ValueError as err:
        if "not found" in str(err) and name in str(err):
            raise CollectionGone(f"collection {name} does not exist") from err
        raise


def _filter(must: list[Condition], must_not: list[Condition]) -> qm.Filter | None:
    if not must and not must_not:
        return None
    return qm.Filter(
        must=[_condition(c) for c in must] or None,
        must_not=[_condition(c) for c in must_not] or None,
    )


def _condition(c: Condition) -> qm.FieldCondition:
    if c.op == "range":
        return qm.FieldCondition(key=c.key, range=qm.Range(**c.value))
    if c.op == "datetime_range":
        return qm.FieldCondition(key=c.key, range=qm.DatetimeRange(**c.value))
    if c.op == "any":
        return qm.FieldCondition(key=c.key, match=qm.MatchAny(any=list(c.value)))
    raise ValueError(f"unknown condition {c.op!r}")
