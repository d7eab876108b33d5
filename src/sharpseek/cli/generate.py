"""``sharpseek generate``: a catalogue of distinct generated ARs meeting parameter ranges,
placed on the Sun, exported as FITS and CSV.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    settings_from,
)
from sharpseek.cli.served import (
    console,
    err_console,
    fail,
    key_error_text,
    served,
)

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).


def generate_cmd(
    count: Annotated[int, typer.Option("--count", min=1, help="number of distinct ARs")],
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="range, e.g. 'tilt<-10' or 'tuf>p90', repeatable"),
    ] = None,
    lat: Annotated[
        list[float] | None,
        typer.Option("--lat", help="latitude [deg]: one for all ARs, or one per AR"),
    ] = None,
    lon: Annotated[
        list[float] | None,
        typer.Option("--lon", help="Stonyhurst longitude [deg]: one for all, or one per AR"),
    ] = None,
    pixel_mm: Annotated[
        float | None, typer.Option("--pixel-mm", help="Mm per model pixel (default: settings)")
    ] = None,
    aspect: Annotated[
        float,
        typer.Option(
            "--aspect",
            help="width/height the exported ARs are stretched to (a generated AR has none; "
            "HARPs: 2.1 at the median); a tilt in --where is then the exported AR's",
        ),
    ] = 1.0,
    hemisphere: Annotated[
        str | None, typer.Option("--hemisphere", help="north or south: sets the sign of --lat")
    ] = None,
    cycle: Annotated[
        int | None, typer.Option("--cycle", min=1, help="solar cycle (Hale's law)")
    ] = None,
    anti_joy: Annotated[bool, typer.Option("--anti-joy", help="tilt against Joy's law")] = False,
    anti_hale: Annotated[
        bool, typer.Option("--anti-hale", help="leading polarity against Hale's law")
    ] = False,
    balance: Annotated[bool, typer.Option("--balance", help="make the net flux zero")] = False,
    nearest: Annotated[
        int, typer.Option("--nearest", min=0, help="nearest real SHARPs per AR (index; 0: none)")
    ] = 3,
    seed: Annotated[int, typer.Option(help="seed of the candidates")] = 0,
    out: Annotated[
        Path, typer.Option("--out", help="FITS path; the CSV gets the same name .csv")
    ] = Path("catalogue.fits"),
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Generate K distinct ARs meeting ranges on their parameters, placed on the Sun, and
    export them as FITS (one image HDU per AR in gauss, CEA WCS) and CSV."""
    from sharpseek.science.catalogue_export import write_csv, write_fits
    from sharpseek.science.catalogue_placement import Range

    settings = settings_from(preset, home)
    cfg = settings.directions
    try:
        ranges = [Range.parse(w) for w in where or []]
    except ValueError as err:
        raise fail(str(err)) from None
    placements = _placements(
        count,
        cfg,
        lats=lat or [15.0],
        lons=lon or [0.0],
        hemisphere=hemisphere,
        pixel_mm=pixel_mm,
        cycle=cycle,
        aspect=aspect,
    )
    catalogue = _make(
        settings,
        count,
        placements,
        ranges,
        anti_joy=anti_joy,
        anti_hale=anti_hale,
        balance=balance,
        seed=seed,
        nearest=nearest,
        progress=progress,
    )
    for note in catalogue.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fits_path = write_fits(catalogue, out)
    csv_path = write_csv(catalogue, out.with_suffix(".csv"))
    _print_catalogue(catalogue)
    png = out.with_suffix(".png")
    _catalogue_png(catalogue, png)
    console.print(f"FITS: {fits_path}\nCSV: {csv_path}\npicture: {png}")


def _make(
    settings,
    count: int,
    placements: list,
    ranges: list,
    *,
    anti_joy: bool,
    anti_hale: bool,
    balance: bool,
    seed: int,
    nearest: int,
    progress: bool,
):
    """The catalogue of ``count`` ARs from the served GAN (:func:`make_catalogue` with the
    settings' limits, ``nearest`` real SHARPs per AR from the index); a one-line exit 2 for
    what the library refuses."""
    from sharpseek.science.catalogue import make_catalogue
    from sharpseek.search.searcher import nearest_sharps

    cfg = settings.directions
    backend, directions = served(settings)
    try:
        with backend, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            catalogue = make_catalogue(
                backend.images,
                directions,
                count,
                placements,
                ranges=ranges,
                anti_joy=anti_joy,
                anti_hale=anti_hale,
                balance=balance,
                seed=seed,
                max_candidates=cfg.max_candidates,
                duplicate_correlation=cfg.duplicate_correlation,
                progress=progress,
                nearest=nearest_sharps(nearest, settings=settings) if nearest else None,
            )
    except KeyError as err:
        raise fail(key_error_text(err)) from None
    except ValueError as err:  # CatalogueError included
        raise fail(str(err)) from None
    return catalogue


def _placements(
    count: int,
    cfg,
    *,
    lats: list[float],
    lons: list[float],
    hemisphere: str | None,
    pixel_mm: float | None,
    cycle: int | None,
    aspect: float,
) -> list:
    """One Placement per AR from the options (``lats``/``lons``: one for all or one per AR,
    latitudes in deg signed by ``hemisphere``; unset options from ``cfg``, the settings'
    directions section); a one-line exit 2 for options that do not fit."""
    from sharpseek.science.catalogue_placement import CatalogueError, Placement

    for name, values in (("--lat", lats), ("--lon", lons)):
        if len(values) not in (1, count):
            raise fail(f"{name}: give one value or {count} (one per AR), got {len(values)}")
    if hemisphere is not None:
        if hemisphere.lower() not in ("north", "south"):
            raise fail(f"--hemisphere {hemisphere!r}: choose north or south")
        sign = 1.0 if hemisphere.lower() == "north" else -1.0
        lats = [sign * abs(v) for v in lats]
    try:
        return [
            Placement(
                lat=lats[i if len(lats) > 1 else 0],
                lon=lons[i if len(lons) > 1 else 0],
                pixel_mm=pixel_mm if pixel_mm is not None else cfg.pixel_mm,
                cycle=cycle if cycle is not None else cfg.cycle,
                date_obs=cfg.date_obs,
                aspect=aspect,
            )
            for i in range(count)
        ]
    except CatalogueError as err:
        raise fail(str(err)) from None


def _print_catalogue(catalogue) -> None:
    """The table of the catalogue's ARs: place, TUF, PSEP, tilt, Joy and Hale."""
    table = Table(title=f"{len(catalogue)} ARs from {catalogue.candidates} candidates")
    for column in ("AR", "lat", "lon", "TUF [Mx]", "PSEP [Mm]", "tilt [deg]", "Joy", "Hale"):
        table.add_column(column)
    for i, e in enumerate(catalogue.entries, start=1):
        q = e.quantities
        table.add_row(
            f"AR{i:04d}",
            f"{e.placement.lat:+.1f}",
            f"{e.placement.lon:+.1f}",
            f"{q['tuf'].value:.3g}",
            f"{q['psep'].value:.3g}",
            f"{q['tilt'].value:+.1f}",
            _flag(q["joy"].value),
            _flag(q["hale"].value),
        )
    console.print(table)


def _catalogue_png(catalogue, png: Path) -> None:
    """The first 24 ARs of the catalogue (gauss / 1000) as one PNG grid."""
    from sharpseek.science.plotting import magnetogram_grid

    shown = catalogue.entries[:24]
    magnetogram_grid(
        np.stack([e.image_gauss / 1000.0 for e in shown]),
        png,
        titles=[
            f"AR{i:04d} tilt {e.quantities['tilt'].value:+.0f}" for i, e in enumerate(shown, 1)
        ],
        vmax_gauss=1000.0,
    )


def _flag(value: float) -> str:
    return "-" if not np.isfinite(value) else "yes" if value > 0.5 else "no"
