"""The summaries of pipeline runs (what each stage did and how long it took), stored under
``pipeline/runs/`` in the store, and their picture (seconds per stage, one panel per run).

The ``pipeline`` flow (:mod:`sharpseek.pipeline.flows`) saves one per run; the demo
(``sharpseek demo``) reads the last two back and draws them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from sharpseek.config import Settings
from sharpseek.data.store import open_store

#: Where the run summaries lie in the store, one ``<UTC time>.json`` each.
RUNS_PREFIX = "pipeline/runs"


def summarize_run(
    stages: Mapping[str, Mapping[str, Any]], seconds: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One row per stage: name, whether it ran or was reused, seconds, its message."""
    rows = []
    for name, value in stages.items():
        if "mode" in value and "stage" not in value:  # the index flow's outcome
            reused = value["mode"] == "none"
            message = f"index {value['mode']}: {value.get('points_after', 0)} points live"
        elif "rows" in value:
            reused, message = True, f"{len(value['rows'])} dataset versions listed"
        else:
            reused, message = bool(value.get("skipped")), str(value.get("message", ""))
        took = seconds.get(name)
        rows.append(
            {
                "stage": name,
                "ran": not reused,
                "seconds": round(float(took), 2) if _is_time(took) else None,
                "message": message,
            }
        )
    return rows


def _is_time(value: Any) -> bool:
    """Whether a stage's seconds were recorded (a finite number; None or NaN: not)."""
    return value is not None and math.isfinite(float(value))


def save_run_summary(settings: Settings, rows: list[dict[str, Any]]) -> str:
    """Store a pipeline run's summary under ``pipeline/runs/<UTC time>.json``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{RUNS_PREFIX}/{stamp}.json"
    open_store(settings).put_bytes(key, json.dumps(rows, indent=2).encode())
    return key


def run_summaries(settings: Settings, last: int = 2) -> list[list[dict[str, Any]]]:
    """The ``last`` stored pipeline run summaries, oldest first."""
    store = open_store(settings)
    keys = sorted(i.key for i in store.list(f"{RUNS_PREFIX}/") if i.key.endswith(".json"))
    return [json.loads(store.get_bytes(k)) for k in keys[-last:]]


def runs_figure(runs: Sequence[Sequence[Mapping[str, Any]]], path: Path, *, labels=None) -> Path:
    """Horizontal bars of each stage's seconds, one panel per run (ran: orange, reused:
    grey), with the run's total: what a first and a second pipeline run cost."""
    matplotlib.use("Agg")

    if not runs:
        raise ValueError("no pipeline runs to draw")
    labels = labels or [f"run {i + 1}" for i in range(len(runs))]
    fig, axes = plt.subplots(
        1, len(runs), figsize=(5.2 * len(runs), 0.45 * max(len(r) for r in runs) + 1.6),
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, run, label in zip(axes[0], runs, labels, strict=True):
        names = [r["stage"] for r in run][::-1]
        # a stage without a recorded time gets no bar and says so, and counts for no time
        timed = [_is_time(r.get("seconds")) for r in run][::-1]
        secs = [
            max(float(r["seconds"]), 0.0) if t else 0.0
            for r, t in zip(run[::-1], timed, strict=True)
        ]
        colours = ["tab:orange" if r["ran"] else "tab:grey" for r in run][::-1]
        ax.barh(names, secs, color=colours)
        for y, (s, t) in enumerate(zip(secs, timed, strict=True)):
            ax.text(s, y, f" {s:.0f} s" if t else " time not recorded", va="center", fontsize=8)
        ax.set_xlabel("seconds")
        ax.set_title(f"{label}: {sum(secs) / 60:.1f} min in the stages")
        ax.set_xlim(0, max(secs) * 1.25 + 1)

    axes[0][-1].legend(
        handles=[Patch(color="tab:orange", label="ran"), Patch(color="tab:grey", label="reused")],
        loc="lower right",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
