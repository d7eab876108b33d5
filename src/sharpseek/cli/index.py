"""``sharpseek index ...``, ``sharpseek search`` and ``sharpseek evaluate retrieval``: thin
shells over :mod:`sharpseek.search.index`, :mod:`sharpseek.search.searcher` and
:mod:`sharpseek.search.evaluate_retrieval` (parse, check, one call, report).

Register in ``cli/app.py``::

    from sharpseek.cli.index import register
    register(app, evaluate_app)

Every error a user can cause ends in one line and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    DatasetOpt,
    DatasetVersionOpt,
    HoldOpt,
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    ShiftOpt,
    dataset_name,
    parse_shifts,
    settings_from,
)
from sharpseek.cli.train import _seed_blocks

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

index_app = typer.Typer(
    help="The vector index of SimSiam embeddings (embedded folder or Qdrant server).",
    no_args_is_help=True,
)
console = Console()


_settings = settings_from


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=2)


def _user_errors() -> tuple[type[BaseException], ...]:
    from sharpseek.data.object_store import StoreError
    from sharpseek.search.index import EmptyIndexError
    from sharpseek.serving.backends import BackendError

    return (
        ValueError, KeyError, LookupError, FileNotFoundError, EmptyIndexError, StoreError,
        BackendError,
    )  # fmt: skip


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def _index(settings, dim: int | None = None):
    from sharpseek.search.index import open_index_from_settings

    try:
        return open_index_from_settings(settings, dim=dim)
    except RuntimeError as err:  # e.g. the embedded folder is open in another process
        raise _fail(str(err)) from None


def _dataset(settings, name: str, version: str | None):
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    return load_dataset(open_store(settings), name, version)


# ---------------------------------------------------------------------------------------------
# sharpseek index ...


@index_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every collection of the index: encoder version, complete, points, live."""
    settings = _settings(preset, home)
    with _index(settings) as index:
        status = index.status()
    if as_json:
        typer.echo(json.dumps(status, indent=1, default=str))
        return
    where = settings.index_dir if settings.index.backend == "embedded" else settings.index.url
    table = Table(title=f"index {status['alias']!r} ({status['backend']}: {where})")
    for col in ("collection", "encoder", "points", "complete", "live", "datasets", "created"):
        table.add_column(col)
    for c in status["collections"]:
        table.add_row(
            c["collection"],
            c["encoder_version"],
            str(c["points"]),
            "yes" if c["complete"] else "no",
            "[green]live[/]" if c["live"] else "",
            ", ".join(c["dataset_versions"]),
            c["created"],
        )
    console.print(table)
    if not status["collections"]:
        console.print("nothing indexed yet: `sharpseek index build --dataset <name>`")


@index_app.command("build")
def build_cmd(
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
    drop_previous: Annotated[
        bool, typer.Option("--drop-previous", help="delete the previously live collection")
    ] = False,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Embed a dataset with the configured encoder into a new collection for its version;
    the alias switches to it only when it is complete (rerun resumes an interrupted build)."""
    import time

    from sharpseek.pipeline.index_plans import plan_index, run_index_plan

    settings = _settings(preset, home)
    started = time.perf_counter()
    try:
        plan = plan_index(
            settings, datasets=[dataset], versions=_pinned(dataset, dataset_version),
            mode="reindex",
        )  # fmt: skip
        outcome = run_index_plan(settings, plan, drop_previous=drop_previous, progress=progress)
    except (*_user_errors(), RuntimeError) as err:
        raise _fail(_message(err)) from None
    ref = plan.datasets[0]
    console.print(
        f"[green]live:[/] {outcome.live_after} ({outcome.points_after} points; added "
        f"{outcome.added}, already there {outcome.skipped}) from "
        f"{ref.name}/{ref.version} in {time.perf_counter() - started:.0f} s"
        + (f"; previous {outcome.live_before}" if outcome.live_before else "")
    )


def _pinned(dataset: str, version: str | None) -> dict[str, str] | None:
    return {dataset: version} if version else None


@index_app.command("update")
def update_cmd(
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add the frames of a dataset the live collection lacks (only those are embedded);
    definitive records replace their NRT twins."""
    from sharpseek.pipeline.index_plans import plan_index, run_index_plan

    settings = _settings(preset, home)
    try:
        plan = plan_index(
            settings, datasets=[dataset], versions=_pinned(dataset, dataset_version),
            mode="update",
        )  # fmt: skip
        outcome = run_index_plan(settings, plan, progress=progress)
    except (*_user_errors(), RuntimeError) as err:
        raise _fail(_message(err)) from None
    console.print(
        f"added {outcome.added}, NRT replaced {outcome.replaced}, NRT superseded "
        f"{outcome.superseded}; the live collection holds {outcome.points_after} points"
    )


@index_app.command("switch")
def switch_cmd(
    encoder_version: Annotated[str, typer.Argument(help="encoder version of the collection")],
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make the (complete) collection of an encoder version live: a rollback."""
    settings = _settings(preset, home)
    try:
        with _index(settings) as index:
            info = index.switch(encoder_version)
    except _user_errors() as err:
        raise _fail(_message(err)) from None
    console.print(f"[green]live:[/] {info.name}")


@index_app.command("drop")
def drop_cmd(
    encoder_version: Annotated[str, typer.Argument(help="encoder version of the collection")],
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Delete the collection of an encoder version (the live one is refused)."""
    settings = _settings(preset, home)
    try:
        with _index(settings) as index:
            index.drop(encoder_version)
    except _user_errors() as err:
        raise _fail(_message(err)) from None
    console.print(f"dropped the collection of {encoder_version}")


@index_app.command("optimize")
def optimize_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """Embedded: merge segments and build the HNSW graph of the live collection (minutes for
    100k+ points); also speeds up filtered exact searches. A server optimizes by itself."""
    settings = _settings(preset, home)
    with _index(settings) as index:
        if index.live() is None:
            raise _fail("nothing is live yet: `sharpseek index build` first")
        done = index.optimize()
    console.print("optimized" if done else "nothing to do: the server optimizes by itself")


@index_app.command("recall")
def recall_cmd(
    queries: Annotated[int, typer.Option("--queries", min=1, help="generated queries")] = 100,
    k: Annotated[int, typer.Option("--k", min=1, help="neighbours compared")] = 10,
    hnsw_ef: Annotated[
        int | None, typer.Option("--hnsw-ef", min=1, help="HNSW beam (default: the settings')")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="first seed of the queries")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Recall@k of HNSW search against exact search on the live collection, for generated
    queries (the searches users run), with the configured HNSW setting."""
    import numpy as np

    from sharpseek.search.index import recall_at_k
    from sharpseek.search.searcher import Searcher

    settings = _settings(preset, home)
    ef = hnsw_ef or settings.index.hnsw_ef
    try:
        with Searcher(settings) as searcher:
            backend, index = searcher.backend, searcher.index
            live = index.live()
            if live is None:
                raise ValueError("nothing is live yet: `sharpseek index build` first")
            if live.encoder_version != searcher.encoder_version:
                raise ValueError(
                    f"the live collection holds encoder {live.encoder_version!r}, the "
                    f"configured encoder is {searcher.encoder_version!r}"
                )
            seeds = list(range(seed, seed + queries))
            vectors = backend.embed(backend.generate(seeds=seeds, parameters=False).images)
            points = index.count()
            recall = recall_at_k(index, np.asarray(vectors), k=k, hnsw_ef=ef)
    except _user_errors() as err:
        raise _fail(_message(err)) from None
    kb = points * live.dim * 4 / 1024
    graph = kb >= max(settings.index.indexing_threshold_kb, index.config.full_scan_threshold_kb)
    result = {
        "recall_at_k": recall,
        "k": k,
        "hnsw_ef": ef,
        "hnsw_m": settings.index.hnsw_m,
        "queries": queries,
        "points": points,
        "collection": live.name,
        "searched_with": "HNSW" if points >= settings.index.exact_threshold else "exact",
        "graph_possible": graph,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    console.print(
        f"recall@{k} of HNSW (m={settings.index.hnsw_m}, ef={ef}) against exact: "
        f"[bold]{recall:.3f}[/] over {queries} generated queries on {points} points "
        f"({live.name}); searches use {result['searched_with']} search at this size "
        f"(exact_threshold {settings.index.exact_threshold})"
    )
    if not graph:
        console.print(
            f"note: {points} vectors ({kb:.0f} KB) are below Qdrant's indexing or full-scan "
            f"threshold ({settings.index.indexing_threshold_kb} / "
            f"{index.config.full_scan_threshold_kb} KB): it scans them exactly, so recall "
            "is 1 by construction"
        )


# ---------------------------------------------------------------------------------------------
# sharpseek search


def _range(text: str, what: str) -> tuple[Any, Any]:
    """``low:high`` with either side empty -> (low, high) numbers."""
    if ":" not in text:
        raise ValueError(f"{what} {text!r}: write low:high (either side may be empty)")
    low, high = text.split(":", 1)

    def number(part: str) -> float | None:
        part = part.strip()
        if not part:
            return None
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{what} {text!r}: {part!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{what} {text!r}: bounds must be finite")
        return value

    return number(low), number(high)


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
        parsed[name.strip()] = _range(bounds, f"--range {name.strip()}")
    spec = SearchFilter(
        ranges=parsed,
        time=(start, end) if (start or end) else None,
        harpnums=harps or None,
        noaa=noaa or None,
        hemisphere=hemisphere,
        latitude=_range(latitude, "--lat") if latitude else None,
        mu=_range(mu, "--mu") if mu else None,
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
    from sharpseek.data.images import ImageInputError, export_png
    from sharpseek.physics.parameters import BASELINE_PARAMETERS, CARD_NATIVE_PARAMETERS
    from sharpseek.search.results import results_to_json
    from sharpseek.search.searcher import Searcher
    from sharpseek.ui.exports import has_native, summary

    settings = _settings(preset, home)
    given = [x is not None for x in (seed, image, record)]
    if sum(given) != 1:
        raise _fail("give exactly one query: --seed, --image or --record")
    if (shift or hold) and seed is None:
        raise _fail("--shift and --hold apply to a --seed query")
    if method not in ("simsiam", "euclidean", "mahalanobis"):
        raise _fail(f"--method {method!r}: choose simsiam, euclidean or mahalanobis")
    if units not in ("gauss", "model"):
        raise _fail(f"--units {units!r}: choose gauss or model")
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
            if seed is not None:
                query = searcher.latent_query(seed, shifts=shifts, hold=hold or [])
            elif image is not None:
                query = searcher.image_query(image, units=units)
            else:
                query = searcher.record_query(record)
            if save_query_png is not None:
                if query.image is None:
                    raise ValueError("a record query has no image at hand to save")
                export_png(
                    query.image,
                    save_query_png,
                    description=query.description,
                    generated=query.kind == "latent",
                )
            if method == "simsiam":
                frame = searcher.search(
                    query, k=k, filter=spec, per_region=per_region, group_by_region=not frames
                )
            else:
                table = _dataset(settings, dataset, None).manifest
                frame = searcher.baseline_search(
                    query, table, metric=method, k=k, filter=spec, per_region=per_region
                )
            # which backend and model versions made the query (none for a stored record)
            models = searcher.versions() if query.kind != "record" else None
            look = (
                searcher.outlook(query, k=outlook_k, threshold=outlook_class)
                if outlook or outlook_k or outlook_class
                else None
            )
    except (*_user_errors(), ImageInputError) as err:
        raise _fail(_message(err)) from None
    if as_json:
        payload = results_to_json(frame) | {"models": models}
        if look is not None:
            payload["outlook"] = look.to_json()
        typer.echo(json.dumps(payload, indent=1, default=str))
        return
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
    if save_query_png is not None:
        console.print(f"query image: {save_query_png}")


# ---------------------------------------------------------------------------------------------
# sharpseek evaluate retrieval


def _encoder_holdout(settings, dataset) -> list[int] | None:
    """HARPs the settings' encoder never trained on, among the dataset's: those its checkpoint
    held out when it trained on this dataset, every region of another dataset; None when
    its checkpoint records no split."""
    from sharpseek.data.store import open_store
    from sharpseek.models.checkpoints import load_checkpoint
    from sharpseek.pipeline.stages import model_keys

    ckpt = load_checkpoint(model_keys(settings)["encoder"], store=open_store(settings))
    if (ckpt.get("dataset") or {}).get("name") == dataset.name:
        held = (ckpt.get("splits") or {}).get("holdout_harpnums")
        return None if held is None else [int(h) for h in held]
    return [int(h) for h in dataset.manifest["harpnum"].unique()]


def evaluate_retrieval_cmd(
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
    queries: Annotated[
        int, typer.Option("--queries", min=3, help="generated queries per seed block")
    ] = 1000,
    seed_blocks: Annotated[
        str, typer.Option("--seed-blocks", help="first seeds of the query blocks")
    ] = "0,100000",
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="resamples of each 95 % interval")
    ] = 1000,
    out: Annotated[
        Path | None, typer.Option("--out", help="report folder (default <home>/reports/retrieval)")
    ] = None,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """The paper's retrieval analysis on a dataset, for each seed block: generated queries,
    nearest real frame by SimSiam and by the (TUF, R, PSEP) baselines, correlations with
    bootstrap intervals, hubness (distinct nearest frames, top-5 share, 10-occurrence
    skewness); same-region retrieval over all frames and over the encoder's held-out regions
    beside PCA of the pixels; a markdown report with PNGs beside the paper's numbers."""
    from sharpseek.search.evaluate_retrieval import (
        METHOD_LABELS,
        evaluate_retrieval_blocks,
        write_report,
    )
    from sharpseek.search.searcher import Searcher

    blocks = _seed_blocks(seed_blocks)
    settings = _settings(preset, home)
    target = out or settings.home / "reports" / "retrieval"
    try:
        ds = _dataset(settings, dataset, dataset_version)
        holdout = _encoder_holdout(settings, ds)
        with Searcher(settings) as searcher:
            results = evaluate_retrieval_blocks(
                searcher.backend,
                ds,
                n_queries=queries,
                seed_blocks=blocks,
                holdout_harpnums=holdout,
                progress=progress,
                n_boot=bootstrap,
                query_map=searcher.query_map,
            )
        report = write_report(results, ds, target)
    except _user_errors() as err:
        raise _fail(_message(err)) from None
    for result in results:
        corr = result.correlations
        first = result.meta["seed"]
        table = Table(
            title=f"Pearson (Spearman), {result.meta['data_kind']} data, seeds "
            f"{first}..{first + result.meta['queries'] - 1}"
        )
        table.add_column("method")
        names = list(dict.fromkeys(corr["parameter"]))
        for name in names:
            table.add_column(name.upper(), justify="right")
        table.add_column("distinct", justify="right")
        table.add_column("top-5", justify="right")
        for method, group in corr.groupby("method", sort=False):
            by = group.set_index("parameter")
            hub = result.hubness[method]
            table.add_row(
                METHOD_LABELS[method],
                *[f"{by.loc[n, 'pearson']:.2f} ({by.loc[n, 'spearman']:.2f})" for n in names],
                str(hub["distinct_nearest"]),
                f"{hub['top5_share']:.0%}",
            )
        console.print(table)
    held = results[0].same_region_held_out
    if held:
        console.print(
            f"same-region on {held['regions']} held-out regions: "
            + ", ".join(
                f"{m} {held[m]:.3f}" for m in ("simsiam", "pca", "euclidean", "mahalanobis")
            )
        )
    console.print(f"report: {report}")


def register(app: typer.Typer, evaluate_app: typer.Typer) -> None:
    """Add ``index``, ``search`` and ``evaluate retrieval`` to the ``sharpseek`` app."""
    app.add_typer(index_app, name="index")
    app.command("search")(search_cmd)
    evaluate_app.command("retrieval")(evaluate_retrieval_cmd)
