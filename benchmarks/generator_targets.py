"""Issue 17's generator targets, checked on a ``sharpseek evaluate models`` report.

    .venv/bin/python benchmarks/generator_targets.py benchmarks/results/evaluation.json

``benchmarks/bench_evaluation.py`` calls :func:`generator_misses` on the report it just wrote
(``make bench``) and exits non-zero naming each miss. A target counts when it holds on every
seed block of the report (0..999 and 100000..100999), against the frames of the HARPs the GAN
held out from its training (``held_out``; the split is recorded in its checkpoint):

- mean KS over the eight parameters (TUF, TPF, TNF, PSEP, R, SIGMA, ALPHA, GRAD) <= 0.25,
  none above 0.4;
- median PSEP within 15 % of the held-out frames';
- bipolar share within 5 points;
- spectral power beyond radius 32 between 0.5x and 2x;
- not copies: the median pixel distance of generated images to their nearest training frame
  at least 0.9x that of held-out frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The eight parameters the KS targets average over.
GENERATOR_KS = ("tuf", "tpf", "tnf", "psep", "r", "sigma", "alpha", "grad")


def _ks(block: dict) -> list[float]:
    return [block["held_out"][f"ks_{k}"] for k in GENERATOR_KS]


def _bipolar_gap(block: dict) -> float:
    held = block["held_out"]
    return abs(held["bipolar_share_generated"] - held["bipolar_share_real"])


#: (target, what it reads from one block's report, lowest, highest); None: no bound.
GENERATOR_TARGETS = (
    ("KS mean", lambda b: sum(_ks(b)) / len(GENERATOR_KS), None, 0.25),
    ("worst KS", lambda b: max(_ks(b)), None, 0.4),
    ("median PSEP ratio", lambda b: b["held_out"]["psep_median_ratio"], 0.85, 1.15),
    ("bipolar share difference", _bipolar_gap, None, 0.05),
    ("spectral ratio beyond radius 32", lambda b: b["held_out"]["spectral_high_ratio"], 0.5, 2.0),
    ("copy ratio (nearest frame)", lambda b: b["memorisation"]["pixels"]["ratio"], 0.9, None),
)  # fmt: skip


def generator_rows(models: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (seed block, target): ``block``, ``target``, ``value``, ``low``, ``high``,
    ``met`` (NaN never meets a target), from ``sharpseek evaluate models``' report."""
    rows = []
    for entry in models["gan"]["blocks"].values():
        first, last = entry["seeds"]
        for name, read, low, high in GENERATOR_TARGETS:
            value = float(read(entry))
            met = (
                value == value and (low is None or value >= low) and (high is None or value <= high)
            )
            rows.append(
                {"block": f"{first}..{last}", "target": name, "value": value, "low": low,
                 "high": high, "met": met}
            )  # fmt: skip
    return rows


def _bounds(row: dict) -> str:
    low, high = row["low"], row["high"]
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g} .. {high:g}"


def generator_table(models: dict[str, Any]) -> str:
    """The targets as a text table, one line per (block, target)."""
    lines = ["issue 17 generator targets (against held-out HARPs):"]
    for r in generator_rows(models):
        verdict = "met" if r["met"] else "MISSED"
        lines.append(
            f"  {r['block']:>15}  {r['target']:<34} {r['value']:8.3f}  {_bounds(r):<12} {verdict}"
        )
    return "\n".join(lines)


def generator_misses(models: dict[str, Any]) -> list[str]:
    """Each missed target, named with its block, value and bounds."""
    return [
        f"{r['target']} on seeds {r['block']} is {r['value']:.3g}, wanted {_bounds(r)}"
        for r in generator_rows(models)
        if not r["met"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="evaluation.json or a models.json")
    args = parser.parse_args()
    data = json.loads(args.report.read_text())
    models = data.get("models", data)
    print(generator_table(models))
    misses = generator_misses(models)
    for miss in misses:
        print(f"generator target missed: {miss}", file=sys.stderr)
    if misses:
        sys.exit(f"{len(misses)} generator target(s) missed (issue 17)")


if __name__ == "__main__":
    main()
