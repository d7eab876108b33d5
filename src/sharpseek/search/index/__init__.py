"""The vector index: SimSiam embeddings of SHARP frames in Qdrant, searchable with filters.

One interface, :class:`VectorIndex`, two backends:

- :class:`EdgeIndex` — qdrant-edge-py, Qdrant's engine in-process and on disk under a folder:
  the embedded default (no server);
- :class:`ServerIndex` — a Qdrant server through qdrant-client (the full stack), or
  qdrant-client's local mode as the tests' stand-in for a server.

A point is one frame: id from (series, HARPNUM, T_REC), vector = the 100-d SimSiam projection
output (SCIENCE.md), or one per vector space as Qdrant named vectors (``region`` and
``symmetric``; :mod:`~sharpseek.search.index.named_vectors`), payload = the manifest row (physics in
model space and physical units, T_REC, HARPNUM, NOAA numbers, position, QUALITY) plus dataset
and encoder versions.
Retrieval is by Euclidean distance; a hit's ``distance`` is that distance (smaller is closer).

Typical use::

    index = open_index("embedded", path=home / "index")
    index.reindex("simsiam-v0001", iter_batches(manifest, vectors), dataset_version="v0003")
    hits = index.search(query, limit=10, encoder_version="simsiam-v0001",
                        filter=SearchFilter(ranges={"tuf": (2e5, None)}, hemisphere="north"))

See docs/index.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sharpseek.search.index.base import VectorIndex, recall_at_k
from sharpseek.search.index.edge import EdgeIndex
from sharpseek.search.index.filters import SearchFilter
from sharpseek.search.index.points import INDEXED_FIELDS, build_points, point_id, region_key
from sharpseek.search.index.server import ServerIndex
from sharpseek.search.index.types import (
    CollectionInfo,
    EmptyIndexError,
    EncoderMismatchError,
    IndexBusyError,
    IndexConfig,
    IndexedRecord,
    ReindexResult,
    SearchHit,
    SpaceMissingError,
    UpsertResult,
)
from sharpseek.search.index.writes import iter_batches

__all__ = [
    "IndexBusyError",
    "INDEXED_FIELDS",
    "CollectionInfo",
    "EdgeIndex",
    "EmptyIndexError",
    "EncoderMismatchError",
    "IndexConfig",
    "IndexedRecord",
    "ReindexResult",
    "SearchFilter",
    "SearchHit",
    "ServerIndex",
    "SpaceMissingError",
    "UpsertResult",
    "VectorIndex",
    "build_points",
    "index_config",
    "iter_batches",
    "open_index",
    "open_index_from_settings",
    "point_id",
    "recall_at_k",
    "region_key",
]


def open_index(
    backend: Literal["embedded", "server"] = "embedded",
    *,
    path: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    config: IndexConfig | None = None,
) -> VectorIndex:
    """The index a deployment is configured for.

    ``embedded``: :class:`EdgeIndex` in the folder ``path``. ``server``: :class:`ServerIndex`
    on the Qdrant server at ``url`` (``api_key`` if it needs one).
    """
    if backend == "embedded":
        if path is None:
            raise ValueError("the embedded index needs a folder (path)")
        return EdgeIndex(path, config)
    if backend == "server":
        if not url:
            raise ValueError("the server index needs the Qdrant URL (url)")
        return ServerIndex.connect(url, api_key=api_key, config=config)
    raise ValueError(f"unknown index backend {backend!r}; choose 'embedded' or 'server'")


def index_config(settings, *, dim: int | None = None) -> IndexConfig:
    """The :class:`IndexConfig` of ``settings.index`` (``dim``: override, e.g. an encoder's;
    ``spaces`` from ``settings.index.spaces`` where the settings have it)."""
    section = settings.index
    spaces = getattr(section, "spaces", None)
    extra = {} if spaces is None else {"spaces": tuple(spaces)}
    return IndexConfig(
        name=section.collection,
        dim=int(dim if dim is not None else section.dim),
        exact_threshold=section.exact_threshold,
        hnsw_m=section.hnsw_m,
        hnsw_ef_construct=section.hnsw_ef_construct,
        hnsw_ef=section.hnsw_ef,
        indexing_threshold_kb=section.indexing_threshold_kb,
        batch_size=section.batch_size,
        write_timeout_s=section.write_timeout_s,
        **extra,
    )


def open_index_from_settings(settings, *, dim: int | None = None) -> VectorIndex:
    """The index ``settings.index`` describes: embedded in ``settings.index_dir``, or the
    Qdrant server at ``settings.index.url`` (API key from ``SHARPSEEK_INDEX__API_KEY``)."""
    section = settings.index
    key = section.api_key.get_secret_value() if section.api_key is not None else None
    return open_index(
        section.backend,
        path=settings.index_dir,
        url=section.url,
        api_key=key,
        config=index_config(settings, dim=dim),
    )
