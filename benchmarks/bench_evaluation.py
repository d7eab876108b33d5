"""The instrument's evaluation on a home (issue 16): the three `sharpseek evaluate` commands,
run as a user runs them, their reports gathered into one file.

Run from the repository root on the trained demo home (``make bench`` does)::

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/bench_evaluation.py \\
        --out benchmarks/results/evaluation.json --figures docs/images

Each command runs on both seed blocks (0..999 and 100000..100999):

- ``sharpseek evaluate models --out <dir>/models.json``: the current GAN against its training
  frames and its held-out HARPs (KS, W1, PSEP ratio, bipolar share, spectral share,
  memorisation), the current encoder's same-region retrieval on its held-out HARPs;
- ``sharpseek evaluate directions --out <dir>/directions.json``;
- ``sharpseek evaluate retrieval --dataset synthetic --out <dir>/retrieval``.

The file keeps each command line, its wall time and its report (retrieval: without the
per-query matches, which stay in the report folder's retrieval.json). ``--figures`` copies
the retrieval report's PNGs there (the docs show them). ``benchmarks/write_evaluation_docs.py``
then writes the figures into docs/evaluation.md and docs/training.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from direction_targets import direction_misses, direction_table
from generator_targets import generator_misses, generator_table
from retrieval_targets import retrieval_misses, retrieval_table
from sharpseek import __version__


def _run(name: str, args: list[str], env: dict[str, str]) -> dict:
    exe = str(Path(sys.executable).with_name("sharpseek"))
    t0 = time.perf_counter()
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{name}: `sharpseek {' '.join(args)}` exited {done.returncode}")
    return {"seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluation.json"))
    parser.add_argument("--home", type=Path, default=None, help="default: SHARPSEEK_HOME")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--figures", type=Path, default=None, help="copy the report's PNGs here")
    parser.add_argument("--reports", type=Path, default=None, help="keep the reports here")
    args = parser.parse_args()

    home = args.home or Path(os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    env = dict(os.environ, SHARPSEEK_HOME=str(home), OMP_NUM_THREADS="1")
    reports = args.reports or Path(tempfile.mkdtemp(prefix="sharpseek-eval-"))
    reports.mkdir(parents=True, exist_ok=True)
    commands = {
        "models": ["evaluate", "models", "--out", str(reports / "models.json")],
        "directions": [
            "evaluate", "directions", "--dataset", args.dataset,
            "--out", str(reports / "directions.json"),
        ],
        "retrieval": [
            "evaluate", "retrieval", "--dataset", args.dataset, "--no-progress",
            "--out", str(reports / "retrieval"),
        ],
    }  # fmt: skip
    result: dict = {
        "what": "issue 16: realism, memorisation, directions, hubness and held-out retrieval of "
        "the current models, seed blocks 0..999 and 100000..100999",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
        },
        "sharpseek": __version__,
        "environment": "SHARPSEEK_HOME=<home> OMP_NUM_THREADS=1",
        "commands": {
            k: "sharpseek " + " ".join(v).replace(str(reports), "<reports>")
            for k, v in commands.items()
        },
        "seconds": {},
    }
    for name, argv in commands.items():
        result["seconds"][name] = _run(name, argv, env)["seconds"]
        print(f"{name}: {result['seconds'][name]} s", flush=True)
    result["models"] = json.loads((reports / "models.json").read_text())
    result["directions"] = json.loads((reports / "directions.json").read_text())
    retrieval = json.loads((reports / "retrieval" / "retrieval.json").read_text())
    for block in retrieval["blocks"].values():
        block.pop("matches")
    result["retrieval"] = retrieval
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        for png in sorted((reports / "retrieval").glob("eval-*.png")):
            shutil.copy(png, args.figures / png.name)
            print(f"figure {args.figures / png.name}")
    # issue 17's generator targets (benchmarks/generator_targets.py): the table, then each
    # miss named; a miss fails the benchmark after the checks below have printed too
    print(generator_table(result["models"]))
    missed_generator = generator_misses(result["models"])
    for miss in missed_generator:
        print(f"generator target missed: {miss}", file=sys.stderr)
    # issue 17's direction targets (benchmarks/direction_targets.py): the table, then each
    # miss named; a miss fails the benchmark after the retrieval check below has printed too
    print(direction_table(result["directions"]))
    missed_directions = direction_misses(result["directions"])
    for miss in missed_directions:
        print(f"direction target missed: {miss}", file=sys.stderr)
    # issue 17's retrieval targets (benchmarks/retrieval_targets.py): the table, then each
    # miss named; a miss fails the benchmark once everything above is written
    print(retrieval_table(retrieval))
    misses = retrieval_misses(retrieval)
    for miss in misses:
        print(f"retrieval target missed: {miss}", file=sys.stderr)
    if missed_generator:
        raise SystemExit(f"{len(missed_generator)} generator target(s) missed (issue 17)")
    if misses:
        raise SystemExit(f"{len(misses)} retrieval target(s) missed (issue 17)")
    if missed_directions:
        raise SystemExit(f"{len(missed_directions)} direction target(s) missed (issue 17)")


if __name__ == "__main__":
    main()
