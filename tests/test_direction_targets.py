"""benchmarks/direction_targets.py: issue 17's direction targets, checked on a report the way
``make bench`` checks them (exit status and each miss named)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("tuf", "psep", "r")


def _effect(rises=0.95, change=0.3, moved=0.1):
    return {"rises": rises, "median_relative_change": change} | {
        f"{o}_{kind}": moved
        for o in NAMES
        for kind in ("median_change_iqr", "median_abs_change_iqr")
    }


def _report(**override):
    """A two-block report meeting every target; ``override`` maps "block/name/mode" to the
    effect that replaces it."""
    blocks = {}
    for first in (0, 100000):
        entry = {"seeds": [first, first + 999], "selected": 900}
        for name in NAMES:
            entry[name] = {"alone": _effect(moved=2.0), "held": _effect()}  # alone may drag
        blocks[str(first)] = entry
    for key, effect in override.items():
        first, name, mode = key.split("/")
        blocks[first][name][mode] = effect
    return {"eps": 1.5, "parameters": list(NAMES), "directions": "toy-d1", "blocks": blocks}


def _check(tmp_path, report):
    path = tmp_path / "directions.json"
    path.write_text(json.dumps({"directions": report}))
    return subprocess.run(
        [sys.executable, "benchmarks/direction_targets.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_report_meeting_every_target_passes(tmp_path):
    done = _check(tmp_path, _report())
    assert done.returncode == 0, done.stderr
    assert "**no**" not in done.stdout and done.stdout.count("| yes |") == 12


@pytest.mark.parametrize(
    "override, missed",
    [
        ({"0/psep/alone": _effect(rises=0.61)}, "0..999: psep alone: rises in 61% < 90%"),
        ({"100000/tuf/held": _effect(change=0.077)}, "tuf held: median change +7.7% < +20%"),
        ({"100000/tuf/held": _effect(moved=0.3)}, "tuf held: held psep moves 0.30 IQR > 0.25"),
    ],
)
def test_each_miss_fails_and_is_named(tmp_path, override, missed):
    done = _check(tmp_path, _report(**override))
    assert done.returncode == 1
    assert missed in done.stderr


def test_bench_evaluation_checks_the_direction_targets():
    """make bench's evaluation script calls the checker (a miss exits non-zero)."""
    text = (ROOT / "benchmarks" / "bench_evaluation.py").read_text()
    assert 'direction_misses(result["directions"])' in text
    assert "direction target(s) missed" in text
