"""The pipeline's library: what is up to date, shard planning, and the steps the flows call.

The Prefect flows (:mod:`sharpseek.pipeline.flows`) are thin shells: each task calls one function of
this module (or of the module that owns the work) and reports what it returned. This module decides

- **what is up to date**: every stage has a *fingerprint*, the SHA-256 of the versions and
  hashes of its inputs (the dataset's record ids and content hashes, the content-addressed
  model versions, the training config, the FITS files' bytes). A :class:`Ledger` in the store
  (``pipeline/stages/<stage>.json``) remembers the fingerprint of the last finished run of
  each stage and what it wrote; a stage whose fingerprint matches and whose outputs still
  exist is skipped. The ledger lives beside the data it describes, so every worker sees it
  and it disappears with the data (Prefect's own result cache would live on one worker's
  disk and outlive a deleted store);
- **shards**: work that grows with the archive is cut into shards, each a task a worker runs
  on its own. Ingest: synthetic regions or FITS files, ``settings.flows.ingest_shard_size``
  frames a shard, each turned into records (preprocessing + physics) by
  :func:`sharpseek.data.ingest.ingest_shard`, then committed once by the one dataset writer
  (:func:`commit_ingest`). One road for every ingest: ``plan_ingest_synthetic`` /
  ``plan_ingest_fits`` / ``plan_ingest_jsoc`` -> shards -> :func:`commit_ingest`; the CLI runs
  it in one process (:func:`run_ingest_plan`), the flows map the shards over workers.
  Embedding: ``settings.flows.shard_size`` frames a shard. A shard's result goes to the
  store under a key made from its inputs (recipe and regions, files' bytes, or the encoder
  version and the records' content hashes), so a rerun (after a crash, or on another
  worker) reuses it.

Everything here works without Prefect (plain calls), which is how the tests check it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Patch
from tqdm.auto import tqdm

from sharpseek.config import Settings
from sharpseek.data import jsoc
from sharpseek.data.dataset import (
    DEFINITIVE_SERIES,
    NRT_SERIES,
    dataset_info,
    dataset_names,
    dataset_versions,
    latest_version,
    load_dataset,
)
from sharpseek.data.exclusion import exclusion_rule, usable_rows
from sharpseek.data.flares import PREFIX as FLARE_PREFIX
from sharpseek.data.flares import (
    SYNTHETIC_PREFIX,
    LoadResult,
    configured_windows,
    flare_fields,
    flare_payloads,
    flare_windows,
    latest_flare_version,
    load_flare_catalogue,
    read_flare_table,
    read_harp_table,
    read_source,
    save_flare_catalogue,
)
from sharpseek.data.ingest import (
    combine_downloads,
    commit_ingest_shards,
    download_jsoc,
    find_fits_files,
    fits_provenance,
    ingest_shard,
    plan_fits_shards,
    plan_jsoc_shards,
    plan_synthetic_shards,
    synthetic_provenance,
    synthetic_version,
)
from sharpseek.data.store import ObjectStore, open_store
from sharpseek.data.synthetic_flares import SyntheticFlareLaw, synthetic_flare_tables
from sharpseek.models.inference import EncoderModel, GeneratorModel, checkpoint_name
from sharpseek.science.directions import (
    DIRECTIONS_FORMAT,
    DirectionMethod,
    DirectionSet,
    fit_directions,
)
from sharpseek.science.directions import calibrate as calibrate_directions
from sharpseek.search.index import (
    EmptyIndexError,
    EncoderMismatchError,
    UpsertResult,
    open_index_from_settings,
)
from sharpseek.search.query_map import load_query_map, query_map_key
from sharpseek.serving.backends import BackendError, InProcessBackend, RequestError, open_backend
from sharpseek.serving.torchserve import build_archives
from sharpseek.training.common import RunStore, checkpoint_key, load_checkpoint
from sharpseek.training.encoder import encoder_train_config, train_encoder
from sharpseek.training.evaluate_models import evaluate_checkpoints
from sharpseek.training.gan import gan_train_config, train_gan

log = logging.getLogger(__name__)

LEDGER_PREFIX = "pipeline/stages"
EMBEDDINGS_PREFIX = "pipeline/embeddings"
REPORTS_PREFIX = "pipeline/reports"
#: Bump when a stage's meaning changes, so every fingerprint changes with it.
PIPELINE_SCHEMA = 1

__all__ = [
    "DatasetRef",
    "IndexOutcome",
    "IndexPlan",
    "IngestPlan",
    "Ledger",
    "Shard",
    "StageOutcome",
    "apply_index_plan",
    "dataset_digest",
    "dataset_ref",
    "directions_stage",
    "embed_shard",
    "embedding_backend",
    "evaluate_stage",
    "archives_stage",
    "commit_ingest",
    "files_digest",
    "fingerprint",
    "flares_stage",
    "frame_flares",
    "load_flares",
    "update_flare_payloads",
    "plan_ingest_jsoc",
    "open_settings_index",
    "plan_index",
    "plan_ingest_fits",
    "plan_ingest_synthetic",
    "plan_shards",
    "run_index_plan",
    "run_ingest_plan",
    "train_stage",
]


# ----------------------------------------------------------------------------------------------
# fingerprints and the ledger
# ----------------------------------------------------------------------------------------------
def fingerprint(inputs: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a stage's inputs, as canonical JSON (sorted keys)."""
    text = json.dumps({"schema": PIPELINE_SCHEMA, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_digest(manifest: pd.DataFrame) -> str:
    """SHA-256 (16 hex) of a dataset's content: its record ids and their images' hashes.

    Two versions holding the same records with the same pixels have the same digest, so an
    ingest that added nothing makes nothing downstream stale.
    """
    if not len(manifest):
        return hashlib.sha256(b"").hexdigest()[:16]
    pairs = manifest[["record_id", "content_hash"]].astype(str).sort_values("record_id")
    digest = hashlib.sha256()
    for rid, content in pairs.itertuples(index=False):
        digest.update(f"{rid}\t{content}\n".encode())
    return digest.hexdigest()[:16]


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 (16 hex) of files' names and bytes (the inputs of a FITS ingest)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass
class StageOutcome:
    """What a stage did: ``skipped`` when its fingerprint matched a finished run."""

    stage: str
    skipped: bool
    fingerprint: str
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The fingerprint and outputs of each stage's last finished run, in the store."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def key(stage: str) -> str:
        return f"{LEDGER_PREFIX}/{stage}.json"

    def get(self, stage: str) -> dict[str, Any] | None:
        key = self.key(stage)
        if not self.store.exists(key):
            return None
        return json.loads(self.store.get_bytes(key))

    def current(
        self, stage: str, fp: str, *, exists: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any] | None:
        """The stage's record when it finished with fingerprint ``fp`` and ``exists(outputs)``
        (its outputs are still there); else None (the stage must run)."""
        entry = self.get(stage)
        if entry is None or entry.get("fingerprint") != fp:
            return None
        if exists is not None and not exists(entry.get("outputs", {})):
            log.info("stage %s: outputs of the recorded run are gone; running it again", stage)
            return None
        return entry

    def record(
        self, stage: str, fp: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        entry = {
            "stage": stage,
            "fingerprint": fp,
            "inputs": dict(inputs),
            "outputs": dict(outputs),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put_bytes(self.key(stage), json.dumps(entry, indent=2, default=str).encode())


def _outcome_from(stage: str, entry: dict[str, Any], what: str) -> StageOutcome:
    return StageOutcome(
        stage,
        True,
        entry["fingerprint"],
        dict(entry.get("outputs", {})),
        f"{what} is up to date (finished {entry.get('finished', '?')}); skipped",
    )


# ----------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetRef:
    """A dataset version and the digest of its content (what downstream stages depend on)."""

    name: str
    version: str
    digest: str
    n_records: int
    n_regions: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_ref(ds) -> DatasetRef:
    """The :class:`DatasetRef` of a :class:`sharpseek.data.dataset.Dataset`."""
    return DatasetRef(
        ds.name,
        ds.version,
        dataset_digest(ds.manifest),
        len(ds.manifest),
        int(ds.info.get("n_regions", ds.manifest["harpnum"].nunique() if len(ds) else 0)),
    )


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
    as :func:`sharpseek.data.ingest.download_jsoc`.

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
    held = latest_version(store, dataset) is not None
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
    downloads = []
    for request in requests:
        try:
            downloads.append(
                download_jsoc(
                    settings,
                    series=series,
                    cadence=cadence,
                    strict_quality=strict_quality,
                    dataset=dataset,
                    store=store,
                    progress=progress,
                    **request,
                )  # fmt: skip
            )
        except OSError as err:  # URLError, refused, reset, timeout: name JSOC and the URL
            reason = getattr(err, "reason", None) or err
            raise jsoc.JsocError(
                f"JSOC is unreachable at {settings.jsoc.server_url} ({reason}); "
                "nothing was ingested"
            ) from err
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


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
def _train_config(kind: str, preset: str, epochs: int | None):
    overrides = {} if epochs is None else {"epochs": epochs}
    if kind == "gan":
        return gan_train_config(preset, **overrides)
    if kind == "encoder":
        return encoder_train_config(preset, **overrides)
    raise ValueError(f"unknown model kind {kind!r}; choose gan or encoder")


def _run_name(settings: Settings, kind: str) -> str:
    return settings.models.gan if kind == "gan" else settings.models.encoder


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def train_stage(
    settings: Settings,
    kind: Literal["gan", "encoder"],
    *,
    dataset: str | None = None,
    epochs: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> StageOutcome:
    """Train the GAN or the encoder run that ``settings.models`` names, unless a finished
    run of the same config on the same dataset content is there.

    A run left by an interrupted training with the same config and dataset is resumed; a
    run of another config or dataset is replaced (the pipeline retrains what is stale).
    """
    store = open_store(settings)
    name = dataset or settings.flows.training_dataset
    version = latest_version(store, name)
    if version is None:
        raise FileNotFoundError(
            f"no dataset {name!r} in {store.describe()} to train the {kind} on; ingest it first"
        )
    ds = load_dataset(store, name, version)
    ref = dataset_ref(ds)
    config = _train_config(kind, settings.preset, epochs)
    config_dict = _plain(config.to_dict())
    run_name = _run_name(settings, kind)
    inputs = {"kind": kind, "run": run_name, "config": config_dict, "dataset_digest": ref.digest}
    fp = fingerprint(inputs)
    stage = f"train-{kind}"
    ledger = Ledger(store)
    run = RunStore(store, kind, run_name)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["last"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"{kind} {run_name}")

    resume = overwrite = False
    if run.has_checkpoints() and run.exists("last.pt"):
        ckpt = load_checkpoint(run.key("last.pt"), store=store, kind=kind)
        same_data = ckpt.get("dataset") == {"name": ds.name, "version": ds.version}
        same_config = _plain(ckpt.get("config")) == config_dict
        if same_data and same_config and int(ckpt.get("epoch", 0)) >= config.epochs:
            # a finished run the ledger did not know (trained by hand): adopt it
            outputs = {"run": run_name, "last": run.key("last.pt"), "epoch": ckpt["epoch"]}
            ledger.record(stage, fp, inputs, outputs)
            return StageOutcome(
                stage, True, fp, outputs, f"{kind} {run_name}: finished run found; adopted"
            )
        without_epochs = {k: v for k, v in config_dict.items() if k != "epochs"}
        old = {k: v for k, v in _plain(ckpt.get("config", {})).items() if k != "epochs"}
        if same_data and old == without_epochs and int(ckpt.get("epoch", 0)) < config.epochs:
            resume = True
            log.info("%s %s: resuming at epoch %s", kind, run_name, ckpt.get("epoch"))
        else:
            overwrite = True
            log.warning("%s %s is stale (config or dataset changed): retraining", kind, run_name)
    train = train_gan if kind == "gan" else train_encoder
    result = train(
        config,
        ds,
        store,
        version=run_name,
        resume=resume,
        overwrite=overwrite,
        device=settings.device,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
    last = result.history[-1] if result.history else {}
    outputs = {
        "run": run_name,
        "last": run.key("last.pt"),
        "epoch": int(last.get("epoch", config.epochs)),
        "best_epoch": (result.best or {}).get("epoch"),
        "history": _plain(result.history),
        "samples": run.key(f"samples/epoch-{config.epochs:04d}.png") if kind == "gan" else None,
    }
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(
        stage,
        False,
        fp,
        outputs,
        f"{kind} {run_name}: trained {config.epochs} epochs on {ds.name}/{ds.version}"
        + (" (resumed)" if resume else ""),
    )


# ----------------------------------------------------------------------------------------------
# directions, evaluation, archives
# ----------------------------------------------------------------------------------------------
def directions_stage(
    settings: Settings,
    *,
    samples: int | None = None,
    seed: int = 0,
    calibrate: bool = True,
    calibration_n_z: int | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Fit (and calibrate) the physical directions of the settings' generator version,
    unless they are stored for this exact version and recipe. The one road of
    `sharpseek directions fit` and the pipeline's directions step.

    Parameters
    ----------
    samples : generated images the SVMs are fitted on (default ``settings.directions.samples``)
    seed : seed of the sample and of its 70/30 split; the calibration vectors use ``seed + 1``
    calibrate : also measure the calibration curves (``settings.directions.calibration_*``)

    The method (``settings.directions.fit``, ``step``, ``ridge_alpha``) is part of the
    recipe: changing it refits.
    calibration_n_z : latent vectors per calibration point (default: settings)

    The images come through an in-process model backend (:mod:`sharpseek.serving.backends`) holding
    the settings' generator checkpoint: the boundaries are fitted on full-precision images
    of exactly that version (TorchServe would send float16 images).
    """
    cfg = settings.directions
    store = open_store(settings)
    model = GeneratorModel.from_settings(settings, store=store)
    generate = InProcessBackend(settings, generator=model).images  # z (b, d) -> (b, 128, 128)
    version = model.version
    n = int(samples or cfg.samples)
    n_z = int(calibration_n_z or cfg.calibration_n_z)
    method = DirectionMethod(fit=cfg.fit, step=cfg.step, ridge_alpha=cfg.ridge_alpha)
    inputs: dict[str, Any] = {"gan_version": version, "samples": n, "seed": seed}
    # the method and the stored format are part of the recipe: a set of an older format
    # (no calibration of how often a shift raises its parameter) is refitted once
    inputs["method"] = asdict(method)
    inputs["format"] = DIRECTIONS_FORMAT
    if calibrate:
        eps = np.linspace(-cfg.calibration_eps_max, cfg.calibration_eps_max, cfg.calibration_steps)
        inputs["calibration"] = {"eps": eps.tolist(), "n_z": n_z}
    fp = fingerprint(inputs)
    stage = "directions"
    ledger = Ledger(store)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["key"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"directions of {version}")
    replaces = DirectionSet.token(store, version)  # the set this fit replaces (or none)
    with warnings.catch_warnings():
        # parameters of empty generated images are NaN (no polarity): expected, not news
        warnings.simplefilter("ignore", RuntimeWarning)
        directions = fit_directions(
            generate,
            gan_version=version,
            latent_dim=model.latent_dim,
            n=n,
            seed=seed,
            progress=progress,
            method=method,
        )
        if calibrate:
            calibrate_directions(
                generate, directions, eps=eps, n_z=n_z, seed=seed + 1, progress=progress
            )
    key = directions.save(store, replaces=replaces)  # refused if another fit saved meanwhile
    accuracy = {
        name: round(float(getattr(b, "accuracy", float("nan"))), 3)
        for name, b in directions.boundaries.items()
    }
    outputs = {"gan_version": version, "key": key, "accuracy": accuracy}
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(
        stage,
        False,
        fp,
        outputs,
        f"directions of {version}: {len(directions.boundaries)} fitted on {n} images",
    )


def query_map_stage(settings: Settings) -> StageOutcome:
    """The generated-query map (:mod:`sharpseek.search.query_map`) of the settings' GAN and encoder
    over the training dataset, fitted and stored unless it is there (then this takes a
    moment): the UI's first generated search need not wait for it."""
    store = open_store(settings)
    backend = InProcessBackend(settings)
    where = query_map_key(settings, backend, store)
    stored = where is not None and store.exists(where[0])
    fitted = load_query_map(settings, backend, store)
    outputs = {"key": None if where is None else where[0]}
    if fitted is None:
        return StageOutcome("query-map", True, "", outputs, "generated-query map: off")
    message = f"generated-query map of {fitted.encoder_version} and {fitted.generator_version}"
    return StageOutcome(
        "query-map", stored, "", outputs, message + (" (stored)" if stored else ": fitted")
    )


def model_keys(settings: Settings) -> dict[str, str]:
    """Store keys of the checkpoints ``settings.models`` names."""
    m = settings.models
    return {
        "gan": checkpoint_key("gan", m.gan, checkpoint_name(m.gan_checkpoint)),
        "encoder": checkpoint_key("encoder", m.encoder, checkpoint_name(m.encoder_checkpoint)),
    }


def evaluate_stage(settings: Settings) -> StageOutcome:
    """The model quality report (:func:`sharpseek.training.evaluate_models.evaluate_checkpoints`) of
    the settings' GAN and encoder versions, stored as JSON under ``pipeline/reports/``."""
    store = open_store(settings)
    keys = model_keys(settings)
    gan_version = GeneratorModel.from_settings(settings, store=store).version
    enc_version = EncoderModel.from_settings(settings, store=store).version
    n = settings.flows.eval_samples
    inputs = {"gan_version": gan_version, "encoder_version": enc_version, "samples": n}
    fp = fingerprint(inputs)
    stage = "evaluate"
    ledger = Ledger(store)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["key"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"evaluation of {gan_version} and {enc_version}")
    report = evaluate_checkpoints(store, gan=keys["gan"], encoder=keys["encoder"], n_generated=n)
    key = f"{REPORTS_PREFIX}/evaluation-{fp}.json"
    store.put_bytes(key, json.dumps(report, indent=2, default=str).encode())
    outputs = {"key": key, "report": _plain(report)}
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(stage, False, fp, outputs, f"evaluation report: {key}")


def archives_stage(settings: Settings) -> StageOutcome:
    """Build and publish the TorchServe model archives of the settings' model versions
    through :func:`sharpseek.serving.torchserve.build_archives`."""
    store = open_store(settings)
    inputs = {
        "gan_version": GeneratorModel.from_settings(settings, store=store).version,
        "encoder_version": EncoderModel.from_settings(settings, store=store).version,
    }
    # the generator's archive packs its directions: a refit or recalibration rebuilds it
    inputs["directions_version"] = DirectionSet.stored_version(store, inputs["gan_version"])
    fp = fingerprint(inputs)
    ledger = Ledger(store)
    entry = ledger.current("archives", fp)
    if entry is not None:
        return _outcome_from("archives", entry, "model archives")
    built = build_archives(settings, store=store)
    archives = [asdict(a) if hasattr(a, "__dataclass_fields__") else a for a in built]
    outputs = {"archives": _plain(archives)}
    ledger.record("archives", fp, inputs, outputs)
    names = ", ".join(str(getattr(a, "file", a)) for a in built)
    return StageOutcome("archives", False, fp, outputs, f"model archives published: {names}")


# ----------------------------------------------------------------------------------------------
# the index: plan, shards, apply — the one road of `sharpseek index build|update` and the flows
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """Rows of one dataset version to embed as one task (``key``: where its vectors go), with
    the encoder version that must embed them (the collection's)."""

    dataset: str
    version: str
    rows: tuple[int, ...]
    key: str
    encoder_version: str = ""

    def __len__(self) -> int:
        return len(self.rows)


def plan_shards(
    manifest: pd.DataFrame,
    rows: Sequence[int],
    *,
    dataset: str,
    version: str,
    encoder_version: str,
    shard_size: int,
) -> list[Shard]:
    """Cut ``rows`` of a manifest into shards of at most ``shard_size`` (in row order).

    A shard's key is made from the encoder version and its records' ids and content hashes,
    so the same frames embedded by the same encoder map to the same stored result.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    rows = [int(r) for r in rows]
    shards = []
    for start in range(0, len(rows), shard_size):
        chunk = tuple(rows[start : start + shard_size])
        part = manifest.iloc[list(chunk)]
        digest = hashlib.sha256()
        for rid, content in part[["record_id", "content_hash"]].astype(str).itertuples(False):
            digest.update(f"{rid}\t{content}\n".encode())
        key = f"{EMBEDDINGS_PREFIX}/{encoder_version}/{dataset}/{digest.hexdigest()[:20]}.npy"
        shards.append(Shard(dataset, version, chunk, key, encoder_version))
    return shards


@dataclass
class IndexPlan:
    """What the index needs: ``reindex`` (a new encoder version: every frame, into a new
    collection that goes live when full), ``update`` (the frames the live collection lacks)
    or ``none``."""

    mode: Literal["reindex", "update", "none"]
    encoder_version: str
    encoder_key: str
    datasets: list[DatasetRef]
    shards: list[Shard]
    live_before: str | None
    points_before: int

    @property
    def n_frames(self) -> int:
        return sum(len(s) for s in self.shards)


def open_settings_index(settings: Settings, *, dim: int | None = None):
    """The index the settings describe (:func:`sharpseek.search.index.open_index_from_settings`)."""
    return open_index_from_settings(settings, dim=dim)


def plan_index(
    settings: Settings,
    *,
    datasets: Sequence[str] | None = None,
    versions: Mapping[str, str] | None = None,
    encoder_key: str | None = None,
    mode: Literal["auto", "reindex", "update"] = "auto",
) -> IndexPlan:
    """Decide what the index needs for the settings' encoder and ``datasets`` (default
    ``settings.flows.index_datasets``; absent ones are left out): their latest versions, or
    the version ``versions`` names.

    ``mode``: ``auto`` (the flows) rebuilds for a new encoder and otherwise adds what the
    live collection lacks; ``reindex`` (``sharpseek index build``) fills a new collection
    for the encoder's version (refused when that version is already live); ``update``
    (``sharpseek index update``) adds the missing frames to the live collection, which must
    be of the encoder's version.
    """
    store = open_store(settings)
    encoder_key = encoder_key or model_keys(settings)["encoder"]
    encoder = EncoderModel.from_checkpoint(encoder_key, store=store)
    names = list(datasets if datasets is not None else settings.flows.index_datasets)
    versions = dict(versions or {})
    loaded = []
    for name in names:
        version = versions.get(name) or latest_version(store, name)
        if version is not None:
            loaded.append(load_dataset(store, name, version))
    if not loaded:
        raise FileNotFoundError(
            f"none of the datasets {names} is in {store.describe()}: nothing to index"
        )
    index = open_settings_index(settings, dim=encoder.dim)
    try:
        live = index.live()
        points_before = index.count() if live is not None else 0
        same = live is not None and live.encoder_version == encoder.version
        if mode == "reindex" and same:
            raise ValueError(
                f"encoder version {encoder.version!r} is already live ({live.name}); add the "
                "frames it lacks with `sharpseek index update`"
            )
        if mode == "update" and live is None:
            raise EmptyIndexError("nothing is live yet: run a build first (sharpseek index build)")
        if mode == "update" and not same:
            raise EncoderMismatchError(
                f"the live collection holds encoder version {live.encoder_version!r} but the "
                f"configured encoder is {encoder.version!r}: build a collection for it "
                "(sharpseek index build) or configure the live encoder"
            )
        wanted: dict[str, list[int]] = {}
        for ds in loaded:
            ids = ds.manifest["record_id"].astype(str).tolist()
            lacking = set(ids) if not same else set(index.missing(ids))
            usable = usable_rows(ds.manifest)  # frames mostly off-disk or NaN: left out
            wanted[ds.name] = [i for i, r in enumerate(ids) if r in lacking and usable[i]]
    finally:
        index.close()
    shards = []
    for ds in loaded:
        shards += plan_shards(
            ds.manifest,
            wanted[ds.name],
            dataset=ds.name,
            version=ds.version,
            encoder_version=encoder.version,
            shard_size=settings.flows.shard_size,
        )
    chosen: Literal["reindex", "update", "none"] = "update" if same else "reindex"
    if chosen == "reindex" and not shards:
        raise ValueError(
            "no frames to index in " + ", ".join(f"{ds.name}/{ds.version}" for ds in loaded)
        )
    if chosen == "update" and not shards:
        chosen = "none"
    return IndexPlan(
        chosen,
        encoder.version,
        encoder_key,
        [dataset_ref(ds) for ds in loaded],
        shards,
        live.name if live is not None else None,
        points_before,
    )


_BACKENDS: dict[tuple[str, ...], Any] = {}


def embedding_backend(
    settings: Settings, encoder_key: str, encoder_version: str, *, served: bool = True
):
    """The model backend (:mod:`sharpseek.serving.backends`) that embeds with exactly
    ``encoder_version``: TorchServe when ``settings.serve.backend`` is ``torchserve`` (and
    ``served``) and it serves that version (``backend.versions()``); otherwise an
    in-process backend with the checkpoint at ``encoder_key``. One per process: the shards
    a worker runs share it.

    Raises ``ValueError`` when the checkpoint is not of ``encoder_version`` (a collection
    never holds vectors of two encoders).
    """
    store = open_store(settings)
    served = served and settings.serve.backend == "torchserve"
    cache_key = (store.describe(), encoder_key, encoder_version, str(served))
    if cache_key in _BACKENDS:
        return _BACKENDS[cache_key]
    for old in _BACKENDS.values():
        old.close()
    _BACKENDS.clear()
    backend = None
    if served:
        server = open_backend(settings)
        try:
            serving = server.versions().get("encoder")
        except (BackendError, RequestError) as err:
            serving = None
            log.warning("TorchServe cannot answer (%s): embedding in this process", err)
        if serving == encoder_version:
            backend = server
        else:
            server.close()
            if serving is not None:
                log.info(
                    "TorchServe serves encoder %s, the index needs %s: embedding in this process",
                    serving, encoder_version,
                )  # fmt: skip
    if backend is None:
        encoder = EncoderModel.from_checkpoint(encoder_key, store=store)
        if encoder.version != encoder_version:
            raise ValueError(
                f"checkpoint {encoder_key} is encoder version {encoder.version!r}, not "
                f"{encoder_version!r}: the collection's vectors must all come from one encoder"
            )
        backend = InProcessBackend(settings, encoder=encoder)
    _BACKENDS[cache_key] = backend
    return backend


def embed_shard(settings: Settings, shard: Shard, encoder_key: str) -> dict[str, Any]:
    """Embed one shard's frames through the model backend of its encoder version
    (:func:`embedding_backend`) and store the vectors (float32 (n, dim) .npy) at its key.

    Runs on any worker that can reach the store; a shard already stored is not recomputed.
    Returns ``{"key", "n", "cached"}``.
    """
    store = open_store(settings)
    if store.exists(shard.key):
        return {"key": shard.key, "n": len(shard), "cached": True}

    torch.set_num_threads(1)  # one core per worker: the cluster is the parallelism
    ds = load_dataset(store, shard.dataset, shard.version)
    images = ds.images(shard.rows)
    version = shard.encoder_version or _checkpoint_version(store, encoder_key)
    backend = embedding_backend(settings, encoder_key, version)
    vectors = np.asarray(backend.embed(images), dtype=np.float32)
    if not isinstance(backend, InProcessBackend) and backend.versions()["encoder"] != version:
        # the server rolled to another encoder version while embedding: embed here instead
        backend = embedding_backend(settings, encoder_key, version, served=False)
        vectors = np.asarray(backend.embed(images), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    store.put_bytes(shard.key, buffer.getvalue())
    return {"key": shard.key, "n": len(shard), "cached": False}


def _checkpoint_version(store: ObjectStore, key: str) -> str:
    return EncoderModel.from_checkpoint(key, store=store).version


def _load_vectors(store: ObjectStore, key: str) -> np.ndarray:
    return np.load(io.BytesIO(store.get_bytes(key)), allow_pickle=False)


@dataclass
class IndexOutcome:
    """What the index stage did."""

    mode: str
    encoder_version: str
    live_before: str | None
    live_after: str | None
    points_before: int
    points_after: int
    added: int = 0
    skipped: int = 0
    replaced: int = 0
    superseded: int = 0
    per_dataset: dict[str, int] = field(default_factory=dict)
    flare_payloads: int = 0  # frames given their flare history and outcome (a catalogue held)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def message(self) -> str:
        if self.mode == "none":
            return f"index {self.live_after} is up to date ({self.points_after} points); skipped"
        verb = "rebuilt for a new encoder" if self.mode == "reindex" else "updated"
        return (
            f"index {verb}: {self.added} frames added, {self.replaced} NRT frames replaced; "
            f"{self.points_before} -> {self.points_after} points, live {self.live_after}"
        )


def apply_index_plan(
    settings: Settings, plan: IndexPlan, *, drop_previous: bool = False
) -> IndexOutcome:
    """Write the embedded shards into the index: a new collection that goes live when
    complete (``reindex``; ``drop_previous`` deletes the collection live before), or the
    missing frames into the live one (``update``).

    Every shard must be embedded first (:func:`embed_shard`). The live collection is never
    touched before all vectors exist, so a failure anywhere before leaves it as it was; an
    interrupted reindex resumes on rerun (records already in the new collection are skipped).
    """
    store = open_store(settings)
    if plan.mode != "none":
        for shard in plan.shards:
            if not store.exists(shard.key):
                raise RuntimeError(
                    f"shard {shard.key} was not embedded; the live index is unchanged"
                )
    manifests = {
        ref.name: load_dataset(store, ref.name, ref.version).manifest for ref in plan.datasets
    }
    by_dataset: dict[str, list[Shard]] = {}
    for shard in plan.shards:
        by_dataset.setdefault(shard.dataset, []).append(shard)
    versions = {ref.name: ref.version for ref in plan.datasets}

    def batches(name: str):
        for shard in by_dataset.get(name, []):
            yield manifests[name].iloc[list(shard.rows)], _load_vectors(store, shard.key)

    dim = None
    if plan.shards:
        dim = int(_load_vectors(store, plan.shards[0].key).shape[1])
    index = open_settings_index(settings, dim=dim)
    outcome = IndexOutcome(
        plan.mode, plan.encoder_version, plan.live_before, None, plan.points_before, 0
    )
    try:
        names = [n for n in versions if by_dataset.get(n)]
        writes = UpsertResult()
        rest = names
        if plan.mode == "reindex":
            first, rest = names[0], names[1:]
            result = index.reindex(
                plan.encoder_version,
                batches(first),
                dataset_version=versions[first],
                drop_previous=drop_previous,
            )
            writes += result.writes
            outcome.per_dataset[first] = result.writes.added
        for name in rest:
            done = UpsertResult()
            for rows, vectors in batches(name):
                done += index.upsert_records(
                    rows,
                    vectors,
                    encoder_version=plan.encoder_version,
                    dataset_version=versions[name],
                )
            writes += done
            outcome.per_dataset[name] = done.added
        outcome.added, outcome.skipped = writes.added, writes.skipped
        outcome.replaced, outcome.superseded = writes.replaced, writes.superseded
        live = index.live()
        outcome.live_after = live.name if live is not None else None
        outcome.points_after = index.count() if live is not None else 0
    finally:
        index.close()
    if outcome.live_after is not None and any(
        latest_flare_version(store, root=root) is not None
        for root in (FLARE_PREFIX, SYNTHETIC_PREFIX)
    ):
        # new frames get their flare history and outcome from the catalogue held (a fresh
        # index object: an embedded reader opened before the write could read a stale copy)
        outcome.flare_payloads = update_flare_payloads(settings)["written"]
    return outcome


# ----------------------------------------------------------------------------------------------
# flares: the catalogue and the index payloads
# ----------------------------------------------------------------------------------------------
def load_flares(
    settings: Settings, source: str | Path | None = None, *, harps: str | Path | None = None
) -> LoadResult:
    """Read a flare table (``source``, default ``settings.flares.source``: a path or URL) and
    the HARP table (``settings.flares.harps``), match them and store a new catalogue version
    when the content changed. A bad file raises :class:`~sharpseek.data.flares.FlareCatalogueError`
    before anything is written."""
    location = source if source is not None else settings.flares.source
    if location is None:
        raise ValueError("no flare table: give FILE or set SHARPSEEK_FLARES__SOURCE")
    harps_location = harps if harps is not None else settings.flares.harps
    timeout = settings.flares.timeout_s
    flares = read_flare_table(read_source(location, timeout_s=timeout), str(location))
    harp_table = read_harp_table(
        read_source(harps_location, timeout_s=timeout), str(harps_location)
    )
    return save_flare_catalogue(
        open_store(settings),
        flares,
        harp_table,
        source=str(location),
        harps_source=str(harps_location),
        margin_hours=settings.flares.lifetime_margin_hours,
    )


def frame_flares(settings: Settings, harpnums: Any, t_recs: Any, *, version: str | None = None):
    """History and outcome (:func:`sharpseek.data.flares.flare_windows`) of any frames, from the
    store's catalogue (latest, or ``version``) and the settings' windows."""
    catalogue = load_flare_catalogue(open_store(settings), version)
    return flare_windows(catalogue, harpnums, t_recs, configured_windows(settings.flares))


def load_synthetic_flares(settings: Settings, *, out: Path | None = None) -> LoadResult | None:
    """Draw the ground-truth flares of the latest synthetic dataset
    (:func:`sharpseek.data.synthetic_flares.synthetic_flare_tables`, deterministic from
    ``settings.synthetic``), read them back as the shared catalogue's file format and store
    them as the synthetic catalogue (a new version only when they changed); ``out``: also
    write them there (``flares.csv``, ``harps.csv``: ``sharpseek flares load`` reads them).
    None when there is no synthetic dataset."""
    store = open_store(settings)
    version = latest_version(store, "synthetic")
    if version is None:
        return None
    manifest = load_dataset(store, "synthetic", version).manifest
    # the dataset's own cadence (its frames' spacing), not the settings' (another recipe)
    steps = manifest.sort_values("t_rec").groupby("harpnum")["t_rec"].diff().dropna()
    cadence = (
        steps.median() / pd.Timedelta(hours=1) if len(steps) else settings.synthetic.cadence_hours
    )
    flares_csv, harps_csv = synthetic_flare_tables(
        manifest,
        seed=settings.synthetic.seed,
        cadence_hours=cadence,
        law=SyntheticFlareLaw.from_settings(settings.synthetic),
    )
    source = f"synthetic:{version}"
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "flares.csv").write_text(flares_csv)
        (Path(out) / "harps.csv").write_text(harps_csv)
    return save_flare_catalogue(
        store,
        read_flare_table(flares_csv.encode(), f"{source} flares"),
        read_harp_table(harps_csv.encode(), f"{source} HARPs"),
        source=source,
        harps_source=source,
        root=SYNTHETIC_PREFIX,
    )


def update_flare_payloads(settings: Settings, *, index=None) -> dict[str, Any]:
    """Give every frame of the live index its flare history and outcome from the latest
    catalogue of its kind (real frames: the GOES catalogue; synthetic frames: their
    ground-truth catalogue, when loaded), writing only the frames whose flare fields differ
    (a frame added since, or every frame after a new catalogue version); vectors are
    untouched. Returns the real frames' counts: ``frames`` (real frames seen), ``written``,
    ``known`` (frames whose first outcome window is known), ``version``; and ``synthetic``:
    the same for the synthetic frames (None without a synthetic catalogue)."""
    store = open_store(settings)
    families = {
        root: load_flare_catalogue(store, root=root)
        for root in (FLARE_PREFIX, SYNTHETIC_PREFIX)
        if latest_flare_version(store, root=root) is not None
    }
    if not families:
        raise FileNotFoundError(
            f"no flare catalogue in {store.describe()}: load one with `sharpseek flares load FILE`"
        )
    counts = {
        root: {"frames": 0, "written": 0, "known": 0, "version": catalogue.version}
        for root, catalogue in families.items()
    }
    windows = configured_windows(settings.flares)
    fields = flare_fields(windows)
    own = index is None
    index = open_settings_index(settings) if own else index
    try:
        scanned = (
            list(index.scan(["series", "harpnum", "t_rec", *fields]))
            if index.live() is not None
            else []
        )
        for root, catalogue in families.items():
            real = root == FLARE_PREFIX
            stored = [
                row
                for row in scanned
                if (str(row.get("series")) in (DEFINITIVE_SERIES, NRT_SERIES)) == real
            ]
            if not stored:
                continue
            t_recs = pd.to_datetime([str(r["t_rec"]).rstrip("Z") for r in stored]).to_numpy(
                "datetime64[s]"
            )
            harps = [int(r["harpnum"]) for r in stored]
            summary = flare_windows(catalogue, harps, t_recs, windows)
            new = flare_payloads(summary, windows)
            changed = {
                row["record_id"]: values
                for row, values in zip(stored, new, strict=True)
                if any(row.get(k) != v for k, v in values.items())
            }
            first_outcome = next((w for w in windows if w.kind == "outcome"), windows[0])
            counts[root] |= {
                "frames": len(stored),
                "written": index.update_payloads(changed, fields=fields) if changed else 0,
                "known": int((summary[f"{first_outcome.name}_status"] == "known").sum()),
            }
    finally:
        if own:
            index.close()
    real_counts = counts.get(FLARE_PREFIX, {"frames": 0, "written": 0, "known": 0, "version": None})
    return real_counts | {"synthetic": counts.get(SYNTHETIC_PREFIX)}


def flares_stage(settings: Settings, source: str | Path | None = None) -> StageOutcome:
    """Load the flare table (``source`` or ``settings.flares.source``; a new catalogue
    version only when its content changed) and the synthetic regions' ground-truth flares
    (when a synthetic dataset exists), then bring the live index's flare payloads up to
    date. Used by ``sharpseek flares load`` and the hourly flow."""
    location = source if source is not None else settings.flares.source
    have_file = location is not None and (
        str(location).startswith(("http://", "https://")) or Path(location).is_file()
    )
    loaded = load_flares(settings, location) if have_file else None
    synthetic = load_synthetic_flares(settings) if source is None else None
    if loaded is None and synthetic is None:
        return StageOutcome("flares", True, "", {}, f"no flare table at {location}; skipped")
    payloads = update_flare_payloads(settings)
    outputs: dict[str, Any] = {"payloads": payloads}
    words = []
    if loaded is not None:
        outputs |= {
            "version": loaded.catalogue.version,
            "created": loaded.created,
            **{f"flares_{k}": v for k, v in loaded.counts.items()},
        }
        verb = "new catalogue version" if loaded.created else "catalogue unchanged"
        words.append(
            f"{verb} {loaded.catalogue.version}: {loaded.counts['flares']} flares, "
            f"{loaded.counts['by_harpnum']} matched by HARPNUM, {loaded.counts['by_noaa']} by "
            f"NOAA, {loaded.counts['unmatched']} unmatched"
        )
    if synthetic is not None:
        outputs |= {
            "synthetic_version": synthetic.catalogue.version,
            "synthetic_created": synthetic.created,
            "synthetic_flares": synthetic.counts["flares"],
        }
        words.append(
            f"synthetic ground truth {synthetic.catalogue.version}: "
            f"{synthetic.counts['flares']} flares"
        )
    written = payloads["written"] + ((payloads["synthetic"] or {}).get("written") or 0)
    frames = payloads["frames"] + ((payloads["synthetic"] or {}).get("frames") or 0)
    message = "; ".join(words) + f"; {written} of {frames} frames' payloads written"
    created = any(x is not None and x.created for x in (loaded, synthetic))
    digest = "+".join(x.catalogue.info.get("digest", "") for x in (loaded, synthetic) if x)
    return StageOutcome("flares", not created and not written, digest, outputs, message)


def run_index_plan(
    settings: Settings, plan: IndexPlan, *, drop_previous: bool = False, progress: bool = True
) -> IndexOutcome:
    """Embed every shard of ``plan`` in this process, then apply it: ``sharpseek index
    build|update`` (the flows map the same shards over workers, then
    :func:`apply_index_plan`)."""
    if plan.mode != "none":
        for shard in tqdm(plan.shards, desc="embedding", unit="shard", disable=not progress):
            embed_shard(settings, shard, plan.encoder_key)
    return apply_index_plan(settings, plan, drop_previous=drop_previous)


def index_stage_inputs(plan: IndexPlan) -> dict[str, Any]:
    """The fingerprint inputs of an index state: encoder version and dataset contents."""
    return {
        "encoder_version": plan.encoder_version,
        "datasets": {ref.name: ref.digest for ref in plan.datasets},
    }


# ----------------------------------------------------------------------------------------------
# running the flows from the command line (the demo)
# ----------------------------------------------------------------------------------------------
def load_flows():
    """The Prefect flows, :mod:`sharpseek.pipeline.flows`."""
    from sharpseek.pipeline import flows  # Prefect is an optional extra: loaded where a flow runs

    return flows


def embedded_prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for Prefect in ephemeral mode (no server): its database under
    ``<home>/prefect`` unless PREFECT_HOME is set, a startup timeout that a busy 2-core
    machine meets, no telemetry (there may be no internet)."""
    return {
        "PREFECT_HOME": str((settings.home / "prefect").resolve()),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def run_pipeline_flow(settings: Settings, **params: Any) -> dict[str, Any]:
    """Run the ``pipeline`` flow in this process (Prefect's ephemeral API unless
    PREFECT_API_URL names a server); returns what each stage did."""
    for key, value in embedded_prefect_env(settings).items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # its database
    flows = load_flows()
    return flows.pipeline(home=str(settings.home), preset=settings.preset, **params)


# ----------------------------------------------------------------------------------------------
# run summaries and their picture
# ----------------------------------------------------------------------------------------------
RUNS_PREFIX = "pipeline/runs"


def summarize_run(
    stages: Mapping[str, Mapping[str, Any]], seconds: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One row per stage: name, whether it ran or was reused, seconds, its message."""
    rows = []
    for name, value in stages.items():
        if "mode" in value and "stage" not in value:  # the index flow's outcome
            reused = value["mode"] == "none"
            message = f"index {value['mode']}: {value.get('points_after', 0)} points live"
        elif "rows" in value:
            reused, message = True, f"{len(value['rows'])} dataset versions listed"
        else:
            reused, message = bool(value.get("skipped")), str(value.get("message", ""))
        rows.append(
            {
                "stage": name,
                "ran": not reused,
                "seconds": round(float(seconds.get(name, float("nan"))), 2),
                "message": message,
            }
        )
    return rows


def save_run_summary(settings: Settings, rows: list[dict[str, Any]]) -> str:
    """Store a pipeline run's summary under ``pipeline/runs/<UTC time>.json``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{RUNS_PREFIX}/{stamp}.json"
    open_store(settings).put_bytes(key, json.dumps(rows, indent=2).encode())
    return key


def run_summaries(settings: Settings, last: int = 2) -> list[list[dict[str, Any]]]:
    """The ``last`` stored pipeline run summaries, oldest first."""
    store = open_store(settings)
    keys = sorted(i.key for i in store.list(f"{RUNS_PREFIX}/") if i.key.endswith(".json"))
    return [json.loads(store.get_bytes(k)) for k in keys[-last:]]


def runs_figure(runs: Sequence[Sequence[Mapping[str, Any]]], path: Path, *, labels=None) -> Path:
    """Horizontal bars of each stage's seconds, one panel per run (ran: orange, reused:
    grey), with the run's total: what a first and a second pipeline run cost."""
    matplotlib.use("Agg")

    if not runs:
        raise ValueError("no pipeline runs to draw")
    labels = labels or [f"run {i + 1}" for i in range(len(runs))]
    fig, axes = plt.subplots(
        1, len(runs), figsize=(5.2 * len(runs), 0.45 * max(len(r) for r in runs) + 1.6),
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, run, label in zip(axes[0], runs, labels, strict=True):
        names = [r["stage"] for r in run][::-1]
        secs = [max(float(r["seconds"]), 0.0) for r in run][::-1]
        colours = ["tab:orange" if r["ran"] else "tab:grey" for r in run][::-1]
        ax.barh(names, secs, color=colours)
        for y, s in enumerate(secs):
            ax.text(s, y, f" {s:.0f} s", va="center", fontsize=8)
        ax.set_xlabel("seconds")
        ax.set_title(f"{label}: {sum(secs) / 60:.1f} min in the stages")
        ax.set_xlim(0, max(secs) * 1.25 + 1)

    axes[0][-1].legend(
        handles=[Patch(color="tab:orange", label="ran"), Patch(color="tab:grey", label="reused")],
        loc="lower right",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
