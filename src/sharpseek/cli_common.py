"""What every `sharpseek` sub-command shares: the common options and the settings they
build. One definition here, so `--preset` and `--home` mean the same in every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sharpseek.config import PresetName, Settings, get_settings

__all__ = [
    "PresetOpt",
    "HomeOpt",
    "ProgressOpt",
    "DatasetOpt",
    "DatasetVersionOpt",
    "settings_from",
]

PresetOpt = Annotated[
    PresetName | None, typer.Option("--preset", help="tiny (CPU, tests, demo) or paper (GPU nodes)")
]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="data home (default: SHARPSEEK_HOME or ./.sharpseek)")
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="dataset name")]
DatasetVersionOpt = Annotated[
    str | None, typer.Option("--dataset-version", help="dataset version (default: the latest)")
]


def settings_from(preset: str | None, home: Path | None) -> Settings:
    """The settings (environment + preset) with the command line's --preset and --home."""
    overrides: dict[str, Any] = {}
    if preset is not None:
        overrides["preset"] = preset
    if home is not None:
        overrides["home"] = home
    return get_settings(**overrides)
