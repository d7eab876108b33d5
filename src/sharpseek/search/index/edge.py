"""The embedded backend: qdrant-edge-py, Qdrant's engine in-process, on disk.

Layout under the index folder (``<home>/index`` by default)::

    <name>.live                          the pointer: {"collection": "<name>--<encoder>"},
                                         replaced atomically (write a temporary file, fsync,
                                         rename over the old one)
    write.lock                           held (fcntl) by the one process writing, and who it is
    readers/<pid>-<id>/                  each reading process's private copies (removed on close)
    collections/<name>--<encoder>/
        collection.json                  CollectionInfo: encoder version, dim, payload
                                         indexes, complete, dataset versions
        generation.json                  {"folder": "gen-000003", "points": n}: the published
                                         generation, replaced atomically
        gen-000003/                      an EdgeShard (segments, WAL, payload indexes)

One shard per encoder version plays the part of a Qdrant collection, and the pointer file
the part of an alias: every search reads the pointer once and queries that one shard.

Several processes share one index folder (the UI, ``sharpseek search``, ``sharpseek index
update``), with no server. An EdgeShard can be opened by one process only (it locks its
write-ahead log), so:

* a **reader** opens a private copy of the collection's published generation (copied once
  per generation, then reused; sparse, so a few milliseconds and about the shard's data
  size on disk) and checks
  ``generation.json`` before each request: it never waits for anyone, and sees the newer
  generation from the request after it is published;
* a **writer** takes ``write.lock`` (waiting, with a message, up to
  ``IndexConfig.write_timeout_s``, then :class:`IndexBusyError`), copies the live
  collection's generation to a new one, writes there, and publishes it by replacing
  ``generation.json`` (copy-on-write: readers keep the previous snapshot until the new one
  lands). A collection that is not live yet (a reindex filling it) is written in place, so
  an interrupted reindex resumes. Two writers cannot lose each other's points: the second
  one starts from the generation the first published.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from sharpseek.search.index.base import VectorIndex
from sharpseek.search.index.filters import Condition
from sharpseek.search.index.types import (
    DISTANCE,
    CollectionGone,
    CollectionInfo,
    IndexBusyError,
    IndexConfig,
    RawHit,
)

__all__ = ["EdgeIndex"]

log = logging.getLogger(__name__)

_SCHEMA = {
    "float": qe.PayloadSchemaType.Float,
    "integer": qe.PayloadSchemaType.Integer,
    "datetime": qe.PayloadSchemaType.Datetime,
    "keyword": qe.PayloadSchemaType.Keyword,
}
#: Qdrant's metric of :data:`~sharpseek.search.index.types.DISTANCE` (its score is then the
#: distance).
_METRIC = {"euclid": qe.Distance.Euclid}
INFO_FILE = "collection.json"
GENERATION_FILE = "generation.json"
LOCK_FILE = "write.lock"
READERS = "readers"
_LEGACY = "shard"  # the one shard folder of an index written before generations
#: Reader copies kept open per collection (older ones are closed and removed).
_KEEP_COPIES = 2


class EdgeIndex(VectorIndex):
    """The vector index on qdrant-edge-py, in the folder ``path`` (the embedded default).

    Examples
    --------
    >>> import tempfile
    >>> with EdgeIndex(tempfile.mkdtemp()) as index:
    ...     index.count()
    0
    """

    backend = "embedded"

    def __init__(self, path: str | os.PathLike, config: IndexConfig | None = None) -> None:
        super().__init__(config)
        self.path = Path(path).expanduser()
        self.path.mkdir(parents=True, exist_ok=True)
        self._work: dict[str, tuple[str, qe.EdgeShard]] = {}  # name -> writable generation
        self._copies: dict[str, list[tuple[str, qe.EdgeShard, Path]]] = {}  # reader copies
        self._readers: Path | None = None
        self._refreshing: dict[str, threading.Thread] = {}  # background copies under way
        self._writer: Any = None  # the open write.lock while this process writes
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"EdgeIndex({str(self.path)!r}, name={self.config.name!r})"

    # ------------------------------------------------------------------ files
    @property
    def pointer(self) -> Path:
        """The file naming the live collection."""
        return self.path / f"{self.config.name}.live"

    def _folder(self, name: str) -> Path:
        return self.path / "collections" / name

    def _live_name(self) -> str | None:
        try:
            text = self.pointer.read_text()
        except FileNotFoundError:
            return None
        try:
            return str(json.loads(text)["collection"])
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(
                f"the index pointer {self.pointer} is unreadable: {text!r}"
            ) from None

    def _set_live(self, name: str) -> None:
        _atomic_write(self.pointer, json.dumps({"collection": name}) + "\n")

    def _read_info(self, name: str) -> CollectionInfo | None:
        try:
            return CollectionInfo.from_json(
                json.loads((self._folder(name) / INFO_FILE).read_text())
            )
        except FileNotFoundError:
            return None

    def _write_info(self, name: str, info: CollectionInfo) -> None:
        _atomic_write(self._folder(name) / INFO_FILE, json.dumps(info.to_json(), indent=2) + "\n")

    def _names(self) -> list[str]:
        root = self.path / "collections"
        prefix = f"{self.config.name}--"
        if not root.is_dir():
            return []
        return [
            p.name
            for p in root.iterdir()
            if p.name.startswith(prefix) and (p / INFO_FILE).is_file()
        ]

    # ------------------------------------------------------------------ shards
    def _generation(self, name: str) -> dict[str, Any] | None:
        """The published generation of ``name``: {"folder", "points"} (points None when
        unknown), or None when the collection has no shard."""
        folder = self._folder(name)
        try:
            return dict(json.loads((folder / GENERATION_FILE).read_text()))
        except FileNotFoundError:
            pass
        except ValueError:
            raise RuntimeError(f"{folder / GENERATION_FILE} is unreadable") from None
        if (folder / _LEGACY).is_dir():
            return {"folder": _LEGACY, "points": None}
        return None

    def _publish_generation(self, name: str, gen: str, points: int) -> None:
        _atomic_write(
            self._folder(name) / GENERATION_FILE,
            json.dumps({"folder": gen, "points": int(points)}) + "\n",
        )

    @staticmethod
    def _next_generation(gen: str | None) -> str:
        number = int(gen.split("-")[1]) if gen and gen.startswith("gen-") else 0
        return f"gen-{number + 1:06d}"

    def _shard_config(self, info: CollectionInfo) -> qe.EdgeConfig:
        """One unnamed vector, or one named vector per space: (info.dim,), Euclidean."""
        params = qe.EdgeVectorParams(size=info.dim, distance=_METRIC[DISTANCE])
        return qe.EdgeConfig(
            vectors={s: params for s in info.spaces} if info.named_vectors else params,
            hnsw_config=qe.HnswIndexConfig(
                m=self.config.hnsw_m,
                ef_construct=self.config.hnsw_ef_construct,
                full_scan_threshold=self.config.full_scan_threshold_kb,
            ),
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=self.config.indexing_threshold_kb
            ),
        )

    def _create(self, name: str, info: CollectionInfo) -> None:
        folder = self._folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._acquire_writer()
            gen = self._next_generation(None)
            for stale in folder.iterdir():  # left by a crash before its info was written
                if stale.is_dir():
                    shutil.rmtree(stale)
            (folder / GENERATION_FILE).unlink(missing_ok=True)
            shard = qe.EdgeShard.create(str(folder / gen), self._shard_config(info))
            # indexes before points: built as points arrive (measured 5x cheaper than after)
            for key, kind in info.fields.items():
                shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))
            shard.flush()
            self._work[name] = (gen, shard)
            self._publish_generation(name, gen, 0)
        self._write_info(name, info)

    def _begin_write(self, name: str) -> None:
        """Take the writer lock and a writable generation of ``name``: a copy of the
        published one when ``name`` is live (readers keep that one), else the published one
        itself (nobody reads a collection that is not live)."""
        with self._lock:
            if name in self._work:
                return
            self._acquire_writer()
            current = self._generation(name)
            if current is None:
                self._release_writer_if_idle()
                raise CollectionGone(f"{self._folder(name)} has no shard")
            folder = self._folder(name)
            gen = current["folder"]
            if name == self._live_name():
                gen = self._next_generation(current["folder"])
                shutil.rmtree(folder / gen, ignore_errors=True)  # a crashed writer's
                _copy_tree(folder / current["folder"], folder / gen)
            self._work[name] = (gen, _load(folder / gen))

    def _end_write(self, name: str) -> None:
        """Publish the writable generation of ``name`` (flushed, closed) and, when no other
        write is open, release the writer lock; generations older than the previous one go."""
        with self._lock:
            work = self._work.pop(name, None)
            if work is None:
                return
            gen, shard = work
            shard.flush()
            points = int(shard.info().points_count)
            shard.close()
            previous = self._generation(name)
            self._publish_generation(name, gen, points)
            keep = {gen, previous["folder"] if previous else gen}
            for old in self._folder(name).iterdir():
                if old.is_dir() and old.name not in keep:
                    shutil.rmtree(old, ignore_errors=True)
            self._release_writer_if_idle()

    def _acquire_writer(self) -> None:
        if self._writer is not None:
            return
        handle = (self.path / LOCK_FILE).open("a+")
        deadline = time.monotonic() + self.config.write_timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if not waited:
                    log.warning(
                        "index %s: %s is writing to it; waiting up to %.0f s (searches go on)",
                        self.path, holder, self.config.write_timeout_s,
                    )  # fmt: skip
                    waited = True
                if time.monotonic() >= deadline:
                    handle.close()
                    raise IndexBusyError(
                        f"the index {self.path} is being written by {holder} for more than "
                        f"{self.config.write_timeout_s:g} s; nothing was written (retry "
                        "later, or raise SHARPSEEK_INDEX__WRITE_TIMEOUT_S)"
                    ) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._writer = handle

    def _release_writer_if_idle(self) -> None:
        if self._work or self._writer is None:
            return
        self._writer.seek(0)
        self._writer.truncate()
        fcntl.flock(self._writer, fcntl.LOCK_UN)
        self._writer.close()
        self._writer = None

    def _shard(self, name: str) -> qe.EdgeShard:
        """The working shard when this process writes ``name``, else a private copy of its
        published generation. When a newer generation has been published, it is copied in
        the background and this request (and those until the copy lands) is served from the
        newest copy already open: a search never waits for a copy, only the first one does."""
        with self._lock:
            work = self._work.get(name)
            if work is not None:
                return work[1]
            current = self._generation(name)
            if current is None:
                raise CollectionGone(f"{self._folder(name)} has no shard")
            copies = self._copies.setdefault(name, [])
            for gen, shard, _ in copies:
                if gen == current["folder"]:
                    return shard
            if copies:
                refresh = self._refreshing.get(name)
                if refresh is None or not refresh.is_alive():
                    refresh = threading.Thread(target=self._copy_current, args=(name,), daemon=True)
                    self._refreshing[name] = refresh
                    refresh.start()
                return copies[-1][1]
        return self._copy_current(name)

    def _copy_current(self, name: str) -> qe.EdgeShard:
        """Copy and open the published generation of ``name`` (looking again when a writer
        removed it meanwhile); keep at most ``_KEEP_COPIES`` copies open."""
        for _ in range(5):
            current = self._generation(name)
            if current is None:
                raise CollectionGone(f"{self._folder(name)} has no shard")
            gen = current["folder"]
            with self._lock:
                for have, shard, _ in self._copies.get(name, []):
                    if have == gen:
                        return shard
                target = self._reader_dir() / f"{name}.{gen}.{uuid.uuid4().hex[:6]}"
            try:
                _copy_tree(self._folder(name) / gen, target)
            except (FileNotFoundError, shutil.Error, subprocess.CalledProcessError):
                shutil.rmtree(target, ignore_errors=True)
                continue
            shard = _load(target)
            with self._lock:
                copies = self._copies.setdefault(name, [])
                copies.append((gen, shard, target))
                while len(copies) > _KEEP_COPIES:  # searches take ms: the oldest is idle
                    _, old, path = copies.pop(0)
                    old.close()
                    shutil.rmtree(path, ignore_errors=True)
            return shard
        raise RuntimeError(f"the index {self._folder(name)} kept changing while being read")

    def _reader_dir(self) -> Path:
        if self._readers is None:
            root = self.path / READERS
            root.mkdir(exist_ok=True)
            for other in root.iterdir():  # copies of processes that died without closing
                pid = other.name.split("-")[0]
                if pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(other, ignore_errors=True)
            self._readers = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        return self._readers

    def _drop(self, name: str) -> None:
        with self._lock:
            self._acquire_writer()
            work = self._work.pop(name, None)
            if work is not None:
                work[1].close()
            for _, shard, path in self._copies.pop(name, []):
                shard.close()
                shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(self._folder(name), ignore_errors=True)
            self._release_writer_if_idle()

    def close(self) -> None:
        """Publish what this process wrote, close every shard and remove its private
        copies (the index can be reopened from its folder)."""
        for refresh in list(self._refreshing.values()):
            refresh.join()
        self._refreshing.clear()
        with self._lock:
            for name in list(self._work):
                self._end_write(name)
            for copies in self._copies.values():
                for _, shard, _path in copies:
                    shard.close()
            self._copies.clear()
            if self._readers is not None:
                shutil.rmtree(self._readers, ignore_errors=True)
                self._readers = None
            self._release_writer_if_idle()

    def optimize(self) -> bool:
        """Merge segments and build the HNSW graph of the live collection (blocking)."""
        name = self._live_name()
        if name is None:
            return False
        return self._optimize(name)

    def _optimize(self, name: str) -> bool:
        self._begin_write(name)
        try:
            changed = self._shard(name).optimize()
        finally:
            self._end_write(name)
        return bool(changed)

    def _after_fill(self, name: str, points: int) -> None:
        if points >= self.config.exact_threshold:
            log.info("index %s: building the HNSW graph of %d points", name, points)
            self._optimize(name)

    # ------------------------------------------------------------------ points
    def _upsert(
        self,
        name: str,
        ids: list[str],
        vectors: np.ndarray | dict[str, np.ndarray],
        payloads: list,
    ) -> None:
        if isinstance(vectors, dict):  # named vectors: one {space: vector} per point
            lists = {space: array.tolist() for space, array in vectors.items()}
            rows: list = [{s: v[i] for s, v in lists.items()} for i in range(len(ids))]
        else:
            rows = vectors.tolist()
        points = [qe.Point(i, v, p) for i, v, p in zip(ids, rows, payloads, strict=True)]
        self._shard(name).update(qe.UpdateOperation.upsert_points(points))

    def _delete(self, name: str, ids: list[str]) -> None:
        self._shard(name).update(qe.UpdateOperation.delete_points(list(ids)))

    def _existing(self, name: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        records = self._shard(name).retrieve(list(ids), with_payload=False, with_vector=False)
        return {str(r.id) for r in records}

    def _scroll(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, dict]], Any]:
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=False)
        records, after = self._shard(name).scroll(request)
        return [(str(r.id), r.payload or {}) for r in records], after

    def _set_payload(self, name: str, ids: list[str], payload: dict[str, Any]) -> None:
        self._shard(name).update(qe.UpdateOperation.set_payload(list(ids), dict(payload)))

    def _delete_payload(self, name: str, ids: list[str], keys: list[str]) -> None:
        self._shard(name).update(qe.UpdateOperation.delete_payload(list(ids), list(keys)))

    def _add_field_index(self, name: str, key: str, kind: str) -> None:
        self._shard(name).update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))

    def _count(self, name: str) -> int:
        if name not in self._work:
            current = self._generation(name)
            if current is not None and current.get("points") is not None:
                return int(current["points"])  # published with its generation
        return int(self._shard(name).info().points_count)

    def _flush(self, name: str) -> None:
        self._end_write(name)

    def _retrieve(self, name: str, ids: list[str], with_vector: bool) -> list[tuple]:
        records = self._shard(name).retrieve(list(ids), with_payload=True, with_vector=with_vector)
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
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=using),
            filter=_filter(must, must_not),
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=hnsw_ef, exact=exact),
        )
        return [
            (str(p.id), float(p.score), p.payload or {}) for p in self._shard(name).query(request)
        ]


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a shard folder. Its files are mostly preallocated and empty (sparse): GNU cp
    keeps them sparse (and shares blocks where the filesystem can), ~2 MB written instead
    of ~300 MB for a small collection; elsewhere a plain copy."""
    cp = shutil.which("cp")
    if cp is not None:
        done = subprocess.run(
            [cp, "-a", "--reflink=auto", "--sparse=always", str(source), str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return
        if not source.is_dir():
            raise FileNotFoundError(source)
        if "unrecognized option" not in done.stderr and "illegal option" not in done.stderr:
            raise subprocess.CalledProcessError(done.returncode, done.args, stderr=done.stderr)
        shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _load(path: Path) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as err:  # the bindings raise a bare Exception
        if "WouldBlock" in str(err):
            raise RuntimeError(f"{path} is open in another process") from err
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _filter(must: list[Condition], must_not: list[Condition]) -> qe.Filter | None:
    if not must and not must_not:
        return None
    return qe.Filter(
        must=[_condition(c) for c in must] or None,
        must_not=[_condition(c) for c in must_not] or None,
    )


def _condition(c: Condition) -> qe.FieldCondition:
    if c.op == "range":
        return qe.FieldCondition(key=c.key, range=qe.RangeFloat(**c.value))
    if c.op == "datetime_range":
        return qe.FieldCondition(key=c.key, range=qe.RangeDateTime(**c.value))
    if c.op == "any":
        return qe.FieldCondition(key=c.key, match=qe.MatchAny(list(c.value)))
    raise ValueError(f"unknown condition {c.op!r}")


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
