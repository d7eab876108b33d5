"""``sharpseek index ...``, ``sharpseek search`` and ``sharpseek evaluate retrieval``: thin
shells over :mod:`sharpseek.search.index`, :mod:`sharpseek.search.searcher` and
:mod:`sharpseek.search.evaluate_retrieval` with
:mod:`sharpseek.search.retrieval_report` (parse, check, one call, report).

Register in ``cli/app.py``::

    from sharpseek.cli.index import register
    register(app, evaluate_app)

Every error a user can cause ends in one line and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sharpseek.cli.common import (
    DatasetOpt,
    DatasetVersionOpt,
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    settings_from,
)
from sharpseek.cli.index_access import (
    console,
    dataset_of,
    error_text,
    fail,
    open_index,
    user_errors,
)
from sharpseek.cli.search import search_cmd
from sharpseek.cli.train import _seed_blocks

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

index_app = typer.Typer(
    help="The vector index of SimSiam embeddings (embedded folder or Qdrant server).",
    no_args_is_help=True,
)


# ---------------------------------------------------------------------------------------------
# sharpseek index ...


@index_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every collection of the index: encoder version, embedding spaces, complete, points,
    live."""
    settings = settings_from(preset, home)
    with open_index(settings) as index:
        status = index.status()
    if as_json:
        typer.echo(json.dumps(status, indent=1, default=str))
        return
    where = settings.index_dir if settings.index.backend == "embedded" else settings.index.url
    table = Table(title=f"index {status['alias']!r} ({status['backend']}: {where})")
    columns = ("collection", "encoder", "spaces", "points", "complete", "live", "datasets")
    for col in (*columns, "created"):
        table.add_column(col, overflow="fold")  # long names wrap in a narrow terminal, whole
    for c in status["collections"]:
        table.add_row(
            c["collection"],
            c["encoder_version"],
            ", ".join(c.get("spaces", ("region",))),
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

    settings = settings_from(preset, home)
    started = time.perf_counter()
    try:
        plan = plan_index(
            settings, datasets=[dataset], versions=_pinned(dataset, dataset_version),
            mode="reindex",
        )  # fmt: skip
        outcome = run_index_plan(settings, plan, drop_previous=drop_previous, progress=progress)
    except (*user_errors(), RuntimeError) as err:
        raise fail(error_text(err)) from None
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

    settings = settings_from(preset, home)
    try:
        plan = plan_index(
            settings, datasets=[dataset], versions=_pinned(dataset, dataset_version),
            mode="update",
        )  # fmt: skip
        outcome = run_index_plan(settings, plan, progress=progress)
    except (*user_errors(), RuntimeError) as err:
        raise fail(error_text(err)) from None
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
    settings = settings_from(preset, home)
    try:
        with open_index(settings) as index:
            info = index.switch(encoder_version)
    except user_errors() as err:
        raise fail(error_text(err)) from None
    console.print(f"[green]live:[/] {info.name}")


@index_app.command("drop")
def drop_cmd(
    encoder_version: Annotated[str, typer.Argument(help="encoder version of the collection")],
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Delete the collection of an encoder version (the live one is refused)."""
    settings = settings_from(preset, home)
    try:
        with open_index(settings) as index:
            index.drop(encoder_version)
    except user_errors() as err:
        raise fail(error_text(err)) from None
    console.print(f"dropped the collection of {encoder_version}")


@index_app.command("optimize")
def optimize_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """Embedded: merge segments and build the HNSW graph of the live collection (minutes for
    100k+ points); also speeds up filtered exact searches. A server optimizes by itself."""
    settings = settings_from(preset, home)
    with open_index(settings) as index:
        if index.live() is None:
            raise fail("nothing is live yet: `sharpseek index build` first")
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

    settings = settings_from(preset, home)
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
    except user_errors() as err:
        raise fail(error_text(err)) from None
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
    from sharpseek.search.evaluate_retrieval import METHOD_LABELS, evaluate_retrieval_blocks
    from sharpseek.search.picture import PictureRerank
    from sharpseek.search.retrieval_report import write_report
    from sharpseek.search.searcher import Searcher

    blocks = _seed_blocks(seed_blocks)
    settings = settings_from(preset, home)
    target = out or settings.home / "reports" / "retrieval"
    try:
        ds = dataset_of(settings, dataset, dataset_version)
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
                space=searcher.query_space(generated=True),
                rerank=PictureRerank.from_settings(settings),
            )
        report = write_report(results, ds, target)
    except user_errors() as err:
        raise fail(error_text(err)) from None
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
            + "".join(
                f"; in the {k.removeprefix('simsiam_')} space {v:.3f}"
                for k, v in held.items()
                if k.startswith("simsiam_")
            )
        )
    console.print(f"report: {report}")


def register(app: typer.Typer, evaluate_app: typer.Typer) -> None:
    """Add ``index``, ``search`` and ``evaluate retrieval`` to the ``sharpseek`` app."""
    app.add_typer(index_app, name="index")
    app.command("search")(search_cmd)
    evaluate_app.command("retrieval")(evaluate_retrieval_cmd)
