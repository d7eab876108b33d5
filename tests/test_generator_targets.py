"""benchmarks/generator_targets.py: issue 17's generator targets, checked on a report the way
``make bench`` checks them (exit status and each miss named)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ("tuf", "tpf", "tnf", "psep", "r", "sigma", "alpha", "grad")


def _block(first: int, ks: float = 0.2, **held) -> dict:
    values = {f"ks_{k}": ks for k in PARAMS}
    values.update(
        psep_median_ratio=1.0,
        bipolar_share_generated=0.98,
        bipolar_share_real=1.0,
        spectral_high_ratio=1.2,
    )
    values.update(held)
    copy = values.pop("copy", 1.0)
    return {
        "seeds": [first, first + 999],
        "held_out": values,
        "memorisation": {"pixels": {"ratio": copy}},
    }


def _check(tmp_path, blocks):
    report = {"models": {"gan": {"blocks": {str(b["seeds"][0]): b for b in blocks}}}}
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(report))
    return subprocess.run(
        [sys.executable, "benchmarks/generator_targets.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_report_meeting_every_target_passes(tmp_path):
    done = _check(tmp_path, [_block(0), _block(100000, ks=0.25)])
    assert done.returncode == 0, done.stderr
    assert "MISSED" not in done.stdout and done.stdout.count(" met") == 12


@pytest.mark.parametrize(
    "held, missed",
    [
        ({"ks": 0.26}, "KS mean on seeds 100000..100999 is 0.26"),
        ({"ks_sigma": 0.41}, "worst KS on seeds 100000..100999 is 0.41"),
        ({"psep_median_ratio": 0.84}, "median PSEP ratio on seeds 100000..100999 is 0.84"),
        ({"bipolar_share_generated": 0.94}, "bipolar share difference on seeds"),
        ({"spectral_high_ratio": 2.1}, "spectral ratio beyond radius 32 on seeds"),
        ({"copy": 0.89}, "copy ratio (nearest frame) on seeds 100000..100999 is 0.89"),
        ({"psep_median_ratio": float("nan")}, "median PSEP ratio on seeds 100000..100999 is nan"),
    ],
)
def test_each_miss_fails_and_is_named(tmp_path, held, missed):
    done = _check(tmp_path, [_block(0), _block(100000, **held)])
    assert done.returncode == 1
    assert missed in done.stderr
    assert done.stderr.count("generator target missed") == 1
