"""Skill of the look-alike flare outlook on a home's index (issue 23; docs/outlook.md).

Runs ``sharpseek evaluate outlook`` on the demo home (synthetic frames with their
ground-truth flares; drawn on a copy of the home when it lacks them) and writes
benchmarks/results/outlook.json and docs/images/outlook-reliability.png, with the time taken.
The synthetic flares follow R by construction: the figures check the plumbing.

    python benchmarks/bench_outlook.py --home .sharpseek --out benchmarks/results/outlook.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    parser.add_argument("--out", default="benchmarks/results/outlook.json")
    parser.add_argument("--figure", default="docs/images/outlook-reliability.png")
    parser.add_argument("--kind", default="synthetic")
    args = parser.parse_args()

    from sharpseek.config import Settings
    from sharpseek.data.flares import SYNTHETIC_PREFIX, latest_flare_version
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.flare_steps import flares_stage
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.evaluate_outlook import evaluate_outlook, outlook_frames, plot_reliability

    settings = Settings(home=Path(args.home))
    started = time.perf_counter()
    if latest_flare_version(open_store(settings), root=SYNTHETIC_PREFIX) is None:
        # a home from before the synthetic flares: draw them on a copy, never in the home
        copy = Path(tempfile.mkdtemp(prefix="sharpseek-outlook-")) / "home"
        shutil.copytree(args.home, copy)
        settings = Settings(home=copy)
        flares_stage(settings)
    loaded_s = time.perf_counter() - started
    flares = settings.flares
    started = time.perf_counter()
    with open_settings_index(settings) as index:
        table, vectors = outlook_frames(index, kind=args.kind, hours=flares.outlook_hours)
    result = evaluate_outlook(
        table, vectors, ks=(5, 10, 20, 40, 80), threshold=flares.outlook_class,
        hours=flares.outlook_hours,
    )  # fmt: skip
    result = {
        "kind": args.kind,
        "home": str(args.home),
        "flares_stage_s": round(loaded_s, 2),
        "evaluate_s": round(time.perf_counter() - started, 2),
        "load_average": os.getloadavg(),
    } | result
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    plot_reliability(result, args.figure)
    for split in ("chronological", "held_out"):
        s = result[split]
        print(split, f"k={s['k']}", {m: round(v["tss"], 3) for m, v in s["methods"].items()})


if __name__ == "__main__":
    main()
