"""Object storage for sharpseek's artifacts: a local folder (the default) or MinIO/S3.

Every artifact (raw FITS, dataset shards and manifests, checkpoints, directions, model
archives) is an *object* under a *key*, a POSIX-style relative path::

    raw/hmi.sharp_cea_720s/377/hmi.sharp_cea_720s.377.20110215_000000_TAI.Br.fits
    datasets/synthetic/v1/manifest.parquet
    models/gan/v3/last.ckpt

One interface, :class:`~sharpseek.data.object_store.ObjectStore` (``data/object_store.py``:
the protocol, its errors, key rules), has two backends with the same semantics (one contract
test suite runs against both); this module opens the one the settings name
(:func:`open_store`):

* :class:`~sharpseek.data.local_store.LocalStore` (``data/local_store.py``) keeps each object
  as a file under a root folder (``SHARPSEEK_HOME``), so ``datasets/...`` in the store is
  ``<home>/datasets/...`` on disk. A put writes a temporary
  file in the same folder, fsyncs it and renames it over the key, so a crash never leaves a
  half-written object under the real key; temporaries are never listed.
* :class:`~sharpseek.data.s3_store.S3Store` (``data/s3_store.py``, failures read by
  ``data/s3_errors.py``) talks to MinIO or any S3 server through the ``minio`` SDK. A put is one
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

from typing import Any

from sharpseek.config import Settings
from sharpseek.data.local_store import LocalStore
from sharpseek.data.object_store import (
    ObjectStore,
    StoreConfigError,
)
from sharpseek.data.s3_store import ENV_ACCESS_KEY, ENV_ENDPOINT, ENV_SECRET_KEY, S3Store

__all__ = ["open_store"]


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
