"""The one road of every ingest: ``plan_ingest_synthetic`` / ``plan_ingest_fits`` /
``plan_ingest_jsoc`` -> shards -> :func:`commit_ingest`.

Work that grows with the archive is cut into shards, each a task a worker runs on its own:
synthetic regions or FITS files, ``settings.flows.ingest_shard_size`` frames a shard, each
turned into records (preprocessing + physics) by :func:`sharpseek.data.ingest.ingest_shard`,
then committed once by the one dataset writer (:func:`commit_ingest`). The CLI runs a plan in
one process (:func:`run_ingest_plan`), the flows map its shards over workers. A shard's result
goes to the store under a key made from its inputs (recipe and regions, files' bytes), so a
rerun (after a crash, or on another worker) reuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from sharpseek.config import Settings
from sharpseek.data import jsoc
from sharpseek.data.dataset import (
    dataset_info,
    dataset_names,
    dataset_versions,
    latest_version,
    load_dataset,
)
from sharpseek.data.exclusion import exclusion_rule
from sharpseek.data.ingest import (
    commit_ingest_shards,
    ingest_shard,
    plan_fits_shards,
    plan_jsoc_shards,
    plan_synthetic_shards,
)
from sharpseek.data.ingest_fits import find_fits_files, fits_provenance
from sharpseek.data.ingest_jsoc import JsocDownload, combine_downloads, download_jsoc
from sharpseek.data.ingest_synthetic import synthetic_provenance, synthetic_version
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.store import open_store
from sharpseek.pipeline.ledger import (
    Ledger,
    StageOutcome,
    _outcome_from,
    dataset_digest,
    dataset_ref,
    files_digest,
    fingerprint,
)

__all__ = [
    "IngestPlan",
    "commit_ingest",
    "plan_ingest_jsoc",
    "plan_ingest_fits",
    "plan_ingest_synthetic",
    "run_ingest_plan",
]


@dataclass
class IngestPlan:
    """What an ingest will do: the shards its workers make (preprocessing + physics,
    :func:`sharpseek.data.ingest.ingest_shard`) before the one dataset writer commits them
    (:func:`commit_ingest`); ``done`` instead when the stage is up to date.

    Made by :func:`plan_ingest_synthetic`, :func:`plan_ingest_fits` or
    :func:`plan_ingest_jsoc`; run in one process by :func:`run_ingest_plan` (the
    ``sharpseek ingest`` commands), or shard by shard on workers then :func:`commit_ingest`
    (the flows). Either way the commit records the stage in the :class:`Ledger`.
    """

    stage: str
    dataset: str
    fingerprint: str
    inputs: dict[str, Any]
    shards: list = field(default_factory=list)  # of sharpseek.data.ingest.IngestShard
    provenance: dict[str, Any] = field(default_factory=dict)
    version: str | None = None  # synthetic: the recipe's name; None: the next vNNNN
    base: str | None = "latest"  # the version extended (None: a fresh dataset)
    overwrite: bool = False  # replace ``version`` when it exists (synthetic --overwrite)
    leading: list = field(default_factory=list)  # Quarantined before any shard
    done: StageOutcome | None = None


def _dataset_exists(store: ObjectStore, dataset: str) -> Callable[[dict[str, Any]], bool]:
    """Whether the dataset version a ledger entry names is still in the store."""
    return lambda out: store.exists(f"datasets/{dataset}/{out.get('version')}/dataset.json")


def ingest_quality(settings: Settings) -> dict[str, float]:
    """What an ingest keeps in model space and which frames it leaves out (the clip and
    :func:`sharpseek.data.exclusion.exclusion_rule`): recorded with every dataset version and part
    of every ingest's fingerprint, so changing them is never "up to date"."""
    return {"field_clip_gauss": settings.quality.field_clip_gauss, **exclusion_rule(settings)}


class QualityMismatch(ValueError):
    """An ingest into (or reuse of) a dataset version made under other quality settings."""


def _check_quality(settings: Settings, where: str, info: dict[str, Any], remedy: str) -> None:
    """Refuse to add to (or reuse) a dataset version made under other quality settings: its
    frames would mix two clips, or be reused as if made under the current one. ``info`` is the
    version's ``dataset.json``; versions written before the settings were recorded pass."""
    made_with = info.get("provenance", {}).get("quality")
    if made_with is not None and made_with != ingest_quality(settings):
        raise QualityMismatch(
            f"{where} was made with quality settings {made_with}, not the "
            f"current {ingest_quality(settings)}: {remedy}"
        )


def _check_dataset_quality(settings: Settings, store: ObjectStore, dataset: str) -> None:
    version = latest_version(store, dataset)
    if version is not None:
        info = dataset_info(store, dataset, version)  # not the manifest: one small JSON
        _check_quality(settings, f"{dataset}/{version}", info, "ingest into another --dataset")


def plan_ingest_synthetic(
    settings: Settings,
    *,
    regions: int | None = None,
    frames: int | None = None,
    cadence_hours: float | None = None,
    seed: int | None = None,
    overwrite: bool = False,
) -> IngestPlan:
    """The synthetic dataset of a recipe, cut into shards of whole regions
    (``settings.flows.ingest_shard_size`` frames).

    Values left as None come from ``settings.synthetic`` (the preset). ``done`` when the
    recipe's version exists (the version name is the recipe, and the generator is
    deterministic), unless ``overwrite``: then it is made again and replaced.
    """
    store = open_store(settings)
    cfg = settings.synthetic
    recipe = {
        "regions": cfg.regions if regions is None else regions,
        "frames": cfg.frames if frames is None else frames,
        "cadence_hours": cfg.cadence_hours if cadence_hours is None else cadence_hours,
        "seed": cfg.seed if seed is None else seed,
    }
    version = synthetic_version(**recipe)
    inputs = {"recipe": version}
    fp = fingerprint(inputs)
    plan = IngestPlan(
        "ingest-synthetic", "synthetic", fp, inputs, version=version, base=None,
        overwrite=overwrite,
    )  # fmt: skip
    if not overwrite and store.exists(f"datasets/synthetic/{version}/dataset.json"):
        ds = load_dataset(store, "synthetic", version)
        _check_quality(settings, f"synthetic/{version}", ds.info, "ingest again with --overwrite")
        ref = dataset_ref(ds)
        plan.done = StageOutcome(
            plan.stage,
            True,
            fp,
            {"version": ref.version, "dataset": ref.as_dict()},
            f"synthetic/{ref.version} is up to date ({ref.n_records} frames); reused",
        )
        return plan
    plan.shards = plan_synthetic_shards(**recipe, shard_frames=settings.flows.ingest_shard_size)
    plan.provenance = synthetic_provenance(**recipe)
    return plan


def plan_ingest_fits(
    settings: Settings, paths: Sequence[str | Path], *, dataset: str = "sharp"
) -> IngestPlan:
    """Br FITS files (or folders of them) cut into shards of
    ``settings.flows.ingest_shard_size`` files; ``done`` when exactly these files (names and
    bytes) were ingested into ``dataset`` before (then no new, empty dataset version is
    made). Paths that do not exist are quarantined with that reason."""
    store = open_store(settings)
    files, problems = find_fits_files(paths)
    if not files and problems:  # nothing to ingest: refused, and nothing written
        shown = "; ".join(f"{p.source}: {p.reason}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"no Br FITS file to ingest: {shown}{more}")
    _check_dataset_quality(settings, store, dataset)
    inputs = {
        "dataset": dataset,
        "files": files_digest(files),
        "n_files": len(files),
        "quality": ingest_quality(settings),
    }
    fp = fingerprint(inputs)
    plan = IngestPlan(f"ingest-fits-{dataset}", dataset, fp, inputs, leading=list(problems))
    entry = Ledger(store).current(plan.stage, fp, exists=_dataset_exists(store, dataset))
    if entry is not None:
        plan.done = _outcome_from(plan.stage, entry, f"{len(files)} FITS files in {dataset}")
        return plan
    plan.shards = plan_fits_shards(
        files, dataset=dataset, source="fits", shard_files=settings.flows.ingest_shard_size
    )
    plan.provenance = fits_provenance(paths, n_files=len(files), source="fits")
    return plan


def plan_ingest_jsoc(
    settings: Settings,
    *,
    start: str | None = None,
    end: str | None = None,
    harpnums: Sequence[int] | None = None,
    noaa: Sequence[int] | None = None,
    nrt: bool = False,
    cadence: str | None = None,
    strict_quality: bool = False,
    incremental: bool = True,
    dataset: str = "sharp",
    progress: bool = False,
) -> IngestPlan:
    """Ask JSOC, download the Br files, and cut them into ingest shards.

    Definitive series, or near-real-time with ``nrt`` (then ``start`` defaults to
    ``now - settings.flows.nrt_lookback_days``). With ``incremental`` and records of
    ``dataset`` already held, asks only for records after each HARP's newest T_REC;
    ``start`` (with ``harpnums``, or for a first run) adds a time range, whose records
    already held are skipped at the commit. Without ``incremental``, asks for the record set
    ``start``/``end``/``harpnums``/``noaa`` select (HARPs without a time range: all their
    records). ``noaa``, ``cadence``, ``strict_quality``:
    as :func:`sharpseek.data.ingest_jsoc.download_jsoc`.

    ``done`` when the same requests delivered exactly the same files (names and bytes) to
    the last run of this stage, whose dataset version is still there.

    The downloads stay one step (the flows' one retried task): each request is one export at
    JSOC (one request id, resumed after a crash from its state file in the downloads folder),
    and the files are network-bound, not CPU-bound. The shards (preprocessing + physics) are
    what grows with the archive; their files are staged in the store so any worker can make
    them (:func:`sharpseek.data.ingest.plan_jsoc_shards`). An unreachable JSOC raises
    :class:`sharpseek.data.jsoc.JsocError` naming the URL.
    """
    if nrt and start is None:
        lookback = pd.Timedelta(days=settings.flows.nrt_lookback_days)
        start = (pd.Timestamp.now(tz="UTC").tz_localize(None) - lookback).strftime(
            "%Y.%m.%d_%H:00:00_TAI"
        )
    series = jsoc.NRT_SERIES if nrt else settings.jsoc.series
    store = open_store(settings)
    _check_dataset_quality(settings, store, dataset)  # before asking JSOC for anything
    requests = _jsoc_requests(
        dataset,
        held=latest_version(store, dataset) is not None,
        start=start,
        end=end,
        harpnums=harpnums,
        noaa=noaa,
        nrt=nrt,
        incremental=incremental,
    )
    downloads = [
        _download_request(
            settings,
            request,
            series=series,
            cadence=cadence,
            strict_quality=strict_quality,
            dataset=dataset,
            store=store,
            progress=progress,
        )
        for request in requests
    ]
    download = combine_downloads(downloads, series=series)
    files, _ = find_fits_files(download.files)
    inputs = {
        "dataset": dataset,
        "queries": download.queries,
        "files": files_digest(files),
        "missing": sorted(q.record_id for q in download.missing),
        "quality": ingest_quality(settings),
    }
    fp = fingerprint(inputs)
    stage = f"ingest-jsoc-{'nrt' if nrt else 'definitive'}"
    plan = IngestPlan(stage, dataset, fp, inputs, provenance=download.provenance())
    entry = Ledger(store).current(stage, fp, exists=_dataset_exists(store, dataset))
    if entry is not None:
        what = f"JSOC {'near-real-time' if nrt else 'definitive'} ({len(files)} files)"
        plan.done = _outcome_from(stage, entry, what)
        return plan
    plan.shards, plan.leading = plan_jsoc_shards(
        download, dataset=dataset, shard_files=settings.flows.ingest_shard_size, store=store
    )
    return plan


def _jsoc_requests(
    dataset: str,
    *,
    held: bool,
    start: str | None,
    end: str | None,
    harpnums: Sequence[int] | None,
    noaa: Sequence[int] | None,
    nrt: bool,
    incremental: bool,
) -> list[dict[str, Any]]:
    """The requests of :func:`plan_ingest_jsoc` (``held``: the dataset has a version), each
    the keyword arguments of one :func:`sharpseek.data.ingest_jsoc.download_jsoc`: the
    records after those held (incremental), then the record set asked for."""
    selects = start is not None or bool(harpnums) or bool(noaa)  # a record set of its own
    if not held and not selects:
        raise ValueError(
            f"dataset {dataset!r} is empty: the first JSOC ingest needs a start time "
            "or HARP/NOAA numbers to know what to ask for"
        )
    requests: list[dict[str, Any]] = []
    if incremental and held:
        requests.append({"end": end, "harpnums": harpnums, "incremental": True})
    if (selects and (not incremental or not held)) or (
        start is not None and (harpnums or noaa or nrt)
    ):
        # a first run, a plain request, new HARPs or recent NRT days: the record set asked
        # for (a time range, or every record of the HARPs); held records are skipped
        requests.append({"start": start, "end": end, "harpnums": harpnums, "noaa": noaa})
    if not requests:
        raise ValueError(
            "nothing to ask JSOC for: give a start time, HARP or NOAA numbers, or ask for "
            "the records after those held (incremental)"
        )
    return requests


def _download_request(settings: Settings, request: dict[str, Any], **options: Any) -> JsocDownload:
    """One request's :func:`sharpseek.data.ingest_jsoc.download_jsoc` (``options``: its
    other keyword arguments); an unreachable JSOC raises
    :class:`sharpseek.data.jsoc.JsocError` naming the URL."""
    try:
        return download_jsoc(settings, **options, **request)
    except OSError as err:  # URLError, refused, reset, timeout: name JSOC and the URL
        reason = getattr(err, "reason", None) or err
        raise jsoc.JsocError(
            f"JSOC is unreachable at {settings.jsoc.server_url} ({reason}); nothing was ingested"
        ) from err


def commit_ingest(settings: Settings, plan: IngestPlan) -> StageOutcome:
    """Commit an ingest plan's made shards through the one dataset writer (once, at the end:
    a crash before leaves the dataset as it was, and a rerun reuses the made shards), and
    record the stage in the :class:`Ledger`.

    A definitive record replaces the NRT one of the same HARP and T_REC; records already
    held are skipped, so a rerun after a crash neither duplicates nor drops. Outputs:
    ``version``, ``dataset`` (:class:`DatasetRef` as a dict), ``added``, ``skipped``,
    ``replaced`` (NRT records), ``recovered`` (taken up from an interrupted commit),
    ``quarantined`` (``[source, reason, record_id]`` of each refused input).
    """
    if plan.done is not None:
        return plan.done
    store = open_store(settings)
    quality = ingest_quality(settings)  # recorded with the version
    result = commit_ingest_shards(
        store,
        plan.dataset,
        plan.shards,
        provenance={**plan.provenance, "quality": quality},
        leading=plan.leading,
        base=plan.base,
        version=plan.version,
        overwrite=plan.overwrite,
    )
    ref = dataset_ref(result.dataset)
    quarantined = [[q.source, q.reason, q.record_id] for q in result.quarantined]
    outputs = {
        "version": ref.version,
        "dataset": ref.as_dict(),
        "added": result.added,
        "skipped": result.skipped,
        "replaced": result.replaced,
        "recovered": result.recovered,
        "quarantined": quarantined,
        "rebased_onto": list(result.rebased_onto),
    }
    Ledger(store).record(plan.stage, plan.fingerprint, plan.inputs, outputs)
    rebased = (
        f" (built on {', '.join(result.rebased_onto)}, committed meanwhile by another writer)"
        if result.rebased_onto
        else ""
    )
    return StageOutcome(
        plan.stage,
        False,
        plan.fingerprint,
        outputs,
        f"{plan.dataset}/{ref.version}: {result.added} added, {result.skipped} already there, "
        f"{result.replaced} near-real-time replaced by definitive, {len(quarantined)} "
        f"quarantined; {ref.n_records} records of {ref.n_regions} regions{rebased}",
    )


def run_ingest_plan(settings: Settings, plan: IngestPlan, *, progress: bool = True) -> StageOutcome:
    """Make every shard of ``plan`` in this process, then commit: the ``sharpseek ingest``
    commands (the flows map the same shards over workers, then :func:`commit_ingest`)."""
    if plan.done is None:
        for shard in tqdm(plan.shards, desc=plan.stage, unit="shard", disable=not progress):
            ingest_shard(settings, shard)
    return commit_ingest(settings, plan)


def dataset_versions_table(settings: Settings) -> list[dict[str, Any]]:
    """One row per dataset version: name, version (latest marked), records, regions, digest
    of the latest; what the dataset-versioning flow publishes."""
    store = open_store(settings)
    rows = []
    for name in dataset_names(store):
        latest = latest_version(store, name)
        for version in dataset_versions(store, name):
            ds = load_dataset(store, name, version)
            rows.append(
                {
                    "dataset": name,
                    "version": version + (" (latest)" if version == latest else ""),
                    "records": int(ds.info["n_records"]),
                    "regions": int(ds.info["n_regions"]),
                    "added": int(ds.info.get("n_added", 0)),
                    "quarantined": int(ds.info.get("n_quarantined", 0)),
                    "digest": dataset_digest(ds.manifest) if version == latest else "",
                    "created": ds.info["created"],
                }
            )
    return rows
