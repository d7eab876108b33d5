"""benchmarks/retrieval_targets.py: issue 17's retrieval targets, checked on a report the way
``make bench`` checks them (exit status and each miss named)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(first: int, distinct: int, top5: float, pearson: dict[str, float]) -> dict:
    params = ("tuf", "r", "psep", "grad")
    return {
        "seeds": [first, first + 999],
        "hubness": {
            "simsiam": {"distinct_nearest": distinct, "top5_share": top5, "n_queries": 1000},
            "mahalanobis": {"distinct_nearest": 100, "top5_share": 0.4, "n_queries": 1000},
        },
        "correlations": [
            {"method": m, "parameter": p, "pearson": pearson[p], "spearman": pearson[p]}
            for m in ("simsiam", "mahalanobis")
            for p in params
        ],
    }


GOOD = {"tuf": 0.95, "r": 0.9, "psep": 0.6, "grad": 0.9}


def _check(tmp_path, blocks, held=None):
    report = {
        "retrieval": {
            "blocks": {str(b["seeds"][0]): b for b in blocks},
            "same_region_held_out": held
            or {"simsiam": 0.5, "pca": 0.4, "euclidean": 0.2, "mahalanobis": 0.2},
        }
    }
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(report))
    return subprocess.run(
        [sys.executable, "benchmarks/retrieval_targets.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_report_meeting_every_target_passes(tmp_path):
    done = _check(tmp_path, [_block(0, 600, 0.05, GOOD), _block(100000, 520, 0.08, GOOD)])
    assert done.returncode == 0, done.stderr
    assert "**no**" not in done.stdout


@pytest.mark.parametrize(
    "block, held, missed",
    [
        (_block(100000, 499, 0.05, GOOD), None, "100000..100999: distinct nearest frames = 499"),
        (_block(100000, 600, 0.11, GOOD), None, "100000..100999: top-5 share = 0.110"),
        (_block(100000, 600, 0.05, {**GOOD, "psep": 0.4}), None, "Pearson PSEP = 0.400"),
        (
            _block(100000, 600, 0.05, GOOD),
            {"simsiam": 0.3, "pca": 0.4, "euclidean": 0.2, "mahalanobis": 0.2},
            "same-region SimSiam > pca = 0.300, target > 0.400",
        ),
    ],
)
def test_each_miss_fails_and_is_named(tmp_path, block, held, missed):
    done = _check(tmp_path, [_block(0, 600, 0.05, GOOD), block], held)
    assert done.returncode == 1
    assert missed in done.stderr
    assert done.stderr.count("retrieval target missed") == 1
