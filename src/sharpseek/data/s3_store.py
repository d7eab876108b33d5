"""The MinIO/S3 backend of the object store, through the ``minio`` SDK.

A put is one object (large ones go up as a multipart upload, visible only when complete).
Transient failures are retried with exponential backoff, then raise
:class:`~sharpseek.data.object_store.StoreUnavailableError` naming the endpoint and key;
rejected credentials raise :class:`~sharpseek.data.object_store.StoreAuthError`. The contract
is :class:`sharpseek.data.object_store.ObjectStore`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import check_bucket_name
from pydantic import SecretStr

from sharpseek.data.object_store import (
    _CHUNK,
    _SHA256_META,
    DEFAULT_CONTENT_TYPE,
    RESERVED_PREFIX,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreAuthError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
    _check_folder,
    _check_metadata,
    _check_prefix,
    _check_put_file,
    _download_atomically,
    _sha256_file,
    check_key,
)
from sharpseek.data.s3_errors import classify_failure

__all__ = ["S3Store"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MIB = 1024 * 1024

ENV_ENDPOINT = "SHARPSEEK_STORE__ENDPOINT"
ENV_ACCESS_KEY = "SHARPSEEK_STORE__ACCESS_KEY"
ENV_SECRET_KEY = "SHARPSEEK_STORE__SECRET_KEY"
ENV_BUCKET = "SHARPSEEK_STORE__BUCKET"


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
                kind = classify_failure(exc)
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
        source, meta, ctype = _check_put_file(key, path, metadata, content_type)
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
                kind = classify_failure(exc)
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
