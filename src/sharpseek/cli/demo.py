"""``sharpseek demo``: the whole pipeline on the embedded default, then the UI.

A thin shell: :func:`sharpseek.pipeline.runs.run_pipeline_flow` runs the Prefect ``pipeline``
flow in this process (Prefect's ephemeral API, no server); this module prints what each
stage did and starts ``sharpseek ui`` when that command exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.config import Settings

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).


def _stage_row(name: str, value: dict[str, Any]) -> tuple[str, str, str]:
    if "mode" in value and "stage" not in value:  # the index flow's outcome
        skipped = value["mode"] == "none"
        message = (
            f"up to date ({value.get('points_after', 0)} points)"
            if skipped
            else f"{value['mode']}: {value.get('added', 0)} frames added, "
            f"{value.get('points_after', 0)} points live"
        )
        return name, "reused" if skipped else "ran", message
    return name, "reused" if value.get("skipped") else "ran", str(value.get("message", ""))


def stages_table(stages: dict[str, dict[str, Any]], seconds: float) -> Table:
    table = Table(title=f"pipeline ({seconds:.0f} s)")
    table.add_column("stage")
    table.add_column("")
    table.add_column("what it did", overflow="fold")
    for name, value in stages.items():
        table.add_row(*[escape(c) for c in _stage_row(name, value)])
    return table


def has_ui_command(app) -> bool:
    """Whether the ``sharpseek`` app has a ``ui`` command (issue 9's Streamlit app)."""
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    groups = [g.name for g in app.registered_groups]
    return "ui" in commands or "ui" in groups


def run_demo(
    app,
    settings: Settings,
    *,
    ui: bool,
    samples: bool,
    console: Console,
    pictures: Callable[[], None] | None = None,
) -> int:
    """Run the pipeline, print its stages, draw the dataset pictures (``pictures``), then
    serve the UI (unless ``ui`` is False).

    Returns the exit status of the UI process (0 when none was started).
    """
    from sharpseek.pipeline.runs import run_pipeline_flow

    console.rule("sharpseek demo: the pipeline on the embedded default (Prefect, no server)")
    console.print(
        f"home {settings.home.resolve()}, preset {settings.preset}; real samples: "
        f"{len(settings.real_sample_paths) if samples else 0} in {settings.samples_dir}"
    )
    started = time.perf_counter()
    stages = run_pipeline_flow(settings, samples=samples)
    console.print(stages_table(stages, time.perf_counter() - started))
    console.print(f"[green]pipeline done[/] in {time.perf_counter() - started:.0f} s")
    from sharpseek.pipeline.run_summaries import run_summaries, runs_figure

    runs = run_summaries(settings, last=2)
    figure = runs_figure(
        runs,
        settings.figures_dir / "pipeline-runs.png",
        labels=["previous run", "this run"][-len(runs) :],
    )
    console.print(f"stage timings: {figure}")
    if pictures is not None:
        pictures()
    if not ui:
        return 0
    if not has_ui_command(app):
        console.print("[yellow]the UI (`sharpseek ui`) is not installed in this version[/]")
        return 0
    console.rule("sharpseek ui (Ctrl-C stops it)")
    env = dict(os.environ, SHARPSEEK_HOME=str(settings.home), SHARPSEEK_PRESET=settings.preset)
    try:
        return subprocess.call([sys.executable, "-m", "sharpseek.cli.app", "ui"], env=env)
    except KeyboardInterrupt:
        return 0
