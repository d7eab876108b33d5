"""What a held shift costs and how close it holds: one image at a time, as the UI asks.

For ``--seeds`` seeds of the home's generator (in process, one torch thread), +1.5 along
each of TUF, PSEP and R, without a hold, holding one of the other two and holding both, by
the home's directions and their hold method (``directions.hold``; ``--hold-method`` refits
nothing, it only overrides the method of the loaded set for the run). Writes per case the
median and max wall time of ``InProcessBackend.generate`` (generate, shift, hold, measure)
and the held parameters' median |change| in units of their IQR over the fitting sample.

Usage: python benchmarks/bench_hold.py --home .sharpseek [--seeds 20]
       [--out benchmarks/results/hold.json] [--hold-method linear|measured]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from sharpseek.config import Settings
from sharpseek.serving.backends import InProcessBackend

CASES = {
    "tuf": ([], ["r"], ["r", "psep"]),
    "psep": ([], ["tuf"], ["tuf", "r"]),
    "r": ([], ["tuf"], ["tuf", "psep"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hold.json"))
    parser.add_argument("--hold-method", choices=("linear", "measured"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backend = InProcessBackend(Settings(home=args.home))
    directions = backend.directions
    if directions is None:
        raise SystemExit(f"{args.home}: no directions fitted for the home's GAN")
    if args.hold_method:
        method = dataclasses.replace(directions.method, hold=args.hold_method)
        object.__setattr__(directions, "method", method)
    seeds = list(range(args.seeds))
    backend.generate(seeds=[0])  # load the models outside the timings
    start = backend.generate(seeds=seeds).parameters
    load = os.getloadavg()[0]
    rows = []
    for shifted, holds in CASES.items():
        for hold in holds:
            times, after = [], {h: [] for h in hold}
            for seed in seeds:
                t0 = time.perf_counter()
                answer = backend.generate(seeds=[seed], shifts={shifted: 1.5}, hold=hold)
                times.append(time.perf_counter() - t0)
                for h in hold:
                    after[h].append(float(answer.parameters[h][0]))
            moved = {}
            for h in hold:
                table = directions.distribution[h]
                change = np.abs(np.array(after[h]) - np.asarray(start[h], float))
                moved[h] = float(np.nanmedian(change) / (table[75] - table[25]))
            rows.append(
                {
                    "shift": shifted,
                    "hold": hold,
                    "median_ms": 1000 * float(np.median(times)),
                    "max_ms": 1000 * float(np.max(times)),
                    "held_median_abs_change_iqr": moved,
                }
            )
            print(
                f"{shifted} +1.5 holding {hold or 'nothing'}: median "
                f"{rows[-1]['median_ms']:.0f} ms, max {rows[-1]['max_ms']:.0f} ms, held {moved}"
            )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_at_start": load,
        "load_at_end": os.getloadavg()[0],
        "directions": directions.version,
        "method": directions.method.describe(),
        "seeds": args.seeds,
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
