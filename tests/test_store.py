"""Tests of the object store: open_store and its interface, local and S3 backends.

One contract suite runs against every backend: LocalStore in a temporary folder, and S3Store
(minio SDK) against two real S3 server processes on 127.0.0.1: moto (the broad S3 API,
any credentials accepted) and nanio (SigV4 signatures checked on every request). Then
backend-specific cases: crash atomicity of local puts, a server killed mid-upload, transient
errors retried, wrong credentials (nanio), and open_store from Settings.

Not covered by these stand-ins (a real MinIO would be): TLS (every test uses http), MinIO's
own error codes and throttling, bucket policies and limited users (AccessDenied with valid
keys), session tokens, a host that hangs rather than refuses (connect/read timeouts), and
objects beyond a few parts.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import urllib3
from pydantic import SecretStr

import sharpseek.data.local_store as local_store_module
from sharpseek.config import Settings
from sharpseek.data.local_store import LocalStore
from sharpseek.data.object_store import (
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreAuthError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
)
from sharpseek.data.s3_store import S3Store
from sharpseek.data.store import open_store

if TYPE_CHECKING:
    from s3_servers import ServerProcess

# The server fixtures (moto_server, moto_server_to_kill, nanio_server) live in s3_servers.py.
pytest_plugins = ["s3_servers"]

MIB = 1024 * 1024
# Small retry settings keep failure tests fast: 3 tries, 10-50 ms apart.
FAST = {
    "retries": 2,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.05,
    "connect_timeout": 2.0,
    "read_timeout": 10.0,
}
STORE_ENV = [
    "SHARPSEEK_STORE__BACKEND",
    "SHARPSEEK_STORE__ENDPOINT",
    "SHARPSEEK_STORE__BUCKET",
    "SHARPSEEK_STORE__ACCESS_KEY",
    "SHARPSEEK_STORE__SECRET_KEY",
    "SHARPSEEK_STORE__SECURE",
    "SHARPSEEK_STORE__REGION",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


def fast_pool(pool_class: type[urllib3.PoolManager] = urllib3.PoolManager, **kwargs):
    """An HTTP pool like S3Store's own: no urllib3 retries, short timeouts."""
    return pool_class(timeout=urllib3.Timeout(connect=2.0, read=10.0), retries=False, **kwargs)


def moto_store(server: ServerProcess, bucket: str | None = None, **options) -> S3Store:
    """An S3Store on ``server`` in a bucket of its own (moto accepts any credentials)."""
    settings = {**FAST, **options}
    return S3Store(
        server.endpoint,
        bucket or new_bucket(),
        "moto-access",
        SecretStr("moto-secret"),
        secure=False,
        region="us-east-1",
        **settings,
    )


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)


def nanio_store(server: ServerProcess, bucket: str | None = None, **options) -> S3Store:
    """An S3Store on the nanio ``server``, with the credentials it accepts."""
    settings = {**FAST, **options}
    return S3Store(
        server.endpoint,
        bucket or new_bucket(),
        server.access_key,
        server.secret_key,
        secure=False,
        region="us-east-1",
        **settings,
    )


@pytest.fixture(params=["local", "s3-moto", "s3-nanio"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each backend in turn: LocalStore, then S3Store in a fresh bucket of moto and of nanio.

    moto covers the broad S3 API; nanio checks every request's SigV4 signature.
    """
    if request.param == "local":
        return LocalStore(tmp_path / "home")
    # 5 MiB parts (the S3 minimum), so the multipart test below needs only a few MiB.
    if request.param == "s3-moto":
        return moto_store(request.getfixturevalue("moto_server"), part_size=5 * MIB)
    return nanio_store(request.getfixturevalue("nanio_server"), part_size=5 * MIB)


@pytest.fixture
def filled(store: ObjectStore) -> ObjectStore:
    """A store holding a small tree of artifacts."""
    for key in [
        "raw/hmi.sharp_cea_720s/377/a.Br.fits",
        "raw/hmi.sharp_cea_720s/377/b.Br.fits",
        "raw/hmi.sharp_cea_720s/401/a.Br.fits",
        "raw/other/x.fits",
        "datasets/synthetic/v1/manifest.parquet",
        "datasets/synthetic/v1/images-00000.npy",
        "datasets/synthetic/v10/manifest.parquet",
        "datasets/README.txt",
        "top.json",
    ]:
        store.put_bytes(key, key.encode())
    return store


# ---------------------------------------------------------------------------- the contract


def test_backends_implement_the_interface(store):
    assert isinstance(store, ObjectStore)


def test_put_bytes_then_get_bytes_roundtrips(store):
    digest = store.put_bytes("datasets/synthetic/v1/dataset.json", b'{"version": 1}')
    assert store.get_bytes("datasets/synthetic/v1/dataset.json") == b'{"version": 1}'
    assert digest == hashlib.sha256(b'{"version": 1}').hexdigest()


def test_binary_content_survives_byte_for_byte(store):
    data = bytes(range(256)) * 4096 + np.random.default_rng(0).bytes(3 * MIB)
    digest = store.put_bytes("models/gan/v1/last.ckpt", data)
    back = store.get_bytes("models/gan/v1/last.ckpt")
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest() == digest
    assert store.stat("models/gan/v1/last.ckpt").sha256 == digest


def test_object_larger_than_a_part_roundtrips(store):
    data = np.random.default_rng(5).bytes(11 * MIB)  # three 5 MiB parts on S3
    digest = store.put_bytes("models/gan/v2/weights.pt", data)
    assert store.get_bytes("models/gan/v2/weights.pt") == data
    assert store.stat("models/gan/v2/weights.pt").sha256 == digest


def test_empty_object_roundtrips(store):
    store.put_bytes("datasets/empty.bin", b"")
    assert store.get_bytes("datasets/empty.bin") == b""
    assert store.stat("datasets/empty.bin").size == 0


def test_put_file_then_get_file_roundtrips(store, tmp_path):
    source = tmp_path / "src.fits"
    source.write_bytes(np.random.default_rng(1).bytes(300_000))
    digest = store.put_file("raw/hmi.sharp_cea_720s/377/x.Br.fits", source)
    target = tmp_path / "out" / "deep" / "x.Br.fits"
    assert store.get_file("raw/hmi.sharp_cea_720s/377/x.Br.fits", target) == target
    assert target.read_bytes() == source.read_bytes()
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert not target.with_name("x.Br.fits.part").exists()


def test_get_file_of_missing_key_leaves_target_alone(store, tmp_path):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old")
    with pytest.raises(ObjectNotFound, match=r"no object 'raw/missing\.fits'"):
        store.get_file("raw/missing.fits", target)
    assert target.read_bytes() == b"old"
    assert not (tmp_path / "keep.txt.part").exists()


def test_stat_reports_size_type_metadata_and_hash(store):
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.put_bytes(
        "datasets/synthetic/v1/manifest.parquet",
        b"x" * 1234,
        content_type="application/vnd.apache.parquet",
        metadata={"dataset-version": "v1", "rows": "3600"},
    )
    info = store.stat("datasets/synthetic/v1/manifest.parquet")
    assert info.key == "datasets/synthetic/v1/manifest.parquet"
    assert info.size == 1234
    assert info.content_type == "application/vnd.apache.parquet"
    assert dict(info.metadata) == {"dataset-version": "v1", "rows": "3600"}
    assert info.sha256 == hashlib.sha256(b"x" * 1234).hexdigest()
    assert info.etag
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)


def test_stat_defaults_without_type_or_metadata(store):
    store.put_bytes("a/b.bin", b"123")
    info = store.stat("a/b.bin")
    assert (info.content_type, dict(info.metadata)) == ("application/octet-stream", {})


def test_overwrite_replaces_content_and_metadata(store):
    store.put_bytes("a/b.json", b"first", metadata={"round": "1"})
    store.put_bytes("a/b.json", b"second, longer")
    assert store.get_bytes("a/b.json") == b"second, longer"
    info = store.stat("a/b.json")
    assert (info.size, dict(info.metadata)) == (len(b"second, longer"), {})


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("Upper", "x", "invalid metadata name 'Upper'"),
        ("sha256", "x", "metadata name 'sha256' is reserved"),
        ("note", "caf\u00e9", "invalid metadata value for 'note'"),
    ],
)
def test_bad_metadata_is_rejected(store, name, value, match):
    with pytest.raises(ValueError, match=match):
        store.put_bytes("a/b.bin", b"x", metadata={name: value})
    assert not store.exists("a/b.bin")


def test_list_recursive_by_folder_prefix(filled):
    keys = [info.key for info in filled.list("raw/hmi.sharp_cea_720s/")]
    assert keys == [
        "raw/hmi.sharp_cea_720s/377/a.Br.fits",
        "raw/hmi.sharp_cea_720s/377/b.Br.fits",
        "raw/hmi.sharp_cea_720s/401/a.Br.fits",
    ]


def test_list_prefix_is_a_string_prefix(filled):
    keys = [info.key for info in filled.list("datasets/synthetic/v1")]
    assert keys == [
        "datasets/synthetic/v1/images-00000.npy",
        "datasets/synthetic/v1/manifest.parquet",
        "datasets/synthetic/v10/manifest.parquet",
    ]


def test_list_everything_in_key_order_with_sizes(filled):
    infos = list(filled.list())
    assert [i.key for i in infos] == sorted(i.key for i in infos)
    assert len(infos) == 9
    assert all(i.size == len(i.key) and not i.is_dir for i in infos)


def test_list_non_recursive_shows_one_level_and_folders(filled):
    entries = [(i.key, i.is_dir) for i in filled.list("datasets/", recursive=False)]
    assert entries == [("datasets/README.txt", False), ("datasets/synthetic/", True)]
    top = [(i.key, i.is_dir) for i in filled.list("", recursive=False)]
    assert top == [("datasets/", True), ("raw/", True), ("top.json", False)]


def test_list_of_absent_prefix_is_empty(filled):
    assert list(filled.list("models/")) == []
    assert list(filled.list("models/", recursive=False)) == []


@pytest.mark.parametrize("backend", ["local", "s3-moto"])  # nanio: see the test below
def test_conditional_put_creates_once_and_swaps_only_from_the_token_read(
    backend, request, tmp_path
):
    if backend == "local":
        store = LocalStore(tmp_path / "home")
    else:
        store = moto_store(request.getfixturevalue("moto_server"))
    key = "datasets/sharp/LATEST"
    first = store.put_if(key, b"v0001", match=None)
    with pytest.raises(PreconditionFailed, match="LATEST"):
        store.put_if(key, b"v0002", match=None)  # present: a second create is refused
    data, token = store.get_versioned(key)
    assert (data, token) == (b"v0001", first)
    second = store.put_if(key, b"v0002", match=token)
    assert second != token
    with pytest.raises(PreconditionFailed, match="changed meanwhile"):
        store.put_if(key, b"v0003", match=token)  # a stale token: someone moved it
    assert store.get_bytes(key) == b"v0002"
    with pytest.raises(PreconditionFailed):
        store.put_if("datasets/sharp/absent", b"x", match=second)  # nothing to match
    assert not store.exists("datasets/sharp/absent")


def test_exists_then_delete(store):
    store.put_bytes("a/b/c.bin", b"x")
    assert store.exists("a/b/c.bin")
    assert not store.exists("a/b")  # a folder is not an object
    store.delete("a/b/c.bin")
    assert not store.exists("a/b/c.bin")
    assert list(store.list()) == []


def test_delete_of_missing_key_is_not_an_error(store):
    store.delete("a/never.bin")
    assert not store.exists("a/never.bin")


def test_delete_prefix_removes_one_folder_only(filled):
    assert filled.delete_prefix("datasets/synthetic/v1") == 2
    remaining = [i.key for i in filled.list("datasets/")]
    assert remaining == ["datasets/README.txt", "datasets/synthetic/v10/manifest.parquet"]


def test_delete_prefix_refuses_the_whole_store(filled):
    with pytest.raises(ValueError, match="refusing to delete an empty prefix"):
        filled.delete_prefix("")
    assert len(list(filled.list())) == 9


def test_open_read_feeds_numpy_load(store):
    images = np.random.default_rng(2).normal(size=(20, 128, 128)).astype(np.float16)
    buffer = io.BytesIO()
    np.save(buffer, images)
    store.put_bytes("datasets/synthetic/v1/images-00000.npy", buffer.getvalue())
    with store.open_read("datasets/synthetic/v1/images-00000.npy") as f:
        loaded = np.load(f)
    np.testing.assert_array_equal(loaded, images)
    assert loaded.dtype == np.float16


def test_open_read_is_seekable_for_npz(store):
    buffer = io.BytesIO()
    np.savez(buffer, a=np.arange(10), b=np.ones((3, 3)))
    store.put_bytes("directions/gan-v1/boundaries.npz", buffer.getvalue())
    with store.open_read("directions/gan-v1/boundaries.npz") as f, np.load(f) as npz:
        np.testing.assert_array_equal(npz["a"], np.arange(10))


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("", r"invalid object key '': the key is empty"),
        ("/etc/passwd", r"invalid object key '/etc/passwd': absolute keys"),
        ("raw/../../etc/passwd", r"invalid object key 'raw/\.\./\.\./etc/passwd': '\.' and '\.\.'"),
        ("raw\\377\\a.fits", r"invalid object key 'raw\\\\377\\\\a\.fits': backslashes"),
        ("raw//a.fits", r"invalid object key 'raw//a\.fits': empty path segment"),
        ("raw/", r"invalid object key 'raw/': empty path segment"),
        ("raw/.sharpseek-tmp-1", r"'raw/\.sharpseek-tmp-1': segments starting with"),
    ],
)
def test_invalid_keys_are_rejected(store, key, match):
    with pytest.raises(ValueError, match=match):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError, match=match):
        store.get_bytes(key)


@pytest.mark.parametrize("method", ["get_bytes", "stat", "open_read"])
def test_missing_key_raises_object_not_found(store, method):
    with pytest.raises(ObjectNotFound, match=r"^no object 'raw/none/x\.fits' in ") as caught:
        getattr(store, method)("raw/none/x.fits")
    assert isinstance(caught.value, KeyError)
    assert caught.value.key == "raw/none/x.fits"


def test_url_and_describe_name_the_location(store):
    url = store.url("datasets/v1/manifest.parquet")
    if isinstance(store, LocalStore):
        assert url == str(store.root / "datasets" / "v1" / "manifest.parquet")
        assert str(store.root) in store.describe()
    else:
        assert url == f"s3://{store.bucket}/datasets/v1/manifest.parquet"
        assert store.endpoint in store.describe() and store.bucket in store.describe()
        assert "secret" not in (store.describe() + repr(store)).lower()


@pytest.mark.parametrize(
    "error",
    [
        ObjectNotFound("a/b.bin", "local store at /x"),
        StoreAuthError("refused", endpoint="http://h:1", bucket="bkt"),
        StoreUnavailableError("down", endpoint="http://h:1", key="a/b.bin"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error):
    # Worker processes (DataLoader, Prefect) send exceptions back pickled.
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), str(back), back.__dict__) == (type(error), str(error), error.__dict__)


# ---------------------------------------------------------------------------- LocalStore


def test_local_keys_map_onto_the_home_folders(tmp_path):
    settings = Settings(home=tmp_path)
    store = LocalStore(settings.home)
    store.put_bytes("datasets/synthetic/v1/dataset.json", b"{}")
    assert (settings.datasets_dir / "synthetic" / "v1" / "dataset.json").read_bytes() == b"{}"


def _crash_after_half(dst, chunks, digest):
    data = b"".join(chunks)
    dst.write(data[: len(data) // 2])
    raise RuntimeError("simulated crash mid-write")


def test_local_crash_mid_write_leaves_no_object(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    monkeypatch.setattr(local_store_module, "_write_chunks", _crash_after_half)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.put_bytes("datasets/v1/images-00000.npy", b"0123456789" * 1000)
    assert not store.exists("datasets/v1/images-00000.npy")
    assert list(store.list()) == []
    assert list((tmp_path / "datasets" / "v1").iterdir()) == []  # the temporary is cleaned up


def test_local_crash_mid_overwrite_keeps_previous_version(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put_bytes("models/gan/v1/last.ckpt", b"version 1")
    monkeypatch.setattr(local_store_module, "_write_chunks", _crash_after_half)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.put_bytes("models/gan/v1/last.ckpt", b"version 2, half written")
    assert store.get_bytes("models/gan/v1/last.ckpt") == b"version 1"


def test_local_killed_process_leaves_only_an_unlisted_temporary(tmp_path):
    # A real crash: the writing process dies (os._exit) halfway, so nothing cleans up.
    script = (
        "import os, sys\n"
        "import sharpseek.data.local_store as s\n"
        "def die(dst, chunks, digest):\n"
        "    dst.write(b'partial'); dst.flush(); os._exit(3)\n"
        "s._write_chunks = die\n"
        "s.LocalStore(sys.argv[1]).put_bytes('datasets/v1/images-00000.npy', b'0' * 4096)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=60)
    assert run.returncode == 3
    leftovers = list((tmp_path / "datasets" / "v1").iterdir())
    assert [p.name.startswith(".sharpseek-tmp-") for p in leftovers] == [True]
    store = LocalStore(tmp_path)
    assert not store.exists("datasets/v1/images-00000.npy")
    assert list(store.list()) == []
    assert list(store.list("datasets/v1/", recursive=False)) == []


def test_local_key_cannot_be_object_and_folder(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("a/b", b"x")
    with pytest.raises(StoreError, match=r"cannot put 'a/b/c'.*both an object and a folder"):
        store.put_bytes("a/b/c", b"y")


def test_local_delete_prunes_empty_folders(tmp_path):
    store = LocalStore(tmp_path / "home")
    store.put_bytes("raw/s/377/a.fits", b"x")
    store.delete("raw/s/377/a.fits")
    assert list((tmp_path / "home").iterdir()) == []


# ---------------------------------------------------------------------------- S3Store


class _FaultPool(urllib3.PoolManager):
    """A pool that runs ``hook(method, url)`` before each request; the hook may fake one."""

    def __init__(self, hook, **kwargs):
        super().__init__(**kwargs)
        self.hook = hook

    def urlopen(self, method, url, *args, **kwargs):
        faked = self.hook(method, url)
        if faked is not None:
            return faked
        return super().urlopen(method, url, *args, **kwargs)


def _slow_down_response() -> urllib3.HTTPResponse:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    return urllib3.HTTPResponse(
        body=io.BytesIO(body),
        headers={"Content-Type": "application/xml"},
        status=503,
        preload_content=False,
    )


def test_s3_server_killed_mid_upload_raises_unavailable_quickly(moto_server_to_kill):
    server = moto_server_to_kill
    seen: list[str] = []

    def kill_before_second_part(method, url):
        seen.append(url)
        if "partNumber=2" in url and server.alive():
            server.kill()  # part 1 is on the server; the upload is half done

    pool = fast_pool(_FaultPool, hook=kill_before_second_part)
    store = moto_store(server, part_size=5 * MIB, http_client=pool)
    data = np.random.default_rng(3).bytes(12 * MIB)  # three parts
    start = time.monotonic()
    with pytest.raises(
        StoreUnavailableError, match=r"uploading 'datasets/big/v1/images-00000\.npy'"
    ) as caught:
        store.put_bytes("datasets/big/v1/images-00000.npy", data)
    assert time.monotonic() - start < 5.0
    assert any("partNumber=1" in url for url in seen)
    assert not server.alive()
    assert caught.value.key == "datasets/big/v1/images-00000.npy"
    assert server.endpoint in str(caught.value)


def test_s3_server_stopped_before_put_raises_unavailable(moto_server_to_kill):
    store = moto_store(moto_server_to_kill)
    store.put_bytes("a/first.bin", b"ok")  # the store works, the bucket exists
    moto_server_to_kill.stop()
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"unavailable: uploading 'a/second\.bin'"):
        store.put_bytes("a/second.bin", b"never stored")
    assert time.monotonic() - start < 3.0


def test_s3_interrupted_multipart_upload_leaves_no_object(moto_server):
    def drop_second_part(method, url):
        if "partNumber=2" in url:
            raise urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
        return None

    pool = fast_pool(_FaultPool, hook=drop_second_part)
    store = moto_store(moto_server, part_size=5 * MIB, http_client=pool)
    with pytest.raises(StoreUnavailableError, match="after 3 attempt"):
        store.put_bytes("models/big.ckpt", np.random.default_rng(4).bytes(11 * MIB))
    reader = moto_store(moto_server, bucket=store.bucket)
    assert not reader.exists("models/big.ckpt")
    assert list(reader.list()) == []


def test_s3_slow_down_is_retried_with_backoff(moto_server, caplog):
    faults = []

    def slow_down_twice(method, url):
        if method == "PUT" and url.endswith("/a/b.bin") and len(faults) < 2:
            faults.append(url)
            return _slow_down_response()
        return None

    store = moto_store(moto_server, http_client=fast_pool(_FaultPool, hook=slow_down_twice))
    with caplog.at_level(logging.WARNING, logger="sharpseek.data.s3_store"):
        store.put_bytes("a/b.bin", b"payload")
    assert len(faults) == 2
    assert store.get_bytes("a/b.bin") == b"payload"
    assert caplog.text.count("retry") == 2
    assert "moto-secret" not in caplog.text


@pytest.mark.parametrize("server", ["moto_server", "moto_serial_server"])
def test_moto_server_itself_refuses_a_second_conditional_put(server, request):
    """The race tests count only because the server decides: a raw PutObject with
    ``If-None-Match: *`` on a key that exists, or ``If-Match`` with another ETag, gets 412
    from moto's server (no client-side check involved), threaded or serial (the race tests'
    one, tests/s3_servers.py)."""
    from minio import Minio
    from minio.error import S3Error

    endpoint = request.getfixturevalue(server).endpoint
    client = Minio(endpoint, "any", "any", secure=False, region="us-east-1")
    bucket = new_bucket()
    client.make_bucket(bucket)
    create = {"If-None-Match": "*", "Content-Type": "text/plain"}
    first = client._put_object(bucket, "k", b"one", headers=create)
    with pytest.raises(S3Error) as refused:
        client._put_object(bucket, "k", b"two", headers=create)
    assert (refused.value.code, refused.value.response.status) == ("PreconditionFailed", 412)
    stale = {"If-Match": '"0123456789abcdef0123456789abcdef"', "Content-Type": "text/plain"}
    with pytest.raises(S3Error) as refused:
        client._put_object(bucket, "k", b"three", headers=stale)
    assert refused.value.response.status == 412
    fresh = {"If-Match": f'"{first.etag}"', "Content-Type": "text/plain"}
    client._put_object(bucket, "k", b"four", headers=fresh)
    assert client.get_object(bucket, "k").read() == b"four"


def test_a_server_that_ignores_conditional_writes_is_refused_for_them(nanio_server):
    """nanio accepts a second ``If-None-Match: *`` put of one key (measured): a writer on
    it could lose another's work, so put_if refuses that server by name instead."""
    store = nanio_store(nanio_server)
    with pytest.raises(StoreError, match="ignores conditional writes"):
        store.put_if("datasets/sharp/LATEST", b"v0001", match=None)
    assert not store.exists("datasets/sharp/LATEST")
    assert list(store.list("")) == []  # the probe left nothing behind


def test_s3_missing_bucket_without_create_is_an_error(moto_server):
    store = moto_store(moto_server, create_bucket=False)
    with pytest.raises(StoreError, match=rf"bucket '{store.bucket}' does not exist at http://"):
        store.put_bytes("a/b.bin", b"x")


@pytest.mark.parametrize("case", ["wrong-secret", "unknown-access-key"])
def test_s3_wrong_credentials_raise_auth_error(nanio_server, case):
    access_key = nanio_server.access_key if case == "wrong-secret" else "wrong-access-Vb7e"
    secret_key = "wrong-secret-Kp4w"
    bucket = new_bucket()
    store = S3Store(
        nanio_server.endpoint, bucket, access_key, SecretStr(secret_key), secure=False, **FAST
    )
    with pytest.raises(StoreAuthError) as caught:
        store.put_bytes("a/b.bin", b"x")
    message = str(caught.value)
    assert f"http://{nanio_server.endpoint}" in message
    assert repr(bucket) in message
    assert "SHARPSEEK_STORE__SECRET_KEY" in message
    for secret in (secret_key, access_key, nanio_server.secret_key):
        assert secret not in message
    endpoint = f"http://{nanio_server.endpoint}"
    assert (caught.value.endpoint, caught.value.bucket) == (endpoint, bucket)


def test_s3_right_credentials_work_on_nanio(nanio_server):
    server = nanio_server
    store = S3Store(
        server.endpoint, new_bucket(), server.access_key, server.secret_key, False, **FAST
    )
    store.put_bytes("raw/a.fits", b"signed")
    assert store.get_bytes("raw/a.fits") == b"signed"
    assert [i.key for i in store.list()] == ["raw/a.fits"]


def test_s3_endpoint_url_scheme_decides_tls():
    store = S3Store("http://minio.example:9000", "bkt", "a", "b", secure=True)
    assert (store.endpoint, store.secure) == ("minio.example:9000", False)
    assert store.describe() == "S3 store http://minio.example:9000, bucket 'bkt'"


def test_s3_unreachable_server_names_key_on_first_use():
    store = S3Store(f"127.0.0.1:{free_port()}", new_bucket(), "a", "b", secure=False, **FAST)
    with pytest.raises(
        StoreUnavailableError,
        match=r"unavailable: downloading 'raw/a\.fits' \(checking the bucket\) failed after 3",
    ) as caught:
        store.get_bytes("raw/a.fits")
    assert caught.value.key == "raw/a.fits"


def test_s3_hanging_server_times_out_as_unavailable():
    # A socket that completes the TCP handshake (backlog) but never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        store = S3Store(
            endpoint, new_bucket(), "a", "b", False, **{**FAST, "retries": 1, "read_timeout": 0.3}
        )
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"uploading 'a/b\.bin'.*Timeout"):
            store.put_bytes("a/b.bin", b"x")
        assert time.monotonic() - start < 3.0


def test_s3_invalid_bucket_name_names_the_env_var():
    with pytest.raises(StoreConfigError, match=r"invalid bucket name 'My_Bucket' \(SHARPSEEK"):
        S3Store("minio:9000", "My_Bucket", "a", "b")


def test_s3_endpoint_with_credentials_is_rejected_without_echo():
    with pytest.raises(StoreConfigError, match="without credentials") as caught:
        S3Store("http://user:pa55word@minio:9000", "bkt", "a", "b")
    assert "pa55word" not in str(caught.value)


# ---------------------------------------------------------------------------- open_store


def test_open_store_local_uses_home(tmp_path):
    store = open_store(Settings(home=tmp_path / "home"))
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "home").resolve()


def test_open_store_s3_from_settings(moto_server, tmp_path):
    settings = Settings(
        home=tmp_path,
        store={
            "backend": "s3",
            "endpoint": moto_server.endpoint,
            "bucket": new_bucket(),
            "access_key": "k",
            "secret_key": "s",
            "secure": False,
        },
    )
    store = open_store(settings, **FAST)
    assert isinstance(store, S3Store) and store.bucket == settings.store.bucket
    store.put_bytes("a/b.bin", b"via settings")
    assert store.get_bytes("a/b.bin") == b"via settings"


def test_open_store_s3_from_environment(moto_server, tmp_path, monkeypatch):
    bucket = new_bucket()
    for name, value in {
        "SHARPSEEK_STORE__BACKEND": "s3",
        "SHARPSEEK_STORE__ENDPOINT": f"http://{moto_server.endpoint}",
        "SHARPSEEK_STORE__BUCKET": bucket,
        "SHARPSEEK_STORE__ACCESS_KEY": "env-access",
        "SHARPSEEK_STORE__SECRET_KEY": "env-secret-Qz1",
    }.items():
        monkeypatch.setenv(name, value)
    store = open_store(Settings(home=tmp_path), **FAST)
    store.put_bytes("a/b.bin", b"via env")
    assert store.url("a/b.bin") == f"s3://{bucket}/a/b.bin"
    assert "env-secret-Qz1" not in repr(store) + store.describe()


@pytest.mark.parametrize(
    ("store_settings", "match"),
    [
        ({"access_key": "k", "secret_key": "s"}, r"needs SHARPSEEK_STORE__ENDPOINT to be set"),
        (
            {"endpoint": "minio:9000"},
            r"needs SHARPSEEK_STORE__ACCESS_KEY, SHARPSEEK_STORE__SECRET_KEY to be set",
        ),
        (
            {"endpoint": "minio:9000", "access_key": "k", "secret_key": ""},
            r"needs SHARPSEEK_STORE__SECRET_KEY to be set",
        ),
    ],
    ids=["no-endpoint", "no-keys", "empty-secret"],
)
def test_open_store_s3_without_endpoint_or_keys_names_env_vars(tmp_path, store_settings, match):
    settings = Settings(home=tmp_path, store={"backend": "s3", **store_settings})
    with pytest.raises(StoreConfigError, match=match):
        open_store(settings)
