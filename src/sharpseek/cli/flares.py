"""``sharpseek flares ...``: the GOES flare catalogue beside the index (docs/flares.md).

A thin shell over :mod:`sharpseek.data.flares` and the flare steps of
:mod:`sharpseek.pipeline.stages`.
Every error a user can cause ends in one line and exit code 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import HomeOpt, PresetOpt, settings_from

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

flares_app = typer.Typer(
    help="GOES flares: history and outcome beside every real SHARP (docs/flares.md).",
    no_args_is_help=True,
)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=2)


def _user_errors() -> tuple[type[BaseException], ...]:
    from sharpseek.data.object_store import StoreError

    return (ValueError, KeyError, FileNotFoundError, StoreError, OSError)


@flares_app.command("load")
def load_cmd(
    file: Annotated[str, typer.Argument(help="flare table: the shared CSV or an SWPC event list")],
    harps: Annotated[
        str | None, typer.Option("--harps", help="HARP table (default settings.flares.harps)")
    ] = None,
    list_unmatched: Annotated[
        bool, typer.Option("--list-unmatched", help="print every unmatched row")
    ] = False,
    index: Annotated[
        bool, typer.Option("--index/--no-index", help="then update the live index's payloads")
    ] = True,
    as_json: JsonOpt = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Load a flare table as a new catalogue version (when its content changed), match its
    flares to HARPs, then give the live index's real frames their history and outcome."""
    from sharpseek.pipeline.flare_steps import load_flares
    from sharpseek.pipeline.index_plans import update_flare_payloads

    settings = settings_from(preset, home)
    if not file.startswith(("http://", "https://")) and not Path(file).is_file():
        raise _fail(f"flare table {file} does not exist")
    try:
        loaded = load_flares(settings, file, harps=harps)
        payloads = update_flare_payloads(settings) if index else None
    except _user_errors() as err:
        raise _fail(str(err.args[0]) if isinstance(err, KeyError) else str(err)) from None
    catalogue = loaded.catalogue
    unmatched = catalogue.unmatched
    if as_json:
        rows = [
            {
                "row": int(r.row),
                "start_utc": str(r.start_utc),
                "class": r.goes_class,
                "noaa": int(r.noaa),
                "reported_harpnum": int(r.sharp),
                "reason": r.reason,
            }
            for r in unmatched.itertuples()
        ]
        out = {
            "version": catalogue.version,
            "created": loaded.created,
            "coverage_tai": catalogue.info.get("coverage_tai"),
            "counts": loaded.counts,
            "payloads": payloads,
            "unmatched": rows,
        }
        typer.echo(json.dumps(out, indent=1, default=str))
        return
    verb = "new version" if loaded.created else "unchanged: the latest version holds this content"
    counts = loaded.counts
    console.print(f"flare catalogue {catalogue.version} ({verb})")
    console.print(
        f"{counts['flares']} flares: {counts['by_harpnum']} matched by HARPNUM, "
        f"{counts['by_noaa']} by NOAA number, {counts['unmatched']} unmatched "
        f"(HARP table: {counts['harps']} HARPs); covers "
        + " .. ".join(catalogue.info["coverage_tai"])
        + " TAI"
    )
    if len(unmatched):
        reasons = unmatched["reason"].str.replace(r"NOAA \d+", "NOAA n", regex=True)
        for reason, n in reasons.value_counts().items():
            console.print(f"  unmatched: {n} x {reason}")
        shown = unmatched if list_unmatched else unmatched.head(10)
        table = Table("row", "start (UTC)", "class", "NOAA", "reason")
        for r in shown.itertuples():
            table.add_row(str(r.row), str(r.start_utc), r.goes_class, str(r.noaa), r.reason)
        console.print(table)
        if not list_unmatched and len(unmatched) > len(shown):
            console.print(f"  ... {len(unmatched) - len(shown)} more (--list-unmatched)")
    if payloads is not None:
        console.print(
            f"index: {payloads['written']} of {payloads['frames']} real frames' flare payloads "
            f"written ({payloads['known']} with a known outcome)"
        )


@flares_app.command("synthetic")
def synthetic_cmd(
    out: Annotated[
        Path | None, typer.Option("--out", help="also write flares.csv and harps.csv here")
    ] = None,
    as_json: JsonOpt = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Draw the synthetic regions' ground-truth flares (docs/synthetic.md: a Poisson process
    whose rate follows R, power-law classes; deterministic from the synthetic seed), store
    them as the synthetic catalogue and give the index's synthetic frames their flares."""
    from sharpseek.pipeline.flare_steps import load_synthetic_flares
    from sharpseek.pipeline.index_plans import update_flare_payloads

    settings = settings_from(preset, home)
    try:
        loaded = load_synthetic_flares(settings, out=out)
        if loaded is None:
            raise ValueError("no synthetic dataset: run `sharpseek ingest synthetic` first")
        payloads = update_flare_payloads(settings)
    except _user_errors() as err:
        raise _fail(str(err.args[0]) if isinstance(err, KeyError) else str(err)) from None
    catalogue = loaded.catalogue
    classes = catalogue.matched["goes_class"].str[0].value_counts().to_dict()
    if as_json:
        out_json = {
            "version": catalogue.version,
            "created": loaded.created,
            "counts": loaded.counts,
            "classes": classes,
            "payloads": payloads,
        }
        typer.echo(json.dumps(out_json, indent=1, default=str))
        return
    console.print(
        f"synthetic flare catalogue {catalogue.version} "
        f"({'new version' if loaded.created else 'unchanged'}): {loaded.counts['flares']} "
        f"flares ({', '.join(f'{n} {c}' for c, n in sorted(classes.items()))}) on "
        f"{loaded.counts['harps']} HARPs; index: {payloads['synthetic']['written']} synthetic "
        "frames' payloads written"
    )
    if out is not None:
        console.print(f"files: {out / 'flares.csv'}, {out / 'harps.csv'}")


def evaluate_outlook_cmd(
    kind: Annotated[
        str, typer.Option("--kind", help="frames evaluated: synthetic (the demo) or real")
    ] = "synthetic",
    k: Annotated[
        list[int], typer.Option("--k", help="k values to choose from (on the training queries)")
    ] = [5, 10, 20, 40, 80],  # noqa: B006
    max_queries: Annotated[
        int, typer.Option("--queries", min=20, help="queries per split at most (seeded subset)")
    ] = 2000,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=100)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="write the JSON here")] = None,
    figure: Annotated[
        Path | None, typer.Option("--figure", help="write the reliability diagram here (PNG)")
    ] = None,
    as_json: JsonOpt = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Skill of the look-alike flare outlook (docs/outlook.md): chronological split and
    held-out regions; TSS and Brier score against climatology and a threshold rule on R,
    with bootstrap 95 % intervals over regions."""
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.evaluate_outlook import evaluate_outlook, outlook_frames, plot_reliability

    settings = settings_from(preset, home)
    if kind not in ("synthetic", "real"):
        raise _fail(f"--kind {kind!r}: choose synthetic or real")
    flares = settings.flares
    try:
        with open_settings_index(settings) as index:
            table, vectors = outlook_frames(index, kind=kind, hours=flares.outlook_hours)
        result = evaluate_outlook(
            table,
            vectors,
            ks=sorted(set(k)),
            threshold=flares.outlook_class,
            hours=flares.outlook_hours,
            max_queries=max_queries,
            n_boot=bootstrap,
            seed=seed,
        )
    except _user_errors() as err:
        raise _fail(str(err.args[0]) if isinstance(err, KeyError) else str(err)) from None
    result = {"kind": kind} | result
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        plot_reliability(result, figure)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    console.print(
        f"{kind} frames: {result['frames']} ({result['regions']} regions), "
        f"{result['known']} with a known outcome, {result['events']} with a flare >= "
        f"{result['threshold']} within {result['hours']} h"
    )
    if kind == "synthetic":
        console.print(
            "the synthetic flares follow R by construction: a check of the plumbing, not a result"
        )
    for split in ("chronological", "held_out"):
        s = result[split]
        table_out = Table(
            "method", "TSS [95 %]", "Brier [95 %]",
            title=f"{split.replace('_', ' ')}: k={s['k']}, {s['test_queries']} test queries of "
            f"{s['test_regions']} regions, base rate {s['test_base_rate']:.3f}",
        )  # fmt: skip
        for name, m in s["methods"].items():
            table_out.add_row(
                name,
                f"{m['tss']:.3f} [{m['tss_ci'][0]:.3f}, {m['tss_ci'][1]:.3f}]",
                f"{m['brier']:.3f} [{m['brier_ci'][0]:.3f}, {m['brier_ci'][1]:.3f}]",
            )
        console.print(table_out)


def _record_flares(settings, record_ids: list[str], version: str | None) -> list[dict[str, Any]]:
    from sharpseek.data.flare_windows import configured_windows, parse_record_id, window_text
    from sharpseek.data.flares import load_flare_catalogue
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.flare_steps import frame_flares

    parsed = [parse_record_id(r) for r in record_ids]
    harps = [p[1] for p in parsed]
    t_recs = [p[2] for p in parsed]
    summary = frame_flares(settings, harps, t_recs, version=version)
    catalogue = load_flare_catalogue(open_store(settings), summary["flare_catalogue"].iloc[0])
    windows = configured_windows(settings.flares)
    out = []
    for i, rid in enumerate(record_ids):
        row = summary.iloc[i].to_dict()
        entry: dict[str, Any] = {
            "record_id": rid,
            "harpnum": harps[i],
            "t_rec_tai": str(t_recs[i]),
            "catalogue": row["flare_catalogue"],
            "windows": {},
        }
        for window in windows:
            name = window.name
            start, end = (t_recs[i] + o for o in window.offsets())
            entry["windows"][name] = {
                "kind": window.kind,
                "from_tai": str(start),
                "until_tai": str(end),
                "status": row[f"{name}_status"],
                "largest": row[f"{name}_max_class"],
                "peak_flux_w_m2": row[f"{name}_max_flux"],
                "count_c_or_above": row[f"{name}_c"],
                "count_m_or_above": row[f"{name}_m"],
                "unknown_because": row[f"{name}_reason"] or None,
                "text": window_text(row, window),
            }
        lo = min(t_recs[i] + w.offsets()[0] for w in windows)
        hi = max(t_recs[i] + w.offsets()[1] for w in windows)
        near = catalogue.matched[
            (catalogue.matched["harpnum"] == harps[i])
            & (catalogue.matched["start_tai"] >= lo)
            & (catalogue.matched["start_tai"] < hi)
        ]
        entry["flares"] = [
            {
                "start_utc": str(f.start_utc),
                "start_tai": str(f.start_tai),
                "class": f.goes_class,
                "noaa": int(f.noaa),
                "matched_by": f.matched_by,
            }
            for f in near.itertuples()
        ]
        out.append(entry)
    return out


@flares_app.command("show")
def show_cmd(
    record_ids: Annotated[
        list[str], typer.Argument(help="record ids series:HARPNUM:YYYYMMDD_HHMMSS_TAI")
    ],
    version: Annotated[
        str | None, typer.Option("--version", help="catalogue version (default: the latest)")
    ] = None,
    as_json: JsonOpt = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Each record's flare history and outcome (outcomes happened after the observation:
    labels, never features of it)."""
    settings = settings_from(preset, home)
    try:
        records = _record_flares(settings, record_ids, version)
    except _user_errors() as err:
        raise _fail(str(err)) from None
    if as_json:
        typer.echo(json.dumps({"records": records}, indent=1, default=str))
        return
    for entry in records:
        console.print(f"[bold]{escape(entry['record_id'])}[/] (catalogue {entry['catalogue']})")
        for name, window in entry["windows"].items():
            why = f" ({window['unknown_because']})" if window["unknown_because"] else ""
            console.print(
                f"  {name:12s} [{window['from_tai']}, {window['until_tai']}) TAI: "
                f"{escape(window['text'])}{escape(why)}"
            )
        for flare in entry["flares"]:
            console.print(f"    {flare['class']:6s} started {flare['start_utc']} UTC")


@flares_app.command("plot")
def plot_cmd(
    record_id: Annotated[str, typer.Argument(help="record id series:HARPNUM:T_REC")],
    out: Annotated[Path | None, typer.Option("--out", help="PNG (default <home>/figures)")] = None,
    days: Annotated[float, typer.Option("--days", min=0.5, help="days shown either side")] = 3.0,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """A timeline of the record's HARP: its flares (peak class) and the frame's windows."""
    from sharpseek.data.flare_windows import configured_windows, parse_record_id
    from sharpseek.data.flares import load_flare_catalogue
    from sharpseek.data.store import open_store
    from sharpseek.science.plotting import flare_timeline_figure

    settings = settings_from(preset, home)
    try:
        _, harpnum, t_rec = parse_record_id(record_id)
        catalogue = load_flare_catalogue(open_store(settings))
        path = out or settings.figures_dir / f"flares-{harpnum}-{str(t_rec).replace(':', '')}.png"
        flare_timeline_figure(
            catalogue, harpnum, t_rec, configured_windows(settings.flares), path, days=days
        )
    except _user_errors() as err:
        raise _fail(str(err)) from None
    console.print(f"timeline: {path}")


def register(app: typer.Typer) -> None:
    """Add ``flares`` to the ``sharpseek`` app."""
    app.add_typer(flares_app, name="flares")
