"""sharpseek's Prefect flows: thin orchestration of :mod:`sharpseek.pipeline.stages` calls.

Every task calls one library function and reports what it returned (a log line a person
reads, and Prefect artifacts: tables, sample grids). What is up to date is decided by the
library (fingerprints of input versions and hashes, in the store), not here.

Flows (deployments in ``flows/prefect.yaml``, entrypoints ``sharpseek.pipeline.flows.<flow>``;
docs/pipeline.md). Prefect is an optional extra (``pip install 'sharpseek[flows]'``): only this
module imports it, and the library imports this module only where a flow runs.

``ingest_synthetic_flow``, ``ingest_fits_flow``, ``ingest_jsoc_flow``
    data in (synthetic, local FITS, JSOC incremental / near-real-time); synthetic regions,
    FITS files and the files downloaded from JSOC are cut into shards (preprocessing +
    physics) mapped over workers, then committed once by the dataset writer
``dataset_versions_flow``
    the table of dataset versions and content digests
``train_gan_flow``, ``train_encoder_flow``, ``fit_directions_flow``
    models and their physical directions
``index_flow``
    embed the frames the index lacks (shards mapped over workers), then write them:
    a new collection for a new encoder, the missing frames otherwise
``archives_flow``, ``evaluate_flow``
    TorchServe model archives; the quality report
``flares_flow``
    a newer flare table (``settings.flares.source``, path or URL) as a catalogue version,
    then the index's flare payloads
``ingest_and_reindex_flow``
    the hourly job: definitive records after the newest held, near-real-time ones for
    recent days, then the index update, then the flares
``pipeline``
    all of it in order, skipping what is up to date
"""

from __future__ import annotations

import base64
import os
import socket
import time
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import ThreadPoolTaskRunner

from sharpseek.config import Settings, get_settings
from sharpseek.data.ingest import ingest_shard
from sharpseek.data.store import open_store
from sharpseek.pipeline import flare_steps, index_plans, ingest_plans
from sharpseek.pipeline import ledger as pipeline_ledger
from sharpseek.pipeline import stages as lib
from sharpseek.pipeline.flare_direction_stage import flare_direction_stage
from sharpseek.pipeline.run_summaries import save_run_summary, summarize_run


def settings_for(home: str | None = None, preset: str | None = None, **extra: Any) -> Settings:
    """The settings of a flow run: environment (SHARPSEEK_*) plus the run's parameters."""
    overrides: dict[str, Any] = dict(extra)
    if home:
        overrides["home"] = home
    if preset:
        overrides["preset"] = preset
    return get_settings(**overrides)


def _delays(settings: Settings) -> list[float]:
    first = settings.flows.retry_delay_seconds
    return [first * 2**i for i in range(max(settings.flows.retries, 1))]


def _report(outcome: pipeline_ledger.StageOutcome) -> dict[str, Any]:
    get_run_logger().info(outcome.message)
    return outcome.as_dict()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]


def _image_markdown(settings: Settings, key: str | None, title: str) -> str:
    """Markdown showing a PNG of the store inline (small ones) or naming where it is."""
    if not key:
        return ""

    store = open_store(settings)
    if not store.exists(key):
        return f"*{title}: {key} not found*"
    data = store.get_bytes(key)
    if len(data) > 600_000:
        return f"**{title}**: `{store.url(key)}`"
    encoded = base64.b64encode(data).decode()
    return f"**{title}** (`{key}`)\n\n![{title}](data:image/png;base64,{encoded})"


# ----------------------------------------------------------------------------------------------
# tasks: one library call each
# ----------------------------------------------------------------------------------------------
@task(name="plan ingest", cache_policy=NO_CACHE)
def plan_ingest_task(
    settings: Settings, source: str, paths: list[str] | None = None, dataset: str = "sharp"
) -> ingest_plans.IngestPlan:
    if source == "synthetic":
        plan = ingest_plans.plan_ingest_synthetic(settings)
    else:
        plan = ingest_plans.plan_ingest_fits(settings, paths or [], dataset=dataset)
    _log_plan(plan)
    return plan


@task(name="download JSOC", cache_policy=NO_CACHE)
def download_jsoc_task(settings: Settings, **kwargs: Any) -> ingest_plans.IngestPlan:
    """Ask JSOC, download the Br files and plan them into shards (staged in the store).
    JSOC is the flaky part of the world: this task retries (``settings.flows.retries``,
    with doubling delays) on top of the library's own per-request retries."""
    plan = ingest_plans.plan_ingest_jsoc(settings, **kwargs)
    _log_plan(plan)
    return plan


def _log_plan(plan: ingest_plans.IngestPlan) -> None:
    if plan.done is None:
        get_run_logger().info(
            "%s: %d files or regions in %d shards, %d refused before any shard",
            plan.stage, sum(len(s) for s in plan.shards), len(plan.shards), len(plan.leading),
        )  # fmt: skip


@task(name="ingest shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def ingest_shard_task(settings: Settings, shard) -> dict[str, Any]:
    """One shard's preprocessing + physics on one worker (retried: a worker or the store may
    fail transiently; a shard already made is reused)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"  # which worker made it (the flow reports)
    return {**ingest_shard(settings, shard), "worker": worker}


@task(name="commit ingest", cache_policy=NO_CACHE)
def commit_ingest_task(settings: Settings, plan: ingest_plans.IngestPlan) -> dict[str, Any]:
    outcome = ingest_plans.commit_ingest(settings, plan)
    for source, reason, _ in outcome.outputs.get("quarantined", []) if not outcome.skipped else []:
        get_run_logger().warning("quarantined %s: %s", source, reason)
    return _report(outcome)


def _make_shards(settings: Settings, shards: list) -> dict[str, Any]:
    """Map ingest shards over this flow's task runner; what was made, and on which workers."""
    futures = ingest_shard_task.map(unmapped(settings), shards) if shards else []
    done = [f.result() for f in futures]  # raises if a shard failed: nothing is committed
    made = {
        "n": len(done),
        "reused": sum(d["cached"] for d in done),
        "records": sum(d["records"] for d in done),
        "workers": sorted({d["worker"] for d in done}),
    }
    get_run_logger().info(
        "%d ingest shards made on %d worker(s) (%d reused): %d records",
        made["n"], len(made["workers"]), made["reused"], made["records"],
    )  # fmt: skip
    return made


def _ingest(settings: Settings, plan: ingest_plans.IngestPlan) -> dict[str, Any]:
    """Map the plan's shards over this flow's task runner, then commit once."""
    if plan.done is not None:
        return _report(plan.done)
    shards = _make_shards(settings, plan.shards)
    return {**commit_ingest_task(settings, plan), "shards": shards}


@task(name="dataset versions", cache_policy=NO_CACHE)
def dataset_versions_task(settings: Settings) -> list[dict[str, Any]]:
    rows = ingest_plans.dataset_versions_table(settings)
    create_table_artifact(
        rows, key="dataset-versions", description="Dataset versions (latest with its digest)"
    )
    get_run_logger().info("%d dataset versions", len(rows))
    return rows


@task(name="train", cache_policy=NO_CACHE)
def train_task(
    settings: Settings, kind: str, dataset: str | None, epochs: int | None
) -> dict[str, Any]:
    logger = get_run_logger()

    def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
        shown = {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
        logger.info("%s epoch %d: %s", kind, epoch, shown)

    outcome = lib.train_stage(
        settings, kind, dataset=dataset, epochs=epochs, progress=True, on_epoch_end=on_epoch_end
    )
    if not outcome.skipped and outcome.outputs.get("history"):
        create_table_artifact(
            outcome.outputs["history"],
            key=f"train-{kind}-{_slug(outcome.outputs['run'])}",
            description=f"{kind} {outcome.outputs['run']}: one row per epoch",
        )
        grid = _image_markdown(settings, outcome.outputs.get("samples"), "GAN samples")
        if grid:
            create_markdown_artifact(grid, key=f"samples-{_slug(outcome.outputs['run'])}")
    return _report(outcome)


@task(name="fit directions", cache_policy=NO_CACHE)
def directions_task(settings: Settings) -> dict[str, Any]:
    outcome = lib.directions_stage(settings, progress=False)
    if not outcome.skipped:
        accuracy = outcome.outputs["accuracy"]
        rows = [{"parameter": k, "held-out accuracy": v} for k, v in accuracy.items()]
        create_table_artifact(rows, key="directions", description="SVM boundaries per parameter")
    return _report(outcome)


@task(name="flare direction", cache_policy=NO_CACHE)
def flare_direction_task(settings: Settings) -> dict[str, Any]:
    """The flare-productive direction (classifier on the indexed frames' outcomes); skipped
    with its one-line reason when the index has no flare outcomes to learn from."""
    try:
        return _report(flare_direction_stage(settings, progress=False))
    except ValueError as err:
        get_run_logger().warning("flare direction not fitted: %s", err)
        return _report(
            pipeline_ledger.StageOutcome("flare-direction", True, "", {}, f"not fitted: {err}")
        )


@task(name="query map", cache_policy=NO_CACHE)
def query_map_task(settings: Settings) -> dict[str, Any]:
    """The generated-query map of the GAN and encoder (the hubness cure), fitted once."""
    return _report(lib.query_map_stage(settings))


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(settings: Settings) -> dict[str, Any]:
    outcome = lib.evaluate_stage(settings)
    rows = [
        {"model": section, "measure": k, "value": v}
        for section, values in outcome.outputs.get("report", {}).items()
        for k, v in values.items()
        if isinstance(v, int | float | str)
    ]
    create_table_artifact(rows, key="evaluation", description="Model quality on held-out HARPs")
    return _report(outcome)


@task(name="model archives", cache_policy=NO_CACHE)
def archives_task(settings: Settings) -> dict[str, Any]:
    return _report(lib.archives_stage(settings))


@task(name="plan index", cache_policy=NO_CACHE)
def plan_index_task(settings: Settings, datasets: list[str] | None) -> index_plans.IndexPlan:
    plan = index_plans.plan_index(settings, datasets=datasets)
    get_run_logger().info(
        "index plan: %s, %d frames in %d shards for encoder %s (live: %s, %d points)",
        plan.mode,
        plan.n_frames,
        len(plan.shards),
        plan.encoder_version,
        plan.live_before,
        plan.points_before,
    )
    return plan


@task(name="embed shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def embed_shard_task(
    settings: Settings, shard: index_plans.Shard, encoder_key: str
) -> dict[str, Any]:
    """One shard on one worker (retried: a worker or the store may fail transiently)."""
    return index_plans.embed_shard(settings, shard, encoder_key)


@task(name="write index", cache_policy=NO_CACHE)
def write_index_task(settings: Settings, plan: index_plans.IndexPlan) -> dict[str, Any]:
    outcome = index_plans.apply_index_plan(settings, plan)
    get_run_logger().info(outcome.message)
    create_table_artifact(
        [
            {"dataset": name, "frames added": n}
            for name, n in (outcome.per_dataset or {"-": 0}).items()
        ]
        + [{"dataset": "points in the live collection", "frames added": outcome.points_after}],
        key="index-update",
        description=f"index {outcome.mode}: live {outcome.live_after}",
    )
    return outcome.as_dict()


# ----------------------------------------------------------------------------------------------
# flows
# ----------------------------------------------------------------------------------------------
@flow(name="ingest-synthetic", log_prints=True)
def ingest_synthetic_flow(home: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """The synthetic dataset of the preset's recipe (reused when it exists): shards of whole
    regions mapped over this flow's task runner (:func:`run_ingest_synthetic_flow` picks it
    from the settings), then one commit."""
    settings = settings_for(home, preset)
    return _ingest(settings, plan_ingest_task(settings, "synthetic"))


@flow(name="ingest-fits")
def ingest_fits_flow(
    paths: list[str], dataset: str = "sharp", home: str | None = None, preset: str | None = None
) -> dict[str, Any]:
    """SHARP Br FITS files (or folders); skipped when exactly these files are in already.
    Shards of files mapped over this flow's task runner (:func:`run_ingest_fits_flow`)."""
    settings = settings_for(home, preset)
    return _ingest(settings, plan_ingest_task(settings, "fits", paths, dataset))


def run_ingest_synthetic_flow(settings: Settings, **params: Any) -> dict[str, Any]:
    """Run :func:`ingest_synthetic_flow` on the task runner the settings name."""
    return ingest_synthetic_flow.with_options(task_runner=task_runner_for(settings))(**params)


def run_ingest_fits_flow(settings: Settings, paths: list[str], **params: Any) -> dict[str, Any]:
    """Run :func:`ingest_fits_flow` on the task runner the settings name."""
    return ingest_fits_flow.with_options(task_runner=task_runner_for(settings))(paths, **params)


@flow(name="ingest-jsoc")
def ingest_jsoc_flow(
    start: str | None = None,
    end: str | None = None,
    harpnums: list[int] | None = None,
    nrt: bool = False,
    incremental: bool = True,
    dataset: str = "sharp",
    home: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """JSOC records after the newest held per HARP (plus new HARPs with start/harpnums):
    one retried download task, the files' shards mapped over this flow's task runner
    (:func:`run_ingest_jsoc_flow` picks it from the settings), one commit."""
    settings = settings_for(home, preset)
    download = download_jsoc_task.with_options(
        retries=settings.flows.retries, retry_delay_seconds=_delays(settings)
    )
    plan = download(
        settings, start=start, end=end, harpnums=harpnums, nrt=nrt, incremental=incremental,
        dataset=dataset,
    )  # fmt: skip
    return _ingest(settings, plan)


def run_ingest_jsoc_flow(settings: Settings, **params: Any) -> dict[str, Any]:
    """Run :func:`ingest_jsoc_flow` on the task runner the settings name."""
    return ingest_jsoc_flow.with_options(task_runner=task_runner_for(settings))(**params)


@flow(name="dataset-versions")
def dataset_versions_flow(home: str | None = None, preset: str | None = None) -> list[dict]:
    """Publish the table of dataset versions (records, regions, content digest)."""
    return dataset_versions_task(settings_for(home, preset))


@flow(name="train-gan")
def train_gan_flow(
    epochs: int | None = None,
    dataset: str | None = None,
    home: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip when up to date) the GAN run ``settings.models.gan``."""
    return train_task(settings_for(home, preset), "gan", dataset, epochs)


@flow(name="train-encoder")
def train_encoder_flow(
    epochs: int | None = None,
    dataset: str | None = None,
    home: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip when up to date) the encoder run ``settings.models.encoder``."""
    return train_task(settings_for(home, preset), "encoder", dataset, epochs)


@flow(name="fit-directions")
def fit_directions_flow(home: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """Physical directions (SVM boundaries + calibration) of the settings' GAN version."""
    return directions_task(settings_for(home, preset))


@flow(name="evaluate")
def evaluate_flow(home: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """The quality report of the settings' GAN and encoder."""
    return evaluate_task(settings_for(home, preset))


@flow(name="model-archives")
def archives_flow(home: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """TorchServe archives of the settings' model versions, published to the store."""
    return archives_task(settings_for(home, preset))


def _prefect_api_url() -> str | None:
    """The API this run reports to (a server's, or the ephemeral one this process started)."""
    context = FlowRunContext.get()
    if context is not None and context.client is not None:
        return str(context.client.api_url)
    return PREFECT_API_URL.value() or None


def local_dask_cluster(**kwargs: Any):
    """A Dask LocalCluster whose workers report their task runs to this run's Prefect API
    (otherwise each worker would start an ephemeral Prefect server of its own)."""
    from distributed import LocalCluster  # dask: an extra only the dask task runner needs

    env = dict(kwargs.pop("env", None) or {})
    url = _prefect_api_url()
    if url:
        env.setdefault("PREFECT_API_URL", url)
    return LocalCluster(env=env, **kwargs)


def task_runner_for(settings: Settings):
    """The runner of sharded work: threads in-process, or a Dask cluster (a LocalCluster of
    ``settings.flows.dask_workers`` single-threaded process workers, or ``dask_address``)."""
    if settings.flows.task_runner == "dask":
        from prefect_dask import DaskTaskRunner  # dask: only the dask task runner needs it

        if settings.flows.dask_address:
            return DaskTaskRunner(address=settings.flows.dask_address)
        return DaskTaskRunner(
            cluster_class=local_dask_cluster,
            cluster_kwargs={
                "n_workers": settings.flows.dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",  # any free port: never clash with another cluster
            },
        )
    # one shard per core: each embeds on one torch thread of its own (embed_shard; torch
    # sets a thread count per calling thread, so the flow's own thread keeps its count)
    return ThreadPoolTaskRunner(max_workers=max(1, os.cpu_count() or 1))


def _index(settings: Settings, datasets: list[str] | None) -> dict[str, Any]:
    plan = plan_index_task(settings, datasets)
    if plan.mode == "none":
        return {"mode": "none", "points_after": plan.points_before, "live_after": plan.live_before}
    futures = embed_shard_task.map(unmapped(settings), plan.shards, unmapped(plan.encoder_key))
    done = futures.result()  # raises if a shard failed: the live index is untouched
    cached = sum(d["cached"] for d in done)
    get_run_logger().info("%d shards embedded (%d reused from the store)", len(done), cached)
    return write_index_task(settings, plan)


@flow(name="index")
def index_flow(
    datasets: list[str] | None = None, home: str | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Bring the search index up to date with the latest datasets and the settings' encoder.

    Sharded embedding runs on this flow's task runner (``settings.flows.task_runner``): call
    :func:`run_index_flow` to pick it from the settings."""
    return _index(settings_for(home, preset), datasets)


def run_index_flow(settings: Settings, datasets: list[str] | None = None, **params: Any):
    """Run :func:`index_flow` on the task runner the settings name."""
    return index_flow.with_options(task_runner=task_runner_for(settings))(
        datasets=datasets, **params
    )


@task(name="flares", cache_policy=NO_CACHE)
def flares_task(settings: Settings, source: str | None = None) -> dict[str, Any]:
    """A newer flare table from ``settings.flares.source`` (path or URL) becomes a catalogue
    version; the live index's real frames get their flare history and outcome."""
    return _report(flare_steps.flares_stage(settings, source))


@flow(name="flares")
def flares_flow(
    source: str | None = None, home: str | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Load the flare table (``source`` or ``settings.flares.source``) when it changed, then
    update the index's flare payloads."""
    return flares_task(settings_for(home, preset), source)


@flow(name="ingest-and-reindex")
def ingest_and_reindex_flow(
    harpnums: list[int] | None = None,
    start: str | None = None,
    end: str | None = None,
    nrt: bool = True,
    dataset: str = "sharp",
    home: str | None = None,
    preset: str | None = None,
    flares: bool = True,
) -> dict[str, Any]:
    """The scheduled job: new definitive SHARPs after the newest held, near-real-time ones of
    the last ``settings.flows.nrt_lookback_days`` (definitive records replace them as they
    appear), then the live index takes exactly the new frames; with ``flares``, a newer flare
    table at ``settings.flares.source`` becomes a catalogue version and the index's flare
    payloads follow. If JSOC fails (after the
    retries), the run fails before the index is touched."""
    settings = settings_for(home, preset)
    common = {"end": end, "harpnums": harpnums, "dataset": dataset, "home": home, "preset": preset}
    out: dict[str, Any] = {
        "definitive": run_ingest_jsoc_flow(settings, start=start, nrt=False, **common)
    }
    if nrt:
        out["nrt"] = run_ingest_jsoc_flow(settings, nrt=True, **common)
    out["index"] = run_index_flow(settings, [dataset], home=home, preset=preset)
    if flares:
        out["flares"] = flares_task(settings)
    return out


@flow(name="pipeline")
def pipeline(
    home: str | None = None,
    preset: str | None = None,
    samples: bool = True,
    gan_epochs: int | None = None,
    encoder_epochs: int | None = None,
    directions: bool = True,
    evaluate: bool = True,
    archives: bool = True,
    flares: bool = True,
) -> dict[str, Any]:
    """Everything in order, each stage skipped when its inputs have not changed: synthetic
    data (+ the real samples in ``settings.samples_dir``), dataset versions, GAN, encoder,
    directions, index, flares (the flare table at ``settings.flares.source``, when there),
    the flare direction, model archives, evaluation."""
    settings = settings_for(home, preset)
    logger = get_run_logger()
    logger.info("pipeline on %s (preset %s)", settings.home, settings.preset)
    stages: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    def stage(name: str, call, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        stages[name] = call(*args, **kwargs)
        seconds[name] = time.perf_counter() - started

    stage("ingest-synthetic", run_ingest_synthetic_flow, settings, home=home, preset=preset)
    if samples and settings.real_sample_paths:
        paths = [str(p) for p in settings.real_sample_paths]
        stage("ingest-fits", run_ingest_fits_flow, settings, paths, home=home, preset=preset)
    elif samples:
        logger.info("no real samples in %s: synthetic data only", settings.samples_dir)
    stage("dataset-versions", lambda s: {"rows": dataset_versions_task(s)}, settings)
    stage("train-gan", train_task, settings, "gan", None, gan_epochs)
    stage("train-encoder", train_task, settings, "encoder", None, encoder_epochs)
    if directions:
        stage("directions", directions_task, settings)
    stage("index", run_index_flow, settings, home=home, preset=preset)
    stage("query-map", query_map_task, settings)
    if flares:
        stage("flares", flares_task, settings)
    if flares and directions:  # before the archives: TorchServe serves the whole set
        stage("flare-direction", flare_direction_task, settings)
    if archives:
        stage("archives", archives_task, settings)
    if evaluate:
        stage("evaluate", evaluate_task, settings)
    summary = summarize_run(stages, seconds)
    save_run_summary(settings, summary)
    create_table_artifact(summary, key="pipeline-summary", description="What each stage did")
    return stages


#: The hourly schedule of ingest-and-reindex (also in prefect.yaml).
HOURLY = timedelta(hours=1)
