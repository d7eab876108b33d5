"""The sharded JSOC ingest (what the flows map over workers) against the same plan run in
one process with one shard, through the real drms client and the fake JSOC server: same
records, same quarantine, NRT records replaced by definitive ones, and a crash between
shards then a rerun."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from fake_jsoc import FakeJsoc, builtin_record_table
from sharpseek.config import Settings
from sharpseek.data.dataset import dataset_versions, load_dataset
from sharpseek.data.ingest import commit_ingest_shards, ingest_shard
from sharpseek.data.jsoc import DEFINITIVE_SERIES, NRT_SERIES
from sharpseek.data.store import open_store
from sharpseek.pipeline import ingest_plans

EMAIL = "researcher@example.org"  # registered on the fake JSOC
#: HARP 9001 from 00:00 to 05:00: six hourly records, one of them a corrupt file
WINDOW = dict(harpnums=[9001], start="2020.01.01_00:00:00_TAI", end="2020.01.01_05:00:00_TAI")
CORRUPT = f"{DEFINITIVE_SERIES}.9001.20200101_020000_TAI.Br.fits"


@pytest.fixture
def fake_jsoc(tmp_path):
    corrupt = tmp_path / "corrupt.fits"  # whole 2880-byte blocks: the download accepts it
    corrupt.write_bytes(b"SIMPLE  =  this is not a FITS header".ljust(2 * 2880, b"\x00"))
    server = FakeJsoc(
        {DEFINITIVE_SERIES: builtin_record_table(), NRT_SERIES: builtin_record_table()},
        tmp_path / "jsoc-files",
        real_files={CORRUPT: corrupt},
    ).start()
    yield server
    server.stop()


def _settings(home, server, shard_files: int = 2) -> Settings:
    return Settings(
        home=home,
        jsoc={
            "server_url": server.url,
            "email": EMAIL,
            "retries": 0,
            "poll_seconds": 0.001,
            "export_timeout_seconds": 5.0,
        },
        flows={"ingest_shard_size": shard_files},
    )


def _single(tmp_path, server, **window):
    """The same request in one process and one shard, in a home of its own: the outcome's
    outputs and the dataset."""
    settings = _settings(tmp_path / "single", server, shard_files=1000)
    plan = ingest_plans.plan_ingest_jsoc(settings, incremental=False, **window)
    assert len(plan.shards) == 1
    outputs = ingest_plans.run_ingest_plan(settings, plan, progress=False).outputs
    return outputs, load_dataset(open_store(settings), "sharp")


def _stage(settings, **request):
    """A JSOC ingest stage in this process (plan -> shards -> commit)."""
    return ingest_plans.run_ingest_plan(
        settings, ingest_plans.plan_ingest_jsoc(settings, **request), progress=False
    )


def _same_records(single, sharded):
    pd.testing.assert_frame_equal(single.manifest, sharded.manifest)
    np.testing.assert_array_equal(single.images(), sharded.images())


def test_sharded_jsoc_ingest_equals_single_process(tmp_path, fake_jsoc):
    fake_jsoc.behaviour.drop_last_records = 1  # 05:00 is not delivered: quarantined
    settings = _settings(tmp_path / "sharded", fake_jsoc)
    plan = ingest_plans.plan_ingest_jsoc(settings, incremental=False, **WINDOW)
    assert [len(s) for s in plan.shards] == [2, 2, 1]  # 00:00 .. 04:00 (02:00 corrupt)
    assert all(s.staged and s.source == "jsoc" for s in plan.shards)
    assert [q.reason for q in plan.leading] == ["the JSOC export did not deliver this record"]

    # a worker on another machine has no downloads folder: the shards read their staged copies
    shutil.rmtree(settings.home / "downloads")
    made = [ingest_shard(settings, s) for s in plan.shards]
    assert [m["records"] for m in made] == [2, 1, 1] and [m["quarantined"] for m in made] == [
        0,
        1,
        0,
    ]
    outcome = ingest_plans.commit_ingest(settings, plan)
    assert outcome.outputs["added"] == 4 and len(outcome.outputs["quarantined"]) == 2

    store = open_store(settings)
    sharded = load_dataset(store, "sharp")
    single, single_ds = _single(tmp_path, fake_jsoc, **WINDOW)
    assert single["added"] == 4
    _same_records(single_ds, sharded)
    assert set(sharded.manifest["series"]) == {DEFINITIVE_SERIES}
    assert sharded.manifest["source"].str.startswith("jsoc:").all()
    # the same refusals, for the same reasons (the corrupt file under its downloaded path);
    # only the export's request id (JSOC numbers each export) tells the two runs apart
    columns = ["reason", "record_id"]
    pd.testing.assert_frame_equal(single_ds.quarantine[columns], sharded.quarantine[columns])
    corrupt = sharded.quarantine[sharded.quarantine["source"].str.endswith(CORRUPT)]
    assert len(corrupt) == 1
    assert corrupt["source"].iloc[0] == str(settings.home / "downloads" / CORRUPT)
    assert corrupt["reason"].iloc[0].startswith("not a readable FITS file")
    assert not list(store.list("pipeline/ingest/", recursive=True))  # staged copies removed
    assert len(list(store.list("raw/", recursive=True))) == 4  # good files kept as received


def test_sharded_definitive_records_replace_nrt_ones(tmp_path, fake_jsoc):
    settings = _settings(tmp_path / "sharded", fake_jsoc)
    window = dict(harpnums=[9002], start=WINDOW["start"], end="2020.01.01_03:00:00_TAI")
    nrt = _stage(settings, nrt=True, **window)
    assert nrt.outputs["added"] == 4 and nrt.outputs["replaced"] == 0
    definitive = _stage(settings, **window)
    assert definitive.outputs["replaced"] == 4  # the definitive records, in their place
    manifest = load_dataset(open_store(settings), "sharp").manifest
    assert len(manifest) == 4 and set(manifest["series"]) == {DEFINITIVE_SERIES}
    # nothing new (the same requests delivered the same files): skipped as up to date by the
    # ledger, no shard made, no new version
    again = _stage(settings, **window)
    assert again.skipped and "up to date" in again.message
    assert dataset_versions(open_store(settings), "sharp") == ["v0001", "v0002"]


def test_crash_between_shards_then_rerun_neither_duplicates_nor_drops(tmp_path, fake_jsoc):
    settings = _settings(tmp_path / "sharded", fake_jsoc)
    store = open_store(settings)
    plan = ingest_plans.plan_ingest_jsoc(settings, incremental=False, **WINDOW)
    assert len(plan.shards) == 3
    ingest_shard(settings, plan.shards[0])  # then the run dies
    with pytest.raises(RuntimeError, match="2 of 3 ingest shards .* not made"):
        commit_ingest_shards(
            store, "sharp", plan.shards, provenance=plan.provenance, leading=plan.leading
        )
    assert dataset_versions(store, "sharp") == []  # nothing written
    exports = fake_jsoc.count("exp_request")

    rerun = ingest_plans.plan_ingest_jsoc(settings, incremental=False, **WINDOW)
    assert fake_jsoc.count("exp_request") == exports  # the download resumed: no new export
    assert [s.key for s in rerun.shards] == [s.key for s in plan.shards]
    made = [ingest_shard(settings, s) for s in rerun.shards]
    assert [m["cached"] for m in made] == [True, False, False]
    outcome = ingest_plans.commit_ingest(settings, rerun)
    assert outcome.outputs["added"] == 5

    sharded = load_dataset(store, "sharp")
    assert sharded.manifest["record_id"].is_unique
    _same_records(_single(tmp_path, fake_jsoc, **WINDOW)[1], sharded)
    # an incremental run after it asks for nothing held, and adds nothing
    later = _stage(settings, harpnums=[9001], end=WINDOW["end"])
    assert later.outputs["added"] == 0 and len(load_dataset(store, "sharp")) == 5
