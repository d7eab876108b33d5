"""The local-folder backend of the object store: each object is a file under a root folder.

A put writes a temporary file in the same folder, fsyncs it and renames it over the key, so a
crash never leaves a half-written object under the real key; temporaries are never listed.
Conditional writes create with a hard link and compare under an ``fcntl`` lock. The contract is
:class:`sharpseek.data.object_store.ObjectStore`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sharpseek.data.object_store import (
    _CHUNK,
    DEFAULT_CONTENT_TYPE,
    RESERVED_PREFIX,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    _check_folder,
    _check_metadata,
    _check_prefix,
    _check_put_file,
    _download_atomically,
    _sha256_file,
    check_key,
)

__all__ = ["LocalStore"]

_TMP_PREFIX = RESERVED_PREFIX + "tmp-"
_META_PREFIX = RESERVED_PREFIX + "meta."


def _utc_from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _write_chunks(dst: IO[bytes], chunks: Iterable[bytes], digest: Any) -> int:
    """Write ``chunks`` to ``dst``, feeding ``digest``; return the byte count."""
    size = 0
    for chunk in chunks:
        dst.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return size


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _holds_objects(folder: Path) -> bool:
    """Whether any object file lies under ``folder`` (stops at the first)."""
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
        if any(not name.startswith(RESERVED_PREFIX) for name in filenames):
            return True
    return False


class LocalStore(ObjectStore):
    """Objects as files under ``root`` (the key's segments are folders).

    Content type and user metadata, when given, go to a sidecar ``.sharpseek-meta.<name>.json``
    beside the file; it records the content's SHA-256 and is ignored once the file no longer
    matches it. Unlike S3, a key cannot be both an object and a folder (``a/b`` and ``a/b/c``).

    Parameters
    ----------
    root : path
        The folder holding the objects (``Settings.home``); created on the first put.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def describe(self) -> str:
        return f"local store at {self.root}"

    def url(self, key: str) -> str:
        return str(self._path(key))

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _key_of(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(f"{_META_PREFIX}{path.name}.json")

    # -- writing

    def put_bytes(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        check_key(key)
        meta, ctype = _check_metadata(metadata, content_type)
        return self._put(key, [bytes(data)], ctype, meta, explicit=content_type)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        source, meta, ctype = _check_put_file(key, path, metadata, content_type)
        return self._put(key, _file_chunks(source), ctype, meta, explicit=content_type)

    def _put(
        self,
        key: str,
        chunks: Iterable[bytes],
        content_type: str,
        metadata: dict[str, str],
        *,
        explicit: str | None,
    ) -> str:
        path = self._path(key)
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot put {key!r} in {self.describe()}: a part of its folder path is an "
                "object (a local key cannot be both an object and a folder)"
            ) from None
        if path.is_dir():
            raise StoreError(f"cannot put {key!r} in {self.describe()}: it is a folder of objects")
        digest = hashlib.sha256()
        tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        # O_EXCL: never clobber; mode 0o666 lets the umask decide, like any new file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                size = _write_chunks(f, chunks, digest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(folder)
        sha = digest.hexdigest()
        sidecar = self._meta_path(path)
        if metadata or explicit is not None:
            record = {
                "sha256": sha,
                "size": size,
                "content_type": content_type,
                "metadata": metadata,
            }
            self._write_small(sidecar, json.dumps(record, sort_keys=True).encode())
        else:
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()  # an overwrite replaces the metadata too, as on S3
        return sha

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def put_if(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        match: str | None,
        content_type: str | None = None,
    ) -> str:
        check_key(key)
        _check_metadata(None, content_type)
        data = bytes(data)
        path = self._path(key)
        folder = path.parent
        tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        for attempt in range(5):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                with tmp.open("xb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                break
            except FileNotFoundError:  # another process pruned the empty folder meanwhile
                if attempt == 4:
                    raise
        try:
            if match is None:
                try:
                    os.link(tmp, path)  # atomic, and fails when the name exists
                except FileExistsError:
                    raise PreconditionFailed(key, self.describe(), None) from None
            else:
                lock = folder / f"{RESERVED_PREFIX}lock.{path.name}"
                with lock.open("a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                    try:
                        current = _sha256_file(path)
                    except (FileNotFoundError, IsADirectoryError):
                        current = None
                    if current != match:
                        raise PreconditionFailed(key, self.describe(), match)
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(folder)
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(path).unlink()  # a stale sidecar would not match anyway
        return hashlib.sha256(data).hexdigest()

    def _write_small(self, path: Path, data: bytes) -> None:
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with tmp.open("xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    # -- reading

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key, self.describe())
        return path

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.describe()) from None

    def open_read(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.describe()) from None

    def get_file(self, key: str, path: str | os.PathLike[str]) -> Path:
        source = self._existing(key)

        def fill(dst: IO[bytes]) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, dst, _CHUNK)

        return _download_atomically(Path(path), fill)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        path = self._existing(key)
        st = path.stat()
        sha = _sha256_file(path)
        content_type, metadata = DEFAULT_CONTENT_TYPE, {}
        try:
            record = json.loads(self._meta_path(path).read_bytes())
        except (FileNotFoundError, ValueError):
            record = None
        if record and record.get("sha256") == sha:  # a stale sidecar describes older content
            content_type = record.get("content_type") or DEFAULT_CONTENT_TYPE
            metadata = dict(record.get("metadata") or {})
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=_utc_from_timestamp(st.st_mtime),
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
            sha256=sha,
            content_type=content_type,
            metadata=metadata,
        )

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=_utc_from_timestamp(st.st_mtime),
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        )

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        prefix = _check_prefix(prefix)
        folder_key = prefix.rpartition("/")[0]  # the folder the prefix's last segment is in
        base = self.root.joinpath(*folder_key.split("/")) if folder_key else self.root
        if not base.is_dir():
            return
        if recursive:
            yield from self._list_recursive(base, prefix)
        else:
            yield from self._list_level(base, folder_key, prefix)

    def _list_recursive(self, base: Path, prefix: str) -> Iterator[ObjectInfo]:
        found: dict[str, os.stat_result] = {}
        for dirpath, dirnames, filenames in os.walk(base):
            here = Path(dirpath)
            rel = self._key_of(here)
            rel = "" if rel == "." else rel + "/"
            # Prune folders that cannot hold a matching key (and the store's own).
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(RESERVED_PREFIX)
                and ((rel + d + "/").startswith(prefix) or prefix.startswith(rel + d + "/"))
            )
            for name in filenames:
                key = rel + name
                if name.startswith(RESERVED_PREFIX) or not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    found[key] = (here / name).stat()
        for key in sorted(found):
            yield self._info(key, found[key])

    def _list_level(self, base: Path, folder_key: str, prefix: str) -> Iterator[ObjectInfo]:
        entries: dict[str, ObjectInfo] = {}
        with os.scandir(base) as it:
            for entry in it:
                if entry.name.startswith(RESERVED_PREFIX):
                    continue
                key = f"{folder_key}/{entry.name}" if folder_key else entry.name
                if not key.startswith(prefix):
                    continue
                if entry.is_dir():
                    if _holds_objects(Path(entry.path)):
                        entries[key + "/"] = ObjectInfo(key + "/", 0, None, is_dir=True)
                elif entry.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        entries[key] = self._info(key, entry.stat())
        for key in sorted(entries):
            yield entries[key]

    # -- deleting

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # a folder is not an object (as on S3, deleting it does nothing)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(path).unlink()
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        folder = _check_folder(prefix)
        keys = [info.key for info in self.list(folder)]
        for key in keys:
            path = self._path(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(path).unlink()
        base = self.root.joinpath(*folder.rstrip("/").split("/"))
        if base.is_dir():
            for dirpath, _, _ in os.walk(base, topdown=False):
                with contextlib.suppress(OSError):  # not empty: a temporary or a foreign file
                    os.rmdir(dirpath)
        self._prune(base.parent)
        return len(keys)

    def _prune(self, folder: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


# --------------------------------------------------------------------------------------------
# S3 / MinIO
