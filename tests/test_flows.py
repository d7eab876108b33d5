"""The Prefect flows under prefect's test harness (a real, temporary Prefect API).

Data is tiny (two fake JSOC HARPs, a few synthetic regions) and the models are untrained
tiny checkpoints (``model_fixtures``): these tests check the orchestration — what runs,
what is skipped, what reaches the index, what a failure leaves — not model quality.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sharpseek.config import Settings

pytest_plugins = ["model_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "researcher@example.org"  # registered on the fake JSOC
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def flows(harness):
    from sharpseek.pipeline.runs import load_flows

    return load_flows()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def fake_jsoc(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_jsoc import DEFINITIVE, NRT, FakeJsoc, builtin_record_table

    server = FakeJsoc(
        {DEFINITIVE: builtin_record_table(), NRT: builtin_record_table()}, tmp_path / "jsoc"
    ).start()
    yield server
    server.stop()


@pytest.fixture
def home(untrained_home, monkeypatch, fake_jsoc) -> Settings:
    """SHARPSEEK_* for the flows (they read the environment, as a deployment does)."""
    env = {
        "SHARPSEEK_JSOC__SERVER_URL": fake_jsoc.url,
        "SHARPSEEK_JSOC__EMAIL": EMAIL,
        "SHARPSEEK_JSOC__RETRIES": "0",
        "SHARPSEEK_JSOC__POLL_SECONDS": "0.001",
        "SHARPSEEK_JSOC__EXPORT_TIMEOUT_SECONDS": "5",
        "SHARPSEEK_FLOWS__RETRIES": "2",
        "SHARPSEEK_FLOWS__RETRY_DELAY_SECONDS": "0",
        "SHARPSEEK_FLOWS__SHARD_SIZE": "2",
        "SHARPSEEK_SYNTHETIC__REGIONS": "3",
        "SHARPSEEK_SYNTHETIC__FRAMES": "2",
        # no flare table unless a test serves one (the shared one would only cost time here)
        "SHARPSEEK_FLARES__SOURCE": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _index(settings: Settings):
    from sharpseek.pipeline.index_plans import open_settings_index

    return open_settings_index(settings)


def test_incremental_reindex_picks_up_exactly_the_new_records(flows, home):
    first = flows.ingest_and_reindex_flow(
        harpnums=[9001],
        start="2020.01.01_00:00:00_TAI",
        end="2020.01.01_02:00:00_TAI",
        nrt=False,
    )
    assert first["definitive"]["outputs"]["added"] == 3
    assert first["index"]["mode"] == "reindex" and first["index"]["points_after"] == 3

    later = flows.ingest_and_reindex_flow(harpnums=[9001], end="2020.01.01_05:00:00_TAI", nrt=False)
    assert later["definitive"]["outputs"]["added"] == 3  # 03:00, 04:00, 05:00
    assert later["index"]["mode"] == "update"
    assert later["index"]["added"] == 3 and later["index"]["points_after"] == 6

    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    manifest = load_dataset(open_store(home), "sharp").manifest
    with _index(home) as index:
        stored = index.get(manifest["record_id"].tolist())
    hours = sorted(pd.Timestamp(r.payload["t_rec"]).hour for r in stored)
    assert hours == [0, 1, 2, 3, 4, 5]

    again = flows.ingest_and_reindex_flow(harpnums=[9001], end="2020.01.01_05:00:00_TAI", nrt=False)
    assert again["index"]["mode"] == "none" and again["index"]["points_after"] == 6


HARP_TABLE = """HARPNUM,T_START,T_END,NOAA_ARS
9001,2019.12.31_00:00:00_TAI,2020.01.03_00:00:00_TAI,12900
"""
FLARE_TABLE = """DATE,START_TIME,END_TIME,MAX_TIME,LOCATION,CMX,CMX_VALUE,INTENSITY,FLUX,AR,SHARP
191230,0000,0010,,,B,10,1e-7,0,12900,
200101,0130,0140,,,M,10,1e-5,0,12900,9001
200104,0000,0010,,,B,10,1e-7,0,12900,
"""


@contextlib.contextmanager
def _file_server(folder: Path):
    """A local HTTP file server over ``folder`` (the flare table's configured location)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_hourly_flow_picks_up_a_newer_flare_table_from_a_url(
    flows, home, monkeypatch, tmp_path
):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "harps.csv").write_text(HARP_TABLE)
    (folder / "flares.csv").write_text(FLARE_TABLE)
    with _file_server(folder) as url:
        monkeypatch.setenv("SHARPSEEK_FLARES__SOURCE", f"{url}/flares.csv")
        monkeypatch.setenv("SHARPSEEK_FLARES__HARPS", f"{url}/harps.csv")
        first = flows.ingest_and_reindex_flow(
            harpnums=[9001],
            start="2020.01.01_00:00:00_TAI",
            end="2020.01.01_02:00:00_TAI",
            nrt=False,
        )
        assert first["flares"]["outputs"]["version"] == "v0001"
        assert first["flares"]["outputs"]["payloads"]["written"] == 3
        again = flows.flares_flow()
        assert not again["outputs"]["created"] and again["outputs"]["payloads"]["written"] == 0
        # a newer file at the same place: an X2.0 at 00:30 UT
        (folder / "flares.csv").write_text(FLARE_TABLE + "200101,0030,0040,,,X,20,2e-4,0,12900,\n")
        newer = flows.flares_flow()
        assert newer["outputs"]["version"] == "v0002"
        assert newer["outputs"]["payloads"]["written"] == 3
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    manifest = load_dataset(open_store(home), "sharp").manifest
    with _index(home) as index:
        stored = {r.record_id: r.payload for r in index.get(manifest["record_id"].tolist())}
    by_hour = {pd.Timestamp(p["t_rec"]).hour: p for p in stored.values()}
    # 00:00 TAI: the X2.0 (00:30:37 TAI) and the M1.0 (01:30:37 TAI) lie ahead
    assert by_hour[0]["outcome_24h_max_class"] == "X2.0" and by_hour[0]["outcome_24h_m"] == 2
    assert by_hour[1]["history_24h_max_class"] == "X2.0" and by_hour[1]["outcome_24h_m"] == 1
    assert by_hour[2]["history_24h_m"] == 2 and by_hour[2]["outcome_24h_c"] == 0
    assert {p["flare_catalogue"] for p in stored.values()} == {"v0002"}


def test_jsoc_unreachable_retries_then_fails_leaving_the_live_index(flows, home, monkeypatch):
    flows.ingest_and_reindex_flow(
        harpnums=[9002],
        start="2020.01.01_00:00:00_TAI",
        end="2020.01.01_01:00:00_TAI",
        nrt=False,
    )
    with _index(home) as index:
        live, count = index.live().name, index.count()
    assert count == 2

    import socket

    with socket.socket() as s:  # a port nothing listens on: JSOC unreachable
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setenv("SHARPSEEK_JSOC__SERVER_URL", dead)
    state = flows.ingest_and_reindex_flow(
        harpnums=[9002], end="2020.01.01_05:00:00_TAI", nrt=False, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(Exception) as err:
        state.result()
    message = str(err.value)
    assert "127.0.0.1" in message or "JSOC" in message, message

    # the download task (in the ingest-jsoc subflow) ran 1 + SHARPSEEK_FLOWS__RETRIES times
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )  # fmt: skip
        )
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[parent, *(c.id for c in children)])
            )
        )
    download = [r for r in runs if r.name.startswith("download JSOC")]
    assert len(download) == 1 and download[0].run_count == 3, [(r.name, r.run_count) for r in runs]
    assert not any(r.name.startswith(("ingest shard", "commit", "write index")) for r in runs)

    with _index(home) as index:
        assert index.live().name == live and index.count() == count


def test_index_shards_on_a_dask_cluster_of_two_workers(flows, home, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_FLOWS__TASK_RUNNER", "dask")
    monkeypatch.setenv("SHARPSEEK_FLOWS__DASK_WORKERS", "2")
    settings = Settings()
    from ingest_fixtures import synthetic_dataset

    ds = synthetic_dataset(settings)  # 3 regions x 2 frames
    runner = flows.task_runner_for(settings)
    assert type(runner).__name__ == "DaskTaskRunner"
    out = flows.run_index_flow(settings, ["synthetic"])
    assert out["mode"] == "reindex" and out["points_after"] == len(ds) == 6

    from sharpseek.data.store import open_store
    from sharpseek.models.inference import EncoderModel
    from sharpseek.pipeline.stages import model_keys

    encoder = EncoderModel.from_checkpoint(
        model_keys(settings)["encoder"], store=open_store(settings)
    )
    ids = ds.manifest["record_id"].tolist()
    with _index(settings) as index:
        stored = {r.record_id: r.vector for r in index.get(ids, with_vector=True)}
    direct = encoder.embed(ds.images())
    np.testing.assert_allclose(np.stack([stored[i] for i in ids]), direct, rtol=1e-4, atol=1e-5)


def test_stage_flows_skip_what_is_up_to_date(flows, home):
    first = flows.ingest_synthetic_flow()
    assert not first["skipped"]
    assert flows.ingest_synthetic_flow()["skipped"]
    rows = flows.dataset_versions_flow()
    assert [(r["dataset"], r["records"]) for r in rows] == [("synthetic", 6)]
    archives = flows.archives_flow()  # sharpseek.serving.archives.build_archives: both models
    assert not archives["skipped"] and len(archives["outputs"]["archives"]) == 2
    assert flows.archives_flow()["skipped"]  # same model versions: not rebuilt


def test_sharded_ingest_on_a_dask_cluster_of_two_workers_equals_single_process(
    flows, home, monkeypatch, tmp_path, br_sample_paths
):
    """Synthetic regions and FITS files, shards mapped over 2 Dask process workers, one
    commit: exactly the records (values, order, images) a single-process ingest writes."""
    monkeypatch.setenv("SHARPSEEK_FLOWS__TASK_RUNNER", "dask")
    monkeypatch.setenv("SHARPSEEK_FLOWS__DASK_WORKERS", "2")
    monkeypatch.setenv("SHARPSEEK_FLOWS__INGEST_SHARD_SIZE", "2")  # 3 regions x 2 frames: 3
    settings = Settings()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from ingest_fixtures import fits_dataset, synthetic_dataset
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    synthetic = flows.run_ingest_synthetic_flow(settings, return_state=True)
    fits = flows.run_ingest_fits_flow(settings, [str(p) for p in br_sample_paths])
    assert not synthetic.result()["skipped"] and fits["outputs"]["added"] == len(br_sample_paths)

    # the shards ran as task runs on the Dask workers: processes other than this one
    for out in (synthetic.result(), fits):
        workers = out["shards"]["workers"]
        assert workers and not any(w.endswith(f":{os.getpid()}") for w in workers), workers
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[synthetic.state_details.flow_run_id])
            )
        )
    shard_runs = [r for r in runs if r.name.startswith("ingest shard")]
    assert len(shard_runs) == 3 and all(r.state.is_completed() for r in shard_runs)

    store = open_store(settings)
    one_shard = {"ingest_shard_size": 1000}  # the same plans in this process, one shard each
    single_home = Settings(home=tmp_path / "single", flows=one_shard)
    for name, single in [
        ("synthetic", synthetic_dataset(single_home)),
        ("sharp", fits_dataset(single_home, br_sample_paths)),
    ]:
        sharded = load_dataset(store, name)
        pd.testing.assert_frame_equal(single.manifest, sharded.manifest)
        np.testing.assert_array_equal(single.images(), sharded.images())
