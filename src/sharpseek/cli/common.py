"""What every `sharpseek` sub-command shares: the common options and the settings they
build. One definition here, so `--preset` and `--home` mean the same in every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sharpseek.cli.errors import remember_home
from sharpseek.config import PresetName, Settings, get_settings

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

__all__ = [
    "PresetOpt",
    "HomeOpt",
    "ProgressOpt",
    "DatasetOpt",
    "dataset_name",
    "DatasetVersionOpt",
    "ShiftOpt",
    "AlongOpt",
    "HoldOpt",
    "parse_shifts",
    "settings_from",
]

PresetOpt = Annotated[
    PresetName | None, typer.Option("--preset", help="tiny (CPU, tests, demo) or paper (GPU nodes)")
]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="data home (default: SHARPSEEK_HOME or ./.sharpseek)")
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars")]


def dataset_name(name: str | None) -> str | None:
    """typer callback: a dataset name checked by :func:`sharpseek.data.dataset.check_dataset_name`
    (a bad one exits 2 with the rule)."""
    from sharpseek.data.dataset import check_dataset_name

    try:
        return None if name is None else check_dataset_name(name)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


DatasetOpt = Annotated[str, typer.Option("--dataset", help="dataset name", callback=dataset_name)]
DatasetVersionOpt = Annotated[
    str | None, typer.Option("--dataset-version", help="dataset version (default: the latest)")
]

#: A shift along a physical direction, the same option in every command that takes one
#: (``sharpseek search --seed``, ``sharpseek shift``).
ShiftOpt = Annotated[
    list[str] | None,
    typer.Option("--shift", help="PARAMETER=EPS along its direction, e.g. tuf=1.5; repeatable"),
]
#: ``--along``: the old name of ``--shift`` in ``sharpseek shift``, kept for one release.
AlongOpt = Annotated[
    list[str] | None,
    typer.Option("--along", help="deprecated: the old name of --shift (removed after 0.1)"),
]
HoldOpt = Annotated[
    list[str] | None,
    typer.Option("--hold", help="with --shift: keep this parameter fixed; repeatable"),
]


def parse_shifts(shift: list[str] | None, along: list[str] | None = None) -> dict[str, float]:
    """``--shift PARAMETER=EPS`` items (and deprecated ``--along`` ones) as {parameter: eps}.

    ``--along`` prints a deprecation warning on stderr and is read as ``--shift``.

    Raises
    ------
    ValueError
        An item that is not PARAMETER=EPS with EPS a number, naming the option and the item.
    """
    items = [("--shift", item) for item in shift or []]
    if along:
        typer.echo(
            "warning: --along is deprecated and will be removed after sharpseek 0.1; "
            "use --shift (the same PARAMETER=EPS)",
            err=True,
        )
        items += [("--along", item) for item in along]
    from sharpseek.science.directions import check_eps

    out: dict[str, float] = {}
    for option, item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            eps = float(value)
        except ValueError:
            raise ValueError(f"{option} {item!r}: write PARAMETER=EPS, e.g. tuf=1.5") from None
        try:
            out[name.strip().lower()] = check_eps(name.strip().lower(), eps)
        except ValueError as err:
            raise ValueError(f"{option} {item!r}: {err}") from None
    return out


def settings_from(preset: str | None, home: Path | None) -> Settings:
    """The settings (environment + preset) with the command line's --preset and --home."""
    overrides: dict[str, Any] = {}
    if preset is not None:
        overrides["preset"] = preset
    if home is not None:
        overrides["home"] = home
    settings = get_settings(**overrides)
    remember_home(settings.home)  # where an internal error's traceback is logged
    return settings
