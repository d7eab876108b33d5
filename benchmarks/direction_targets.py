"""Issue 17's direction targets, checked on a ``sharpseek evaluate directions`` report.

    .venv/bin/python benchmarks/direction_targets.py benchmarks/results/evaluation.json

``benchmarks/bench_evaluation.py`` calls :func:`direction_misses` on the report it just wrote
(``make bench``) and exits non-zero naming each miss. A target counts when it holds on every
seed block of the report (0..999 and 100000..100999), over the seeds whose start image is
bipolar with R > 0. For each of TUF, PSEP and R, shifted by the report's eps (+1.5):

- alone: the parameter rises in at least ``directions.strong_rise_share`` (90 %) of the
  seeds, by a median relative change of at least ``directions.strong_median_change``
  (20 %): the same rule that marks any other direction weak (the settings hold it, once);
- with the other two held: the same, and each held one moves by a median |change| of at
  most ``HELD_MAX_IQR`` (0.25) of the dataset's interquartile range (the signed median is
  printed beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sharpseek.config import Settings

#: The most a held parameter may move: median |after - before| / the dataset's IQR.
HELD_MAX_IQR = 0.25


def direction_rows(report: dict[str, Any], settings: Settings | None = None) -> list[dict]:
    """One row per (seed block, direction, mode) with the measured figures and ``misses``
    (a list of what fell short; empty when the row meets its targets)."""
    cfg = (settings or Settings()).directions
    rows = []
    names = report["parameters"]
    for block in report["blocks"].values():
        first, last = block["seeds"]
        for name in names:
            if name not in block:
                continue
            for mode in ("alone", "held"):
                e = block[name][mode]
                misses = []
                if not e["rises"] >= cfg.strong_rise_share:
                    misses.append(f"rises in {e['rises']:.0%} < {cfg.strong_rise_share:.0%}")
                change = e["median_relative_change"]
                if not change >= cfg.strong_median_change:
                    misses.append(f"median change {change:+.1%} < {cfg.strong_median_change:+.0%}")
                held = {}
                for other in names:
                    if other == name:
                        continue
                    moved = e[f"{other}_median_abs_change_iqr"]
                    held[other] = (e[f"{other}_median_change_iqr"], moved)
                    if mode == "held" and not moved <= HELD_MAX_IQR:
                        misses.append(f"held {other} moves {moved:.2f} IQR > {HELD_MAX_IQR}")
                rows.append(
                    {
                        "block": f"{first}..{last}",
                        "selected": block["selected"],
                        "direction": name,
                        "mode": mode,
                        "rises": e["rises"],
                        "median_relative_change": change,
                        "others": held,
                        "misses": misses,
                    }
                )
    return rows


def direction_misses(report: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """One line per missed target (empty when all are met)."""
    return [
        f"{r['block']}: {r['direction']} {r['mode']}: {miss}"
        for r in direction_rows(report, settings)
        for miss in r["misses"]
    ]


def direction_table(report: dict[str, Any], settings: Settings | None = None) -> str:
    """The targets as a markdown table: block, direction, mode, rises, median change, the
    others' median change / IQR (signed, and |change| in brackets), met."""
    lines = [
        f"Directions {report.get('directions')} ({report.get('method', 'method not recorded')}), "
        f"shift {report['eps']:+g}:",
        "",
        "| seeds (selected) | direction | mode | rises | median rel. change | others: median "
        "change / IQR (median abs) | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in direction_rows(report, settings):
        others = ", ".join(
            f"{o.upper()} {signed:+.2f} ({moved:.2f})" for o, (signed, moved) in r["others"].items()
        )
        lines.append(
            f"| {r['block']} ({r['selected']}) | {r['direction'].upper()} | {r['mode']} | "
            f"{r['rises']:.0%} | {r['median_relative_change']:+.1%} | {others} | "
            f"{'yes' if not r['misses'] else '**no**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "report", type=Path, help="evaluation.json (bench_evaluation.py) or directions.json"
    )
    args = parser.parse_args()
    data = json.loads(args.report.read_text())
    report = data if "blocks" in data else data["directions"]  # a report, or the bench's file
    print(direction_table(report))
    misses = direction_misses(report)
    for miss in misses:
        print(f"direction target missed: {miss}", file=sys.stderr)
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
