"""Several writers at once: nothing lost, nothing twice.

Dataset writers race on one store (a local folder, and moto's S3 application served one
request at a time, which refuses a second conditional put: tests/test_store.py shows it; the
threaded moto server does not decide them atomically, see s3_servers.py) in separate
processes. A barrier
holds every writer after it has read ``LATEST`` and before it claims a version, so all of
them build on the same base and all but one must lose the compare-and-swap and rebase: the
race is forced, not left to luck. Then two ``sharpseek ingest fits`` at once on one home,
as an operator runs them.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from sharpseek.data import dataset_writer
from sharpseek.data.dataset import PatchRecord, dataset_versions, load_dataset
from sharpseek.data.dataset_writer import append_records
from sharpseek.data.local_store import LocalStore
from sharpseek.data.s3_store import S3Store

pytest_plugins = ["s3_servers", "model_fixtures", "ui_fixtures"]

T0 = datetime(2015, 3, 1)
FORK = multiprocessing.get_context("fork")


def _records(writer: int, n: int) -> list[PatchRecord]:
    """``n`` records of the writer's own HARP (``100 + writer``), distinct from all others."""
    rng = np.random.default_rng(writer)
    return [
        PatchRecord(
            image=rng.uniform(-1, 1, (128, 128)).astype(np.float32),
            meta={
                "series": "hmi.sharp_cea_720s",
                "harpnum": 100 + writer,
                "t_rec": T0 + timedelta(hours=i),
            },
            columns={"writer": writer},
        )  # fmt: skip
        for i in range(n)
    ]


def _store(spec: tuple[str, str, str]):
    kind, where, bucket = spec
    if kind == "local":
        return LocalStore(where)
    return S3Store(where, bucket, "testing", "testing", secure=False, retries=1)


def _writer(spec, writer: int, n: int, barrier, results) -> None:
    """One writer process: append its records, all writers released together at the commit."""
    original = dataset_writer._Commit._claim
    waited = []

    def claim(self, base_ds):
        if not waited:  # the first claim only: every writer has read LATEST by now
            waited.append(True)
            barrier.wait(timeout=120)
        return original(self, base_ds)

    dataset_writer._Commit._claim = claim
    try:
        result = append_records(
            _store(spec), "sharp", _records(writer, n), provenance={"writer": writer},
            shard_size=2,
        )  # fmt: skip
        done = (result.dataset.version, list(result.rebased_onto), result.unchanged)
        results.put((writer, "ok", *done))
    except BaseException as err:  # reported to the test, which fails with it
        results.put((writer, "error", repr(err), [], False))
        raise


def _race(spec, writers: int, n: int) -> list[tuple]:
    barrier = FORK.Barrier(writers)
    results = FORK.Queue()
    procs = [
        FORK.Process(target=_writer, args=(spec, w, n, barrier, results)) for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    out = [results.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return sorted(out)


@pytest.fixture(params=["local", "s3"])
def spec(request, tmp_path):
    if request.param == "local":
        return ("local", str(tmp_path / "home"), "")
    server = request.getfixturevalue("moto_serial_server")
    return ("s3", server.endpoint, "race-" + uuid.uuid4().hex[:12])


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_lose_nothing_and_duplicate_nothing(spec, writers):
    n = 3
    out = _race(spec, writers, n)
    assert [o[1] for o in out] == ["ok"] * writers, out
    store = _store(spec)
    ds = load_dataset(store, "sharp")
    counts = Counter(ds.manifest["record_id"])
    expected = {r.record_id for w in range(writers) for r in _records(w, n)}
    assert set(counts) == expected and set(counts.values()) == {1}  # every record, once
    for rid, image in zip(ds.manifest["record_id"], ds.images(), strict=True):
        writer = int(rid.split(":")[1]) - 100
        hour = next(i for i, r in enumerate(_records(writer, n)) if r.record_id == rid)
        np.testing.assert_array_equal(
            image, _records(writer, n)[hour].image.astype(np.float16).astype(np.float32)
        )
    # A writer commits a version of its own, or finds its records committed already: one
    # that started later took them up from the journal of the version they all began on.
    committed = [o[2] for o in out if not o[4]]
    assert len(set(committed)) == len(committed) >= 1  # none overwritten
    assert ds.version == max(committed)
    assert sorted(dataset_versions(store, "sharp")) == sorted(committed)
    # all built on the same base: every writer but the winner lost the swap and rebased
    assert sum(bool(o[3]) for o in out) == writers - 1
    assert not list(store.list("datasets/sharp/journal/"))


def test_a_named_version_held_by_another_writer_is_not_overwritten(tmp_path):
    store = LocalStore(tmp_path / "home")
    store.put_bytes("datasets/synthetic/recipe-a/claim.json", b'{"writer": "other:1"}')
    with pytest.raises(dataset_writer.CommitConflict, match="other:1"):
        append_records(
            store, "synthetic", _records(0, 2), provenance={}, base=None, version="recipe-a"
        )
    assert store.get_bytes("datasets/synthetic/recipe-a/claim.json") == b'{"writer": "other:1"}'


# ---------------------------------------------------------------------------- the CLI


def _fits_files(folder: Path, harpnum: int, n: int) -> list[Path]:
    from astropy.io import fits

    folder.mkdir(parents=True)
    y, x = np.mgrid[:60, :90]
    paths = []
    for i in range(n):
        data = (900 + 10 * i) * np.exp(-((x - 30) ** 2 + (y - 30) ** 2) / 40) - 900 * np.exp(
            -((x - 60) ** 2 + (y - 30) ** 2) / 40
        )
        hdu = fits.CompImageHDU(data.astype(np.float32), compression_type="RICE_1")
        header = {"HARPNUM": harpnum, "T_REC": f"2020.01.01_{i:02d}:00:00_TAI",
                  "BUNIT": "Mx/cm^2", "CDELT1": 0.03, "RSUN_REF": 696000000,
                  "LAT_FWT": 10.0, "LON_FWT": 5.0, "CRLT_OBS": 1.0}  # fmt: skip
        for key, value in header.items():
            hdu.header[key] = value
        path = folder / f"{i}" / "Br.fits"  # one name for every frame, as the issue found
        path.parent.mkdir()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_two_cli_fits_ingests_at_once_keep_every_record(tmp_path):
    home = tmp_path / "home"
    folders = [tmp_path / "a", tmp_path / "b"]
    for harp, folder in zip((9201, 9202), folders, strict=True):
        _fits_files(folder, harp, 4)
    env = {**os.environ, "SHARPSEEK_HOME": str(home), "SHARPSEEK_FLOWS__INGEST_SHARD_SIZE": "2"}
    cli = Path(sys.executable).with_name("sharpseek")
    procs = [
        subprocess.Popen(
            [str(cli), "ingest", "fits", str(f)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for f in folders
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    store = LocalStore(home)
    ds = load_dataset(store, "sharp")
    counts = Counter(ds.manifest["record_id"])
    assert len(counts) == 8 and set(counts.values()) == {1}, counts
    assert sorted(ds.manifest["harpnum"].unique()) == [9201, 9202]
    raw = [o.key for o in store.list("raw/")]
    assert len(raw) == 8 and sorted(ds.manifest["raw_key"]) == sorted(raw)


# ---------------------------------------------------------------------------- the index


def _index_writer(path, rows, vectors, barrier, results, tag) -> None:
    from sharpseek.search.index import EdgeIndex

    index = EdgeIndex(path)
    barrier.wait(timeout=120)
    try:
        for start in range(0, len(rows), 20):
            index.upsert_records(
                rows.iloc[start : start + 20], vectors[start : start + 20],
                encoder_version="enc-a", dataset_version="v0002",
            )  # fmt: skip
        results.put((tag, "ok", None))
    except BaseException as err:
        results.put((tag, "error", repr(err)))
        raise
    finally:
        index.close()


def _index_reader(path, queries, barrier, stop, results) -> None:
    from sharpseek.search.index import EdgeIndex

    index = EdgeIndex(path)
    barrier.wait(timeout=120)
    counts, errors, searches = [], [], 0
    try:
        while not stop.is_set() or searches < 5:
            try:
                hits = index.search(queries[searches % len(queries)], limit=5,
                                    group_by_harp=False)  # fmt: skip
                assert len(hits) == 5
                counts.append(index.count())
            except Exception as err:  # reported to the test
                errors.append(repr(err))
            searches += 1
    finally:
        index.close()
        results.put(("reader", counts, errors))


@pytest.fixture
def index_dir(tmp_path):
    """On tmpfs where there is one (the index fsyncs; see tests/test_index.py)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="sharpseek-index-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_index_searches_go_on_while_two_processes_update_it(index_dir):
    """A search process (the UI, `sharpseek search`) and two `index update` processes on one
    embedded index at once: no search fails or waits for the writers, the point count a
    search sees never goes back, and every record of both writers is there once."""
    from sharpseek.search.index import EdgeIndex
    from test_index import ROWS, VECTORS, query_near

    path = index_dir / "index"
    with EdgeIndex(path) as index:
        index.reindex("enc-a", [(ROWS.iloc[:80], VECTORS[:80])], dataset_version="v0001")
    parts = [(ROWS.iloc[80:160], VECTORS[80:160]), (ROWS.iloc[160:], VECTORS[160:])]
    barrier, stop, results = FORK.Barrier(3), FORK.Event(), FORK.Queue()
    queries = [query_near(i) for i in range(0, 80, 7)]
    reader = FORK.Process(target=_index_reader, args=(path, queries, barrier, stop, results))
    writers = [
        FORK.Process(target=_index_writer, args=(path, rows, vectors, barrier, results, k))
        for k, (rows, vectors) in enumerate(parts)
    ]
    for proc in [reader, *writers]:
        proc.start()
    done = [results.get(timeout=180) for _ in writers]
    stop.set()
    seen = results.get(timeout=180)
    for proc in [reader, *writers]:
        proc.join(timeout=60)
    assert sorted(d[1] for d in done) == ["ok", "ok"], done
    _, counts, errors = seen
    assert not errors and counts
    assert counts == sorted(counts) and counts[0] >= 80  # snapshots only move forward
    with EdgeIndex(path) as index:
        assert index.count() == len(ROWS)
        assert not index.missing(list(ROWS["record_id"]))  # every record, once (ids unique)
        got = index.get(list(ROWS["record_id"]))
        assert len(got) == len(ROWS)
    assert not [p for p in (path / "readers").iterdir()]  # every copy removed


# ---------------------------------------------------------------------------- directions, archives


@pytest.fixture(params=["local", "s3"])
def cas_store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "home")
    server = request.getfixturevalue("moto_serial_server")
    return S3Store(server.endpoint, "cas-" + uuid.uuid4().hex[:12], "t", "t", secure=False)


def test_directions_saved_meanwhile_by_another_fit_are_not_overwritten(cas_store):
    from sharpseek.science.directions import DirectionsConflict, DirectionSet

    def fitted(seed: int) -> DirectionSet:
        return DirectionSet("gan-v0001", {}, n_samples=10, seed=seed, latent_dim=4)

    before = DirectionSet.token(cas_store, "gan-v0001")  # none yet: two fits begin
    assert before is None
    fitted(1).save(cas_store, replaces=before)  # the first fit to finish
    with pytest.raises(DirectionsConflict, match=fitted(1).version):
        fitted(2).save(cas_store, replaces=before)  # the second: refused, names theirs
    saved = DirectionSet.load(cas_store, "gan-v0001")
    assert saved.seed == 1
    fitted(1).save(cas_store, replaces=before)  # the very same set again: nothing lost
    token = DirectionSet.token(cas_store, "gan-v0001")
    fitted(3).save(cas_store, replaces=token)  # a refit from what is there: replaces it
    assert DirectionSet.load(cas_store, "gan-v0001").seed == 3


def test_an_archive_marked_current_meanwhile_is_not_overwritten(cas_store):
    from sharpseek.serving.archives import ArchiveConflict, _current_token, _mark_current

    before = _current_token(cas_store, "generator")
    _mark_current(cas_store, "generator", "generator-aaaa.mar", before)
    _mark_current(cas_store, "generator", "generator-aaaa.mar", before)  # same archive: fine
    with pytest.raises(ArchiveConflict, match="generator-aaaa.mar"):
        _mark_current(cas_store, "generator", "generator-bbbb.mar", before)
    assert cas_store.get_bytes("model-store/generator/CURRENT") == b"generator-aaaa.mar"


# ---------------------------------------------------------------------------- UI, update, ingest


@pytest.mark.slow
def test_ui_search_goes_on_during_index_update_and_an_ingest(ui_home_path, tmp_path):
    """The UI's search (a Workbench in this process) while `sharpseek index update` runs in
    another process, and a `sharpseek ingest fits` in a third: no search fails, both commands
    exit 0, and afterwards the index holds every record of the dataset version it was
    updated to, once, and the ingested records are all in their dataset."""
    from ingest_fixtures import synthetic_dataset
    from sharpseek.config import Settings
    from sharpseek.search.index import EdgeIndex
    from sharpseek.ui.workbench import Workbench

    home = tmp_path / "home"
    subprocess.run(["cp", "-a", "--sparse=always", str(ui_home_path), str(home)], check=True)
    settings = Settings(home=home, preset="tiny")
    grown = synthetic_dataset(settings, regions=40, frames=3)  # new frames to index
    folder = tmp_path / "fits"
    _fits_files(folder, 9301, 4)
    env = {**os.environ, "SHARPSEEK_HOME": str(home), "SHARPSEEK_PRESET": "tiny",
           "SHARPSEEK_FLOWS__SHARD_SIZE": "20"}  # fmt: skip
    cli = str(Path(sys.executable).with_name("sharpseek"))
    bench = Workbench(settings)
    try:
        image = bench.grid([3])[0]
        assert len(bench.search(image, limit=4)) == 4  # the UI holds the index from here
        pipes = {"env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        update = subprocess.Popen([cli, "index", "update", "--dataset", "synthetic"], **pipes)
        ingest = subprocess.Popen([cli, "ingest", "fits", str(folder)], **pipes)
        searches, errors = 0, []
        while update.poll() is None or ingest.poll() is None:
            try:
                assert len(bench.search(image, limit=4)) == 4
            except Exception as err:  # reported below
                errors.append(repr(err))
            searches += 1
        outputs = [p.communicate(timeout=300)[0] for p in (update, ingest)]
        assert [update.returncode, ingest.returncode] == [0, 0], outputs
        assert not errors and searches >= 1
        assert len(bench.search(image, limit=4)) == 4
    finally:
        bench.close()
    with EdgeIndex(home / "index") as index:
        assert index.count() == len(grown)  # the old frames and the new, each once
        assert not index.missing(list(grown.manifest["record_id"]))
    sharp = load_dataset(LocalStore(home), "sharp")
    assert sorted(Counter(sharp.manifest["record_id"]).values()) == [1, 1, 1, 1]


@pytest.mark.slow
def test_two_ingest_then_index_pipelines_at_once_keep_every_record(ui_home_path, tmp_path):
    """Two pipelines at once on one home, each `sharpseek ingest fits` of its own files and
    then `sharpseek index update --dataset sharp`: both exit 0, the dataset holds all eight
    records once, and the index holds them all (each update plans after its own commit)."""
    from sharpseek.search.index import EdgeIndex

    home = tmp_path / "home"
    subprocess.run(["cp", "-a", "--sparse=always", str(ui_home_path), str(home)], check=True)
    folders = [tmp_path / "a", tmp_path / "b"]
    for harp, folder in zip((9401, 9402), folders, strict=True):
        _fits_files(folder, harp, 4)
    env = {**os.environ, "SHARPSEEK_HOME": str(home), "SHARPSEEK_PRESET": "tiny"}
    cli = shlex.quote(str(Path(sys.executable).with_name("sharpseek")))
    procs = [
        subprocess.Popen(
            f"{cli} ingest fits {shlex.quote(str(f))} && {cli} index update --dataset sharp",
            shell=True,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for f in folders
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    sharp = load_dataset(LocalStore(home), "sharp")
    counts = Counter(sharp.manifest["record_id"])
    assert len(counts) == 8 and set(counts.values()) == {1}
    with EdgeIndex(home / "index") as index:
        assert not index.missing(list(counts))
        assert len(index.get(list(counts))) == 8


def test_the_write_timeout_comes_from_the_settings(tmp_path, monkeypatch):
    from sharpseek.config import Settings
    from sharpseek.search.index import open_index_from_settings

    monkeypatch.setenv("SHARPSEEK_INDEX__WRITE_TIMEOUT_S", "2.5")
    index = open_index_from_settings(Settings(home=tmp_path / "home"))
    try:
        assert index.config.write_timeout_s == 2.5
    finally:
        index.close()
