"""Ingest measures every frame on its native grid: manifest columns and index payloads."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.config import Settings
from sharpseek.data.dataset import load_dataset
from sharpseek.data.native import NATIVE_COLUMNS
from sharpseek.data.store import open_store
from sharpseek.pipeline.ingest_plans import plan_ingest_fits, run_ingest_plan
from sharpseek.science.measure import measure_files
from sharpseek.search.index.points import INDEXED_FIELDS, build_points


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home")


def test_ingested_real_frames_carry_their_native_values(settings, samples_dir, br_sample_paths):
    run_ingest_plan(settings, plan_ingest_fits(settings, [samples_dir]), progress=False)
    manifest = load_dataset(open_store(settings), "sharp").manifest
    assert set(NATIVE_COLUMNS) <= set(manifest.columns)
    by_file = {row.source.split(":", 1)[1]: row for row in manifest.itertuples()}
    # the same numbers `sharpseek measure` gives for the same files (one definition)
    for expected in measure_files(br_sample_paths):
        row = by_file[expected["file"]]
        for key in ("psep_mm", "tilt_cea", "joy_tilt_cea", "r_jsoc", "flux_imbalance"):
            assert getattr(row, key) == pytest.approx(expected[key], rel=1e-12), key
        assert row.r_jsoc_segment == expected["r_jsoc_segment"]
    segments = dict(zip(manifest["harpnum"], manifest["r_jsoc_segment"], strict=True))
    assert segments == {377: "magnetogram", 3700: "Br", 7115: "Br"}


def test_index_payload_carries_the_native_values(settings, samples_dir):
    run_ingest_plan(settings, plan_ingest_fits(settings, [samples_dir]), progress=False)
    manifest = load_dataset(open_store(settings), "sharp").manifest
    points = build_points(
        manifest, np.zeros((len(manifest), 4)), dim=4, dataset_version="v", encoder_version="e"
    )
    for payload, row in zip(points.payloads, manifest.itertuples(), strict=True):
        assert payload["tilt_cea"] == pytest.approx(row.tilt_cea)
        assert payload["r_jsoc_segment"] == row.r_jsoc_segment
    assert all(INDEXED_FIELDS[key] == "float" for key in ("tilt_cea", "r_jsoc", "flux_imbalance"))


def test_staged_shards_carry_the_magnetogram_beside_its_br(settings, samples_dir):
    # JSOC downloads are staged in the store for workers elsewhere: the line-of-sight
    # segment travels with its Br file, so r_jsoc is computed on it there too
    from sharpseek.data.ingest import ingest_shard, plan_fits_shards, shard_items

    br = samples_dir / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"
    if not br.with_name(br.name.replace(".Br.", ".magnetogram.")).is_file():
        pytest.skip("the magnetogram of HARP 377 is absent")
    store = open_store(settings)
    (shard,) = plan_fits_shards([br], dataset="sharp", source="jsoc", shard_files=4,
                                stage_in=store)  # fmt: skip
    assert any(k.endswith(".magnetogram.fits") for k in (o.key for o in store.list(shard.key)))
    ingest_shard(settings, shard, store=store)
    (record,) = list(shard_items(store, shard))
    assert record.meta["r_jsoc_segment"] == "magnetogram"  # (a shard keeps one row per record)
    (expected,) = measure_files([br])
    assert record.meta["r_jsoc"] == pytest.approx(expected["r_jsoc"], rel=1e-12)


def test_a_jsoc_export_of_the_magnetogram_gives_r_jsoc_on_it(tmp_path):
    from fake_jsoc import FakeJsoc, builtin_record_table
    from sharpseek.data.jsoc import DEFINITIVE_SERIES, NRT_SERIES
    from sharpseek.pipeline.ingest_plans import plan_ingest_jsoc

    tables = {DEFINITIVE_SERIES: builtin_record_table(), NRT_SERIES: builtin_record_table()}
    server = FakeJsoc(tables, tmp_path / "jsoc-files").start()
    try:
        jsoc = {"email": "researcher@example.org", "retries": 2, "backoff_seconds": 0.001,
                "poll_seconds": 0.001, "export_timeout_seconds": 5.0,
                "server_url": server.url}  # fmt: skip
        window = dict(harpnums=[9001], start="2020.01.01_00:00:00_TAI",
                      end="2020.01.01_01:00:00_TAI")  # fmt: skip
        segments = {}
        for segs in (["Br"], ["Br", "magnetogram"]):
            s = Settings(home=tmp_path / "-".join(segs), jsoc={**jsoc, "segments": segs})
            run_ingest_plan(s, plan_ingest_jsoc(s, **window), progress=False)
            manifest = load_dataset(open_store(s), "sharp").manifest
            segments[len(segs)] = manifest[["r_jsoc", "r_jsoc_segment"]]
    finally:
        server.stop()
    assert set(segments[1]["r_jsoc_segment"]) == {"Br"}
    assert set(segments[2]["r_jsoc_segment"]) == {"magnetogram"}
    assert len(segments[2]) == len(segments[1]) == 2  # the magnetogram is no frame of its own
