"""Issue 17's retrieval targets, checked on a ``sharpseek evaluate retrieval`` report.

    .venv/bin/python benchmarks/retrieval_targets.py benchmarks/results/evaluation.json

``benchmarks/bench_evaluation.py`` calls :func:`retrieval_misses` on the report it just wrote
(``make bench``) and exits non-zero naming each miss. A target counts when it holds on every
seed block of the report (0..999 and 100000..100999). The thresholds live here, in one
table, because they are acceptance criteria of the benchmark, not settings of the instrument.

- SimSiam hubness: at least 500 distinct nearest frames of 1,000 queries (scaled to the
  block's query count), the 5 most frequent nearest frames at most 10 % of the queries;
- SimSiam Pearson between query and match: TUF >= 0.90, R >= 0.85, PSEP >= 0.50,
  GRAD >= 0.85 (a parameter the encoder's training objective is given does not count for
  its own target: list it in ``OBJECTIVE_PARAMETERS``; none is);
- same-region retrieval on the encoder's held-out regions: SimSiam above PCA of the pixels
  and above both (TUF, R, PSEP) baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Share of a block's queries that must find distinct nearest frames (500 of 1,000).
DISTINCT_SHARE_MIN = 0.5
#: The most the 5 most frequent nearest frames may take of a block's queries.
TOP5_SHARE_MAX = 0.10
#: SimSiam Pearson (query vs match) each parameter must reach.
PEARSON_MIN = {"tuf": 0.90, "r": 0.85, "psep": 0.50, "grad": 0.85}
#: Parameters given to the encoder's training objective (they do not count for their own
#: target). The encoder is trained on images alone.
OBJECTIVE_PARAMETERS: tuple[str, ...] = ()
#: Same-region retrieval on held-out regions: SimSiam must beat each of these.
SAME_REGION_ABOVE = ("pca", "euclidean", "mahalanobis")


def retrieval_rows(retrieval: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (seed block, target): ``block``, ``target``, ``value``, ``threshold``,
    ``met`` (None for a target that does not count), from a report's ``retrieval.json``."""
    rows: list[dict[str, Any]] = []
    for block in retrieval["blocks"].values():
        first, last = block["seeds"]
        label = f"{first}..{last}"
        hub = block["hubness"]["simsiam"]
        n = int(hub["n_queries"])
        base = block["hubness"].get("mahalanobis", {})
        need = DISTINCT_SHARE_MIN * n
        rows.append(_row(label, "distinct nearest frames", hub["distinct_nearest"], need, ">="))
        rows[-1]["baseline"] = base.get("distinct_nearest")
        rows.append(_row(label, "top-5 share", hub["top5_share"], TOP5_SHARE_MAX, "<="))
        rows[-1]["baseline"] = base.get("top5_share")
        corr = {(r["method"], r["parameter"]): r for r in block["correlations"]}
        for name, threshold in PEARSON_MIN.items():
            simsiam = corr.get(("simsiam", name), {})
            row = _row(label, f"Pearson {name.upper()}", simsiam.get("pearson"), threshold, ">=")
            row["spearman"] = simsiam.get("spearman")
            row["baseline"] = corr.get(("mahalanobis", name), {}).get("pearson")
            if name in OBJECTIVE_PARAMETERS:
                row["met"] = None  # given to the objective: reported, not counted
            rows.append(row)
    held = retrieval.get("same_region_held_out") or {}
    for other in SAME_REGION_ABOVE:
        target = f"same-region SimSiam > {other}"
        rows.append(_row("held-out regions", target, held.get("simsiam"), held.get(other), ">"))
    return rows


def _row(block: str, target: str, value, threshold, op: str) -> dict[str, Any]:
    ok = value is not None and threshold is not None and value == value  # not NaN
    if ok:
        ok = {">=": value >= threshold, "<=": value <= threshold, ">": value > threshold}[op]
    return {
        "block": block,
        "target": target,
        "value": value,
        "op": op,
        "threshold": threshold,
        "met": bool(ok),
    }


def retrieval_misses(retrieval: dict[str, Any]) -> list[str]:
    """One line per missed target (empty when all are met)."""
    return [
        f"{r['block']}: {r['target']} = {_fmt(r['value'])}, target {r['op']} {_fmt(r['threshold'])}"
        for r in retrieval_rows(retrieval)
        if r["met"] is False
    ]


def retrieval_table(retrieval: dict[str, Any]) -> str:
    """The targets as a markdown table: block, target, SimSiam's value (Spearman beside a
    Pearson), the (TUF, R, PSEP) Mahalanobis baseline's Pearson, the threshold, met."""
    lines = [
        "| seeds | target | SimSiam (Spearman) | physics baseline | threshold | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in retrieval_rows(retrieval):
        met = {True: "yes", False: "**no**", None: "not counted"}[r["met"]]
        value = _fmt(r["value"])
        if "spearman" in r:
            value += f" ({_fmt(r['spearman'])})"
        lines.append(
            f"| {r['block']} | {r['target']} | {value} | {_fmt(r.get('baseline'))} | "
            f"{r['op']} {_fmt(r['threshold'])} | {met} |"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None or value != value:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "report", type=Path, help="evaluation.json (bench_evaluation.py) or retrieval.json"
    )
    args = parser.parse_args()
    data = json.loads(args.report.read_text())
    retrieval = data.get("retrieval", data)
    print(retrieval_table(retrieval))
    misses = retrieval_misses(retrieval)
    for miss in misses:
        print(f"retrieval target missed: {miss}", file=sys.stderr)
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
