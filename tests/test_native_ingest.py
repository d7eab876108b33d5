"""Ingest measures every frame on its native grid: manifest columns and index payloads."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.config import Settings
from sharpseek.dataset import load_dataset
from sharpseek.index.points import INDEXED_FIELDS, build_points
from sharpseek.measure import measure_files
from sharpseek.native import NATIVE_COLUMNS
from sharpseek.pipeline import plan_ingest_fits, run_ingest_plan
from sharpseek.store import open_store


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
