"""Object storage for sharpseek's artifacts: a local folder (the default) or MinIO/S3.

Every artifact (raw FITS, dataset shards and manifests, checkpoints, directions, model
archives) is an *object* under a *key*, a POSIX-style relative path::

    raw/hmi.sharp_cea_720s/377/hmi.sharp_cea_720s.377.20110215_000000_TAI.Br.fits
    datasets/synthetic/v1/manifest.parquet
    models/gan/v3/last.ckpt

One interface, :class:`ObjectStore`, has two backends with the same semantics (one contract
test suite runs against both):

* :class:`LocalStore` keeps each object as a file under a root folder (``SHARPSEEK_HOME``), so
  ``datasets/...`` in the store is ``<home>/datasets/...`` on disk. A put writes a temporary
  file in the same folder, fsyncs it and renames it over the key, so a crash never leaves a
  half-written object under the real key; temporaries are never listed.
* :class:`S3Store` talks to MinIO or any S3 server through the ``minio`` SDK. A put is one
  object (large ones go up as a multipart upload, which S3 only makes visible when complete),
  so it is atomic too. Transient failures (connection errors, HTTP 5xx, ``SlowDown``) are
  retried with exponential backoff; then a :class:`StoreUnavailableError` names the endpoint
  and the key. Rejected credentials raise :class:`StoreAuthError`, which names the endpoint and
  the bucket but never the keys.

Writers that must not lose each other's work use the two conditional operations:
``get_versioned(key)`` returns the content and its *token* (S3: the ETag; local: the
SHA-256), and ``put_if(key, data, match=token)`` replaces the object only if it still has
that token, ``put_if(key, data, match=None)`` creates it only if it is absent. Otherwise
:class:`PreconditionFailed` names the key: S3 answers 412 to ``If-Match`` /
``If-None-Match: *`` (one request, decided by the server); a local folder creates with a
hard link (which fails when the name exists) and compares under an ``fcntl`` lock.

A missing object raises :class:`ObjectNotFound` (a ``KeyError``) naming the key. Keys are
checked before any I/O: absolute keys, ``..`` segments, empty keys and backslashes raise
``ValueError`` naming the key.

Each put records the SHA-256 of the bytes written and returns it. ``stat`` reports it:
LocalStore hashes the file; S3Store reads it from the object's user metadata (``sha256``),
so it is ``None`` for objects that something else put there.

Examples
--------
>>> import tempfile
>>> store = LocalStore(tempfile.mkdtemp())
>>> digest = store.put_bytes("datasets/demo/v1/dataset.json", b"{}")
>>> store.get_bytes("datasets/demo/v1/dataset.json")
b'{}'
>>> [info.key for info in store.list("datasets/demo/")]
['datasets/demo/v1/dataset.json']
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name
from pydantic import SecretStr

from sharpseek.config import Settings

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "LocalStore",
    "S3Store",
    "open_store",
    "check_key",
    "StoreError",
    "StoreConfigError",
    "StoreAuthError",
    "StoreUnavailableError",
    "ObjectNotFound",
    "PreconditionFailed",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Content type of objects put without one (what S3 assumes too).
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: File and folder names starting with this are the store's own (temporaries, metadata
#: sidecars); keys may not use it.
RESERVED_PREFIX = ".sharpseek-"
_TMP_PREFIX = RESERVED_PREFIX + "tmp-"
_META_PREFIX = RESERVED_PREFIX + "meta."
_CHUNK = 1024 * 1024  # bytes per read/write when copying streams
_MAX_KEY_BYTES = 1024  # the S3 limit on key length (UTF-8)
_MAX_METADATA_BYTES = 2048  # the S3 limit on user metadata (names + values)
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}\Z")
_SHA256_META = "sha256"  # user-metadata name under which S3Store records the SHA-256
_MIB = 1024 * 1024

ENV_ENDPOINT = "SHARPSEEK_STORE__ENDPOINT"
ENV_ACCESS_KEY = "SHARPSEEK_STORE__ACCESS_KEY"
ENV_SECRET_KEY = "SHARPSEEK_STORE__SECRET_KEY"
ENV_BUCKET = "SHARPSEEK_STORE__BUCKET"


# --------------------------------------------------------------------------------------------
# Errors


class StoreError(Exception):
    """Base class of the store's errors."""


class StoreConfigError(StoreError, ValueError):
    """The store settings are incomplete or invalid (names the environment variables)."""


class StoreAuthError(StoreError):
    """The S3 server refused the credentials. Names endpoint and bucket, never the keys."""

    def __init__(self, message: str, *, endpoint: str = "", bucket: str = ""):
        super().__init__(message)
        self.endpoint = endpoint
        self.bucket = bucket

    def __reduce__(self):  # picklable, for worker processes
        return type(self), (self.args[0],), self.__dict__


class StoreUnavailableError(StoreError):
    """The store could not be reached (after retries); names the endpoint and the key."""

    def __init__(self, message: str, *, endpoint: str = "", key: str | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        self.key = key

    def __reduce__(self):  # picklable, for worker processes
        return type(self), (self.args[0],), self.__dict__


class ObjectNotFound(StoreError, KeyError):
    """No object under the key. A ``KeyError``, so ``except KeyError`` catches it."""

    def __init__(self, key: str, where: str):
        super().__init__(f"no object {key!r} in {where}")
        self.key = key
        self.where = where

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])

    def __reduce__(self):  # picklable, for worker processes
        return type(self), (self.key, self.where)


class PreconditionFailed(StoreError):
    """A conditional put found the object changed (or present): another writer got there
    first. Names the key; nothing was written."""

    def __init__(self, key: str, where: str, expected: str | None):
        wanted = "absent" if expected is None else f"at token {expected[:16]}"
        super().__init__(f"{key!r} in {where} changed meanwhile (expected it {wanted})")
        self.key = key
        self.where = where
        self.expected = expected

    def __reduce__(self):  # picklable, for worker processes
        return type(self), (self.key, self.where, self.expected)


# --------------------------------------------------------------------------------------------
# Keys and metadata


def _key_problem(key: str, *, prefix: bool) -> str | None:
    """Why ``key`` is not a valid key (or prefix, which may be empty or end in '/')."""
    if key == "":
        return None if prefix else "the key is empty"
    if key.startswith("/"):
        return "absolute keys are not allowed (keys are relative, like 'raw/...')"
    if "\\" in key:
        return "backslashes are not allowed; separate segments with '/'"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "control characters are not allowed"
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        return f"longer than {_MAX_KEY_BYTES} bytes"
    segments = key.split("/")
    if prefix:  # 'a/b/' and 'a/b' (any string prefix) are both fine
        segments = segments[:-1] if segments[-1] == "" else segments
    for segment in segments:
        if segment == "":
            return "empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return "'.' and '..' segments are not allowed"
        if segment.startswith(RESERVED_PREFIX):
            return f"segments starting with {RESERVED_PREFIX!r} are reserved for the store"
    return None


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ``ValueError`` naming it.

    A key is a non-empty, relative, POSIX-style path of at most 1024 UTF-8 bytes without
    backslashes, control characters, empty, ``.`` or ``..`` segments, or segments starting
    with ``.sharpseek-`` (the store's own temporaries).
    """
    if not isinstance(key, str):
        raise ValueError(f"invalid object key {key!r}: keys are str, not {type(key).__name__}")
    problem = _key_problem(key, prefix=False)
    if problem:
        raise ValueError(f"invalid object key {key!r}: {problem}")
    return key


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"invalid key prefix {prefix!r}: prefixes are str")
    problem = _key_problem(prefix, prefix=True)
    if problem:
        raise ValueError(f"invalid key prefix {prefix!r}: {problem}")
    return prefix


def _check_folder(prefix: str) -> str:
    """A non-empty prefix, read as a folder: 'a/b' and 'a/b/' both mean 'a/b/'."""
    _check_prefix(prefix)
    if prefix == "":
        raise ValueError("refusing to delete an empty prefix (that would empty the whole store)")
    return prefix if prefix.endswith("/") else prefix + "/"


def _printable_ascii(text: str) -> bool:
    return all(32 <= ord(c) < 127 for c in text)


def _check_metadata(
    metadata: Mapping[str, str] | None, content_type: str | None
) -> tuple[dict[str, str], str]:
    """Validated user metadata and content type (both travel as HTTP headers on S3)."""
    if content_type is not None and (not content_type or not _printable_ascii(content_type)):
        raise ValueError(f"invalid content type {content_type!r}: use printable ASCII")
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _METADATA_NAME.match(name):
            raise ValueError(
                f"invalid metadata name {name!r}: use lowercase letters, digits, '-' and '_'"
            )
        if name == _SHA256_META:
            raise ValueError(f"metadata name {name!r} is reserved (the store records it)")
        if not isinstance(value, str) or not _printable_ascii(value):
            raise ValueError(f"invalid metadata value for {name!r}: use printable ASCII str")
        out[name] = value
    if sum(len(k) + len(v) for k, v in out.items()) > _MAX_METADATA_BYTES:
        raise ValueError(f"metadata larger than {_MAX_METADATA_BYTES} bytes")
    return out, content_type or DEFAULT_CONTENT_TYPE


# --------------------------------------------------------------------------------------------
# The interface


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object (or, with ``is_dir``, one folder prefix).

    Attributes
    ----------
    key : str
        The object's key; a folder prefix ends with '/' (non-recursive listings only).
    size : int
        Size in bytes (0 for a folder prefix).
    modified : datetime or None
        Last modification time, timezone-aware UTC (None for a folder prefix).
    etag : str or None
        Opaque change token: the S3 ETag, or ``<mtime_ns>-<size>`` in hex for a local file.
    sha256 : str or None
        SHA-256 of the content, hex. Only :meth:`ObjectStore.stat` fills it: LocalStore
        hashes the file; S3Store reads what its put recorded (None if another tool put it).
    content_type : str or None
        Content type given at put time (default ``application/octet-stream``); ``stat`` only.
    metadata : dict of str to str
        User metadata given at put time; ``stat`` only (listings leave it empty).
    is_dir : bool
        True for a folder prefix in a non-recursive listing.
    """

    key: str
    size: int
    modified: datetime | None
    etag: str | None = None
    sha256: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    is_dir: bool = False


@runtime_checkable
class ObjectStore(Protocol):
    """The object-store interface shared by :class:`LocalStore` and :class:`S3Store`."""

    def put_bytes(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store ``data`` under ``key`` atomically (replacing any object); return its SHA-256.

        ``metadata``: lowercase names, printable-ASCII values, at most 2 KiB in all.
        """
        ...

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store the file at ``path`` under ``key`` atomically; return its SHA-256."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's content; :class:`ObjectNotFound` when there is none."""
        ...

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's content and its change token (for :meth:`put_if`), read together."""
        ...

    def put_if(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        match: str | None,
        content_type: str | None = None,
    ) -> str:
        """Compare-and-swap: store ``data`` only if the object still has the token ``match``
        (from :meth:`get_versioned`), or, with ``match=None``, only if there is no object.
        Returns the new token; raises :class:`PreconditionFailed` and writes nothing
        otherwise."""
        ...

    def get_file(self, key: str, path: str | os.PathLike[str]) -> Path:
        """Write the object to ``path`` (via ``<path>.part``, then a rename); return ``path``."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key`` (a folder prefix is not an object)."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size, time, etag, SHA-256, content type and metadata of one object."""
        ...

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), in key order.

        Non-recursive: only the level below the prefix's last '/', with sub-folders as
        entries whose key ends in '/' and ``is_dir=True``.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error (as on S3)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the folder ``prefix`` ('a/b' means 'a/b/'); return count."""
        ...

    def open_read(self, key: str) -> IO[bytes]:
        """A seekable binary stream of the object (``numpy.load`` works on it); close it."""
        ...

    def url(self, key: str) -> str:
        """Where the object lives, for people: a file path or ``s3://bucket/key``."""
        ...

    def describe(self) -> str:
        """One line for logs: backend and location, never credentials."""
        ...


def _utc_from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def _download_atomically(path: Path, fill: Callable[[IO[bytes]], None]) -> Path:
    """Run ``fill`` on ``<path>.part``, fsync, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with part.open("wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return path


# --------------------------------------------------------------------------------------------
# Local folder


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
        check_key(key)
        meta, ctype = _check_metadata(metadata, content_type)
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot put {key!r}: no file at {source}")
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

# Error codes, from the S3 and MinIO error references.
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "SlowDownRead",
        "SlowDownWrite",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "XMinioServerNotInitialized",
    }
)
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# What a dropped, refused or timed-out connection raises (urllib3 wraps most in HTTPError).
_CONNECTION_ERRORS = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def _classify(exc: BaseException) -> str | None:
    """'auth', 'missing', 'no-bucket', 'transient', 'refused' (other S3 error) or None."""
    if isinstance(exc, S3Error):
        if exc.code in _AUTH_CODES:
            return "auth"
        if exc.code == "NoSuchKey":
            return "missing"
        if exc.code == "NoSuchBucket":
            return "no-bucket"
        status = getattr(exc.response, "status", None)
        if exc.code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS:
            return "transient"
        return "refused"
    if isinstance(exc, ServerError):
        return "transient" if exc.status_code >= 500 else "refused"
    if isinstance(exc, InvalidResponseError):  # a non-XML answer, e.g. from a proxy
        status = getattr(exc, "_code", None)  # the HTTP status (the SDK keeps it private)
        return "transient" if status in _TRANSIENT_STATUS else "refused"
    if isinstance(exc, _CONNECTION_ERRORS):
        return "transient"
    return None


def _what(action: str, key: str | None, stage: str = "") -> str:
    """'uploading 'a/b.bin'' and the like, for logs and error messages."""
    return (f"{action} {key!r}" if key is not None else action) + stage


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """``host:port`` and TLS flag; a URL's scheme (http/https) overrides ``secure``."""
    text = endpoint.strip()
    if "@" in text:  # do not echo it: it may carry credentials
        raise StoreConfigError(
            f"the S3 endpoint ({ENV_ENDPOINT}) must be host:port without credentials"
        )
    if "://" not in text:
        host, use_tls = text, secure
    else:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
            raise StoreConfigError(
                f"invalid S3 endpoint {endpoint!r} ({ENV_ENDPOINT}): use host:port "
                "or http(s)://host:port, without a path"
            )
        host, use_tls = parts.netloc, parts.scheme == "https"
    if not host or "/" in host:
        raise StoreConfigError(
            f"invalid S3 endpoint {endpoint!r} ({ENV_ENDPOINT}): use host:port, e.g. minio:9000"
        )
    return host, use_tls


class S3Store(ObjectStore):
    """Objects in one bucket of MinIO or any S3 server, through the ``minio`` SDK.

    Parameters
    ----------
    endpoint : str
        ``host:port`` (``minio:9000``) or ``http(s)://host:port``; a URL's scheme decides TLS.
    bucket : str
        The bucket holding every key.
    access_key, secret_key : SecretStr or str
        Credentials; read once, to build the client, and never logged.
    secure : bool
        Use TLS (ignored when ``endpoint`` has a scheme).
    region : str, optional
        The bucket's region; None asks the server (one extra request per bucket).
    create_bucket : bool
        Create the bucket on first use when it is missing; else a missing bucket is an error.
    retries : int
        Retries of a transient failure (connection errors, HTTP 5xx, SlowDown) per operation.
    backoff_seconds : float
        First retry delay; it doubles each retry, up to ``max_backoff_seconds``.
    max_backoff_seconds : float
        Longest delay between two tries.
    connect_timeout, read_timeout : float
        Seconds to open a connection / to wait for data on it.
    part_size : int
        Multipart part size in bytes (>= 5 MiB); smaller objects go up in one request.
        Each upload holds one part in memory.
    spool_bytes : int
        ``open_read`` keeps objects up to this size in memory, larger ones in a temp file.
    http_client : urllib3.PoolManager, optional
        A preconfigured pool (own CA bundle, proxy, ...). Leave its retries off (``False``):
        the store retries whole operations itself.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: SecretStr | str,
        secret_key: SecretStr | str,
        secure: bool = True,
        region: str | None = None,
        *,
        create_bucket: bool = True,
        retries: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        part_size: int = 16 * _MIB,
        spool_bytes: int = 64 * _MIB,
        http_client: urllib3.PoolManager | None = None,
    ):
        host, use_tls = _parse_endpoint(endpoint, secure)
        if retries < 0 or backoff_seconds < 0 or max_backoff_seconds < 0:
            raise ValueError("retries and backoff times must be >= 0")
        try:
            check_bucket_name(bucket, strict=True)
        except ValueError as exc:
            raise StoreConfigError(
                f"invalid bucket name {bucket!r} ({ENV_BUCKET}): {exc}; use 3-63 lowercase "
                "letters, digits, '-' and '.'"
            ) from None
        if not 5 * _MIB <= part_size <= 5 * 1024 * _MIB:
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB, got {part_size}")
        self.endpoint = host
        self.secure = use_tls
        self.bucket = bucket
        self.region = region
        self.create_bucket = create_bucket
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.part_size = part_size
        self.spool_bytes = spool_bytes
        if http_client is None:
            http_client = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                maxsize=10,
                cert_reqs="CERT_REQUIRED",
                ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
                retries=False,  # whole operations are retried below, with backoff
            )
        self._client = Minio(
            host,
            access_key=_secret(access_key),
            secret_key=_secret(secret_key),
            secure=use_tls,
            region=region,
            http_client=http_client,
        )
        self._bucket_ready = False
        self._conditional_ok = False

    def __repr__(self) -> str:
        return f"S3Store({self._base_url!r}, bucket={self.bucket!r})"

    @property
    def _base_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def describe(self) -> str:
        return f"S3 store {self._base_url}, bucket {self.bucket!r}"

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    # -- retries and error mapping

    def _attempt(self, action: str, key: str | None, fn: Callable[[], T], *, stage: str = "") -> T:
        """Run ``fn``, retrying transient failures; map failures to the store's errors.

        ``action`` and ``key`` (plus ``stage``) say what failed, in logs and messages.
        """
        delay = self.backoff_seconds
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                kind = _classify(exc)
                if kind == "transient" and attempt < self.retries:
                    log.warning(
                        "%s: %s failed (%s), retry %d/%d in %.2f s",
                        self.describe(),
                        _what(action, key, stage),
                        type(exc).__name__,
                        attempt + 1,
                        self.retries,
                        delay,
                    )
                    time.sleep(delay)
                    delay = min(2 * delay, self.max_backoff_seconds)
                    continue
                error = self._translate(exc, kind, _what(action, key, stage), key, attempt + 1)
                if error is None:
                    raise
                raise error from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _translate(
        self, exc: Exception, kind: str | None, what: str, key: str | None, attempts: int
    ) -> StoreError | None:
        if kind == "auth":
            code = getattr(exc, "code", None)
            return StoreAuthError(
                f"{self.describe()} refused the credentials ({code}) while {what}: "
                f"check {ENV_ACCESS_KEY}, {ENV_SECRET_KEY} and the bucket's access policy",
                endpoint=self._base_url,
                bucket=self.bucket,
            )
        if kind == "missing" and key is not None:
            return ObjectNotFound(key, self.describe())
        if kind == "no-bucket":
            return StoreError(f"bucket {self.bucket!r} does not exist at {self._base_url}")
        if kind == "transient":
            return StoreUnavailableError(
                f"{self.describe()} is unavailable: {what} failed after {attempts} "
                f"attempt(s): {type(exc).__name__}: {exc}",
                endpoint=self._base_url,
                key=key,
            )
        if kind == "refused":
            detail = f"{exc.code}: {exc.message}" if isinstance(exc, S3Error) else str(exc)
            return StoreError(f"{self.describe()}: {what} failed: {detail}")
        return None

    def _ensure_bucket(self, action: str, key: str | None) -> None:
        if self._bucket_ready:
            return

        def check() -> None:
            if self._client.bucket_exists(self.bucket):
                return
            if not self.create_bucket:
                raise StoreError(
                    f"bucket {self.bucket!r} does not exist at {self._base_url} "
                    "(create it, or let the store create it with create_bucket=True)"
                )
            try:
                self._client.make_bucket(self.bucket, location=self.region)
                log.info("%s: created the bucket", self.describe())
            except S3Error as exc:
                if exc.code != "BucketAlreadyOwnedByYou":  # created meanwhile by another client
                    raise

        self._attempt(action, key, check, stage=" (checking the bucket)")
        self._bucket_ready = True

    def _run(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        self._ensure_bucket(action, key)
        return self._attempt(action, key, fn)

    # -- writing

    def _put(
        self,
        key: str,
        open_stream: Callable[[], IO[bytes]],
        size: int,
        sha: str,
        content_type: str,
        metadata: dict[str, str],
    ) -> str:
        def put() -> None:
            with open_stream() as stream:
                self._client.put_object(
                    self.bucket,
                    key,
                    stream,
                    size,
                    content_type=content_type,
                    metadata={**metadata, _SHA256_META: sha},
                    part_size=self.part_size,
                )

        self._run("uploading", key, put)
        return sha

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
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        return self._put(key, lambda: io.BytesIO(data), len(data), sha, ctype, meta)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        check_key(key)
        meta, ctype = _check_metadata(metadata, content_type)
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot put {key!r}: no file at {source}")
        sha = _sha256_file(source)
        return self._put(key, lambda: source.open("rb"), source.stat().st_size, sha, ctype, meta)

    def put_if(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        match: str | None,
        content_type: str | None = None,
    ) -> str:
        check_key(key)
        _, ctype = _check_metadata(None, content_type)
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        # One PutObject request with the condition as a header: the server decides. (The
        # SDK's put_object would turn these headers into user metadata.)
        headers = {
            "Content-Type": ctype,
            f"X-Amz-Meta-{_SHA256_META}": sha,
            **({"If-None-Match": "*"} if match is None else {"If-Match": f'"{match}"'}),
        }

        self._check_conditional_writes()

        def put() -> str:
            try:
                result = self._client._put_object(self.bucket, key, data, headers=headers)
            except S3Error as exc:
                # S3 answers If-Match on a missing key with 404 NoSuchKey
                if exc.code in ("PreconditionFailed", "ConditionalRequestConflict") or (
                    getattr(exc.response, "status", None) in (409, 412)
                    or (match is not None and exc.code == "NoSuchKey")
                ):
                    raise PreconditionFailed(key, self.describe(), match) from None
                raise
            return result.etag.strip('"')

        return self._run("uploading", key, put)

    def _check_conditional_writes(self) -> None:
        """Once per store: a server that ignores ``If-None-Match`` (some S3 stand-ins do)
        would let two writers overwrite each other silently; refuse to use it for them."""
        if self._conditional_ok:
            return
        probe = f"{RESERVED_PREFIX}probe/{uuid.uuid4().hex}"
        headers = {"If-None-Match": "*", "Content-Type": DEFAULT_CONTENT_TYPE}

        def attempt() -> bool:
            self._client._put_object(self.bucket, probe, b"1", headers=headers)
            try:
                self._client._put_object(self.bucket, probe, b"2", headers=headers)
            except S3Error as exc:
                if getattr(exc.response, "status", None) == 412:
                    return True
                raise
            finally:
                self._client.remove_object(self.bucket, probe)
            return False

        if not self._run("checking conditional writes at", probe, attempt):
            raise StoreError(
                f"{self.describe()} ignores conditional writes (If-None-Match): concurrent "
                "writers could overwrite each other's work. Use a server that honours them "
                "(AWS S3, MinIO)"
            )
        self._conditional_ok = True

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        check_key(key)

        def get() -> tuple[bytes, str]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), str(response.headers.get("etag", "")).strip('"')
            finally:
                response.close()
                response.release_conn()

        return self._run("downloading", key, get)

    # -- reading

    def _stream_to(self, key: str, dst: IO[bytes]) -> None:
        response = self._client.get_object(self.bucket, key)
        try:
            for chunk in response.stream(_CHUNK):
                dst.write(chunk)
        finally:
            response.close()
            response.release_conn()

    def get_bytes(self, key: str) -> bytes:
        check_key(key)

        def get() -> bytes:
            buffer = io.BytesIO()
            self._stream_to(key, buffer)
            return buffer.getvalue()

        return self._run("downloading", key, get)

    def open_read(self, key: str) -> IO[bytes]:
        check_key(key)

        def get() -> IO[bytes]:
            spool = tempfile.SpooledTemporaryFile(max_size=self.spool_bytes)
            try:
                self._stream_to(key, spool)
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return spool  # type: ignore[return-value]

        return self._run("downloading", key, get)

    def get_file(self, key: str, path: str | os.PathLike[str]) -> Path:
        check_key(key)
        target = Path(path)
        return self._run(
            "downloading",
            key,
            lambda: _download_atomically(target, lambda f: self._stream_to(key, f)),
        )

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        obj = self._run(
            "reading metadata of", key, lambda: self._client.stat_object(self.bucket, key)
        )
        user: dict[str, str] = {}
        for name, value in (obj.metadata or {}).items():
            if name.lower().startswith("x-amz-meta-"):
                user[name[len("x-amz-meta-") :].lower()] = value
        sha = user.pop(_SHA256_META, None)
        return ObjectInfo(
            key=key,
            size=int(obj.size or 0),
            modified=obj.last_modified,
            etag=obj.etag,
            sha256=sha,
            content_type=obj.content_type or DEFAULT_CONTENT_TYPE,
            metadata=user,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        prefix = _check_prefix(prefix)
        self._ensure_bucket("listing", prefix)
        if not recursive:  # one level is small: fetch it whole (retrying), then sort
            entries = self._attempt("listing", prefix, lambda: list(self._scan(prefix, False)))
            yield from sorted(entries, key=lambda info: info.key)
            return
        # Recursive listings can be long: stream them, resuming after the last key on a retry.
        last: str | None = None
        failures = 0
        delay = self.backoff_seconds
        while True:
            try:
                for info in self._scan(prefix, True, start_after=last):
                    yield info
                    last = info.key
                    failures, delay = 0, self.backoff_seconds
                return
            except Exception as exc:
                kind = _classify(exc)
                if kind == "transient" and failures < self.retries:
                    failures += 1
                    log.warning(
                        "%s: listing %r failed (%s), retrying", self.describe(), prefix, exc
                    )
                    time.sleep(delay)
                    delay = min(2 * delay, self.max_backoff_seconds)
                    continue
                what = _what("listing", prefix)
                error = self._translate(exc, kind, what, prefix, failures + 1)
                if error is None:
                    raise
                raise error from exc

    def _scan(
        self, prefix: str, recursive: bool, start_after: str | None = None
    ) -> Iterator[ObjectInfo]:
        objects = self._client.list_objects(
            self.bucket, prefix=prefix or None, recursive=recursive, start_after=start_after
        )
        for obj in objects:
            name = obj.object_name or ""
            if obj.is_dir:
                yield ObjectInfo(name, 0, None, is_dir=True)
            elif name and not name.endswith("/"):  # skip console-made "folder" markers
                yield ObjectInfo(
                    key=name, size=int(obj.size or 0), modified=obj.last_modified, etag=obj.etag
                )

    # -- deleting

    def delete(self, key: str) -> None:
        check_key(key)
        self._run("deleting", key, lambda: self._client.remove_object(self.bucket, key))

    def delete_prefix(self, prefix: str) -> int:
        folder = _check_folder(prefix)
        keys = [info.key for info in self.list(folder)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = keys[start : start + 1000]

            def remove(batch: list[str] = batch) -> list[Any]:
                # remove_objects is lazy: the request goes out while iterating its result.
                return list(
                    self._client.remove_objects(self.bucket, [DeleteObject(k) for k in batch])
                )

            errors = self._run("deleting under", folder, remove)
            if errors:
                shown = ", ".join(f"{e.name}: {e.code}" for e in errors[:3])
                raise StoreError(
                    f"{self.describe()}: could not delete {len(errors)} object(s) under "
                    f"{folder!r} ({shown})"
                )
        return len(keys)


# --------------------------------------------------------------------------------------------
# From settings


def open_store(settings: Settings, **s3_options: Any) -> ObjectStore:
    """The store named by ``settings.store``: a LocalStore at ``settings.home``, or S3.

    Parameters
    ----------
    settings : Settings
        ``store.backend`` picks the backend; for ``s3`` the endpoint, bucket, keys, TLS and
        region come from ``settings.store`` (env ``SHARPSEEK_STORE__*``).
    **s3_options
        Further :class:`S3Store` keywords (``create_bucket``, ``retries``, ...); ignored by
        the local backend.

    Raises
    ------
    StoreConfigError
        ``s3`` without an endpoint or keys; the message names the environment variables.
    """
    cfg = settings.store
    if cfg.backend == "local":
        return LocalStore(settings.home)
    if cfg.backend != "s3":
        raise StoreConfigError(f"unknown store backend {cfg.backend!r}; choose 'local' or 's3'")
    missing = [
        env
        for env, value in (
            (ENV_ENDPOINT, cfg.endpoint),
            (ENV_ACCESS_KEY, cfg.access_key),
            (ENV_SECRET_KEY, cfg.secret_key),
        )
        if not value  # None or empty (a SecretStr's len is its secret's, never its text)
    ]
    if missing:
        raise StoreConfigError(
            "the s3 store backend needs " + ", ".join(missing) + " to be set "
            "(or use SHARPSEEK_STORE__BACKEND=local)"
        )
    return S3Store(
        str(cfg.endpoint),
        cfg.bucket,
        cfg.access_key,  # type: ignore[arg-type]  # checked above
        cfg.secret_key,  # type: ignore[arg-type]
        secure=cfg.secure,
        region=cfg.region,
        **s3_options,
    )
