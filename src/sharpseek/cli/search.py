"""``sharpseek search``: real SHARPs like a query (a generated AR, an image or an indexed
record), narrowed by filters, through :class:`sharpseek.search.searcher.Searcher`; a table
or JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    HoldOpt,
    HomeOpt,
    PresetOpt,
    ShiftOpt,
    dataset_name,
    parse_shifts,
    settings_from,
)
from sharpseek.cli.index_access import (
    console,
    dataset_of,
    error_text,
    fail,
    user_errors,
)

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).


def _filter(
    ranges: list[str],
    start: str | None,
    end: str | None,
    harps: list[int],
    noaa: list[int],
    hemisphere: str | None,
    latitude: str | None,
    mu: str | None,
    flares: dict[str, str | None] | None = None,
):
    from sharpseek.search.index import SearchFilter
    from sharpseek.search.index.filters import parse_bounds

    flares = flares or {}
    within = flares.get("within")
    if within and not (flares.get("history") or flares.get("outcome")):
        raise ValueError("--within applies to --history or --outcome; give one of them")
    window = within or "24h"
    parsed = {}
    for item in ranges:
        if "=" not in item:
            raise ValueError(f"--range {item!r}: write field=low:high, e.g. tuf=2e5:")
        name, bounds = item.split("=", 1)
        parsed[name.strip()] = parse_bounds(bounds, f"--range {name.strip()}")
    spec = SearchFilter(
        ranges=parsed,
        time=(start, end) if (start or end) else None,
        harpnums=harps or None,
        noaa=noaa or None,
        hemisphere=hemisphere,
        latitude=parse_bounds(latitude, "--lat") if latitude else None,
        mu=parse_bounds(mu, "--mu") if mu else None,
        history=(flares["history"], window) if flares.get("history") else None,
        outcome=(flares["outcome"], window) if flares.get("outcome") else None,
        quiet=(flares["quiet"], flares["quiet_class"]) if flares.get("quiet") else None,
    )
    return None if spec.is_empty() else spec


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def search_cmd(
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="query: generated AR")] = None,
    shift: ShiftOpt = None,
    hold: HoldOpt = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="query: FITS, .npy (gauss) or sharpseek PNG")
    ] = None,
    units: Annotated[
        str, typer.Option("--units", help="of a .npy query: gauss (default) or model")
    ] = "gauss",
    record: Annotated[
        str | None, typer.Option("--record", help="query: an indexed record id")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="regions (or frames) returned")] = 10,
    per_region: Annotated[
        int, typer.Option("--per-region", min=1, help="best frames per region")
    ] = 1,
    frames: Annotated[
        bool, typer.Option("--frames", help="no grouping: the k nearest frames")
    ] = False,
    ranges: Annotated[
        list[str], typer.Option("--range", help="field=low:high, e.g. tuf=2e5: or psep_mm=10:40")
    ] = [],  # noqa: B006
    start: Annotated[str | None, typer.Option("--start", help="T_REC from (TAI)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="T_REC until (TAI)")] = None,
    harp: Annotated[list[int], typer.Option("--harp", help="only these HARPNUMs")] = [],  # noqa: B006
    noaa: Annotated[list[int], typer.Option("--noaa", help="only these NOAA ARs")] = [],  # noqa: B006
    hemisphere: Annotated[str | None, typer.Option("--hemisphere", help="north or south")] = None,
    lat: Annotated[str | None, typer.Option("--lat", help="LAT_FWT low:high [deg]")] = None,
    mu: Annotated[str | None, typer.Option("--mu", help="mu low:high")] = None,
    history: Annotated[
        str | None,
        typer.Option("--history", help="a flare of this class or above before T_REC, e.g. M+"),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option("--outcome", help="a flare of this class or above after T_REC, e.g. M+"),
    ] = None,
    within: Annotated[
        str | None,
        typer.Option("--within", help="window of --history / --outcome, e.g. 24h (default)"),
    ] = None,
    quiet: Annotated[
        str | None,
        typer.Option(
            "--quiet", help="no flare >= settings.flares.quiet_class (C) within this, e.g. 48h"
        ),
    ] = None,
    outlook: Annotated[
        bool,
        typer.Option(
            "--outlook",
            help="also the look-alike flare outlook: how often the k nearest regions flared next",
        ),
    ] = False,
    outlook_k: Annotated[
        int | None,
        typer.Option("--outlook-k", min=1, help="regions of the outlook (settings.flares)"),
    ] = None,
    outlook_class: Annotated[
        str | None,
        typer.Option("--outlook-class", help="class counted by the outlook, e.g. M (default)"),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="simsiam (the index), or euclidean / mahalanobis in (TUF, R, PSEP)"
        ),
    ] = "simsiam",
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", help="for the baselines: the dataset searched", callback=dataset_name
        ),
    ] = "synthetic",
    save_query_png: Annotated[
        Path | None, typer.Option("--save-query-png", help="write the query as a sharpseek PNG")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Search real SHARPs like a query (a generated AR, an image or an indexed record),
    narrowed by filters sent in the same request; one best frame per region by default."""
    from sharpseek.data.images import ImageInputError
    from sharpseek.search.results import results_to_json
    from sharpseek.search.searcher import Searcher

    settings = settings_from(preset, home)
    given = [x is not None for x in (seed, image, record)]
    if sum(given) != 1:
        raise fail("give exactly one query: --seed, --image or --record")
    if (shift or hold) and seed is None:
        raise fail("--shift and --hold apply to a --seed query")
    if method not in ("simsiam", "euclidean", "mahalanobis"):
        raise fail(f"--method {method!r}: choose simsiam, euclidean or mahalanobis")
    if units not in ("gauss", "model"):
        raise fail(f"--units {units!r}: choose gauss or model")
    try:
        flare_spec = {
            "history": history,
            "outcome": outcome,
            "within": within,
            "quiet": quiet,
            "quiet_class": settings.flares.quiet_class,
        }
        spec = _filter(ranges, start, end, harp, noaa, hemisphere, lat, mu, flare_spec)
        shifts = parse_shifts(shift)
        with Searcher(settings) as searcher:
            query = _query(searcher, seed, shifts, hold or [], image, units, record)
            if save_query_png is not None:
                _save_query(query, save_query_png)
            frame = _nearest(
                searcher, settings, query, method, dataset, k, spec, per_region, frames
            )
            # which backend and model versions made the query (none for a stored record)
            models = searcher.versions() if query.kind != "record" else None
            look = (
                searcher.outlook(query, k=outlook_k, threshold=outlook_class)
                if outlook or outlook_k or outlook_class
                else None
            )
    except (*user_errors(), ImageInputError) as err:
        raise fail(error_text(err)) from None
    if as_json:
        payload = results_to_json(frame) | {"models": models}
        if look is not None:
            payload["outlook"] = look.to_json()
        typer.echo(json.dumps(payload, indent=1, default=str))
        return
    _print_results(frame, look, method)
    if save_query_png is not None and not frame.empty:
        console.print(f"query image: {save_query_png}")


def _query(searcher, seed, shifts, hold, image, units, record):
    """The search query: the AR of ``seed`` (shifted, holding ``hold``), the ``image`` file
    (in ``units``) or the indexed ``record``."""
    if seed is not None:
        return searcher.latent_query(seed, shifts=shifts, hold=hold)
    if image is not None:
        return searcher.image_query(image, units=units)
    return searcher.record_query(record)


def _save_query(query, path: Path) -> None:
    """Write the query's image (model space) as a sharpseek PNG; a record has none at hand."""
    from sharpseek.data.images import export_png

    if query.image is None:
        raise ValueError("a record query has no image at hand to save")
    export_png(
        query.image,
        path,
        description=query.description,
        generated=query.kind == "latent",
    )


def _nearest(searcher, settings, query, method, dataset, k, spec, per_region, frames):
    """The results frame: the index's nearest (``method`` simsiam, grouped by region unless
    ``frames``) or a baseline metric over ``dataset``'s manifest."""
    if method == "simsiam":
        return searcher.search(
            query, k=k, filter=spec, per_region=per_region, group_by_region=not frames
        )
    table = dataset_of(settings, dataset, None).manifest
    return searcher.baseline_search(
        query, table, metric=method, k=k, filter=spec, per_region=per_region
    )


def _print_results(frame, look, method: str) -> None:
    """The query line, the outlook, and the table of matches (query against match values of
    the baseline parameters, the match's native-grid summary)."""
    from sharpseek.physics.definitions import BASELINE_PARAMETERS, CARD_NATIVE_PARAMETERS
    from sharpseek.ui.exports import has_native, summary

    q = frame.attrs["query"]
    console.print(
        f"query: {escape(q['description'])} ({q['kind']}; encoder {q.get('encoder_version')})"
        + (f"; method {method}" if method != "simsiam" else "")
    )
    if look is not None:
        console.print(f"outlook: {escape(look.text())}\n  {escape(look.caveat)}")
    if frame.empty:
        console.print("no frame matches the filter")
        return
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("record (NOAA, mu, JSOC)", overflow="fold", ratio=3)
    table.add_column("distance", justify="right")
    for name in BASELINE_PARAMETERS:
        table.add_column(f"{name.upper()} (model)\nquery\nmatch", justify="right")
    table.add_column("match on its native CEA grid", overflow="fold", ratio=2)
    for _, row in frame.iterrows():
        noaa_text = ",".join(map(str, row["noaa_ars"])) or "—"
        where = row["jsoc_url"] or "synthetic record"
        native = {n: row[f"match_{n}"] for n in CARD_NATIVE_PARAMETERS}
        flares = f"\nflares: {row['flares']}" if row.get("flares") else ""
        table.add_row(
            str(row["rank"]),
            f"{row['record_id']}\nNOAA {noaa_text}, mu {_cell(row['mu'])}\n{where}{flares}",
            f"{row['distance']:.3f}",
            *[
                f"{_cell(row[f'query_{n}'])}\n{_cell(row[f'match_{n}'])}"
                for n in BASELINE_PARAMETERS
            ],
            summary({**native, "r_jsoc_segment": row["match_r_jsoc_segment"]})
            if has_native(native)
            else "—",
        )
    console.print(table)
