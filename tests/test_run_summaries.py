"""The pipeline's run summaries (stored per run) and their picture, seconds per stage."""

import json

import matplotlib.image as mpimg
import pytest

from sharpseek.config import Settings
from sharpseek.pipeline.run_summaries import (
    run_summaries,
    runs_figure,
    save_run_summary,
    summarize_run,
)

STAGES = {
    "ingest": {"message": "12 frames ingested"},
    "train gan": {"skipped": True, "message": "tiny-seed0 reused"},
    "index": {"mode": "update", "points_after": 3600},
    "datasets": {"rows": [1, 2]},
}


def test_each_stage_kind_is_summarised_and_a_missing_time_is_none_not_nan():
    rows = summarize_run(STAGES, {"ingest": 12.345, "train gan": 0.5, "index": float("nan")})
    by_stage = {r["stage"]: r for r in rows}
    assert by_stage["ingest"] == {
        "stage": "ingest",
        "ran": True,
        "seconds": 12.35,
        "message": "12 frames ingested",
    }
    assert by_stage["train gan"]["ran"] is False
    assert by_stage["index"]["message"] == "index update: 3600 points live"
    assert by_stage["index"]["ran"] is True and by_stage["index"]["seconds"] is None
    assert by_stage["datasets"]["ran"] is False and by_stage["datasets"]["seconds"] is None
    json.dumps(rows, allow_nan=False)  # strict JSON: no NaN for a stage without a time


def test_summaries_round_trip_through_the_store_oldest_first(tmp_path):
    settings = Settings(home=tmp_path / "home", preset="tiny")
    first = summarize_run(STAGES, {"ingest": 1.0})
    second = summarize_run(STAGES, {"ingest": 2.0})
    save_run_summary(settings, first)
    save_run_summary(settings, second)
    assert run_summaries(settings, last=2) == [first, second]
    assert run_summaries(settings, last=1) == [second]


def test_the_figure_draws_a_run_with_a_stage_without_a_time(tmp_path):
    """A summary with a stage whose time was not recorded (None, or NaN in summaries stored
    before it was written as None) is drawn, beside a run with every time."""
    timed = summarize_run(STAGES, {"ingest": 30.0, "train gan": 1.0, "index": 5.0})
    untimed = [dict(r) for r in timed]
    untimed[2]["seconds"] = None
    untimed[3]["seconds"] = float("nan")
    path = runs_figure([timed, untimed], tmp_path / "runs.png", labels=["first", "second"])
    picture = mpimg.imread(path)
    assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] > 100
    with pytest.raises(ValueError, match="no pipeline runs"):
        runs_figure([], tmp_path / "none.png")
