"""The store's common interface: :class:`ObjectStore`, :class:`ObjectInfo`, errors, key rules.

Both backends (:mod:`sharpseek.data.local_store`, :mod:`sharpseek.data.s3_store`) implement
:class:`ObjectStore` with the same semantics, check keys with :func:`check_key` before any I/O,
and raise the errors defined here; :func:`sharpseek.data.store.open_store` picks one from the
settings. The module docstring of :mod:`sharpseek.data.store` describes the contract.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "check_key",
    "StoreError",
    "StoreConfigError",
    "StoreAuthError",
    "StoreUnavailableError",
    "ObjectNotFound",
    "PreconditionFailed",
]

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


def _check_put_file(
    key: str,
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None,
    content_type: str | None,
) -> tuple[Path, dict[str, str], str]:
    """A ``put_file``'s checks, the same in every store: the key, the metadata and content
    type (:func:`_check_metadata`), and a file at ``path``. Returns (file, metadata, type)."""
    check_key(key)
    meta, ctype = _check_metadata(metadata, content_type)
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"cannot put {key!r}: no file at {source}")
    return source, meta, ctype


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
