"""The UI in a real browser: Shift update time and the browser test's duration.

Runs tests/e2e/test_ui_browser.py (``sharpseek ui`` served, Debian's headless chromium
driven by Playwright) ``--runs`` times on a copy of ``--home`` (the trained demo home; the
copy keeps the original untouched: the test uploads a patch and searches). Each run times 20
Shift updates (a key press on the TUF slider until the new B_r image and the updated URL are
in the page) and the whole browser session (generate, shift, a target, searches, Back and
Forward, a shared link, a reload, an export uploaded back, a second user). Writes the median,
p95 and max update over all runs, each run's, the test's duration and the machine's load.

Usage: python benchmarks/bench_ui.py --home .sharpseek [--runs 2]
       [--out benchmarks/results/ui.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT / "tests" / "e2e" / "test_ui_browser.py"


def run_once(home: Path, folder: Path) -> dict:
    """One run of the browser test on a fresh copy of ``home``; its timings."""
    copy = folder / "home"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy, symlinks=True)
    timings = folder / "timings.json"
    timings.unlink(missing_ok=True)
    env = {**os.environ, "SHARPSEEK_UI_E2E_HOME": str(copy), "SHARPSEEK_UI_TIMINGS": str(timings)}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(TEST), "-q", "-s", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0 or not timings.exists():
        raise SystemExit(f"the browser test failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    out = json.loads(timings.read_text())
    out["pytest_seconds"] = wall
    out["load_average_before"] = load
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a trained sharpseek home")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ui.json")
    args = parser.parse_args()
    if not (args.home / "models").is_dir():
        raise SystemExit(f"--home {args.home}: no models there; run `sharpseek demo` first")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        for i in range(args.runs):
            runs.append(run_once(args.home.resolve(), Path(tmp)))
            ms = runs[-1]["shift_update_ms"]
            print(
                f"run {i + 1}: Shift update median {np.median(ms):.0f} ms, p95 "
                f"{np.percentile(ms, 95):.0f} ms; browser session {runs[-1]['test_seconds']:.0f} s"
                f" (pytest {runs[-1]['pytest_seconds']:.0f} s)",
                flush=True,
            )
    every = [t for r in runs for t in r["shift_update_ms"]]
    result = {
        "what": "Shift update in headless chromium: key press on the TUF slider until the new "
        "B_r image and the updated URL are in the page (tests/e2e/test_ui_browser.py)",
        "home": str(args.home),
        "steps": len(every),
        "shift_update_median_ms": float(np.median(every)),
        "shift_update_p95_ms": float(np.percentile(every, 95)),
        "shift_update_max_ms": float(np.max(every)),
        "browser_session_seconds": [r["test_seconds"] for r in runs],
        "pytest_seconds": [r["pytest_seconds"] for r in runs],
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before_each_run": [r["load_average_before"] for r in runs],
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"Shift update over {len(every)} steps: median {result['shift_update_median_ms']:.0f} ms, "
        f"p95 {result['shift_update_p95_ms']:.0f} ms, max {result['shift_update_max_ms']:.0f} ms;"
        f" written to {args.out}"
    )


if __name__ == "__main__":
    main()
