"""Ingestion: every source of SHARPs lands in the same versioned dataset, through one writer.

Sources — synthetic (:mod:`sharpseek.data.synthetic`), local FITS as JSOC exports them, and JSOC
itself through drms (:mod:`sharpseek.data.jsoc`) — yield frames (Br in gauss at original
resolution plus SHARP metadata) that all go through :func:`frame_to_record`: model-space
conversion, physical-unit quantities at original resolution, mu, data-quality flags. The
dataset writer (:func:`sharpseek.data.dataset_writer.append_records`) adds the model-space
physics per shard, keys records by (series, HARPNUM, T_REC), and quarantines what is refused
with its reason while the rest goes on.

Every ingest takes one road: a plan cuts the input into :class:`IngestShard` pieces
(:func:`plan_synthetic_shards`, :func:`plan_fits_shards`, :func:`plan_jsoc_shards` after
:func:`download_jsoc`), any worker makes a shard's records (:func:`ingest_shard`), and one
commit writes them through the dataset writer (:func:`commit_ingest_shards`). The planners
that decide what is up to date, and the runners, are in :mod:`sharpseek.pipeline.stages`
(``plan_ingest_synthetic``, ``plan_ingest_fits``, ``plan_ingest_jsoc``, ``run_ingest_plan``):
the ``sharpseek ingest`` commands run a plan in one process, the Prefect flows map its
shards over workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.data.dataset import PatchRecord, Quarantined
from sharpseek.data.dataset_writer import AppendResult, append_records
from sharpseek.data.ingest_fits import (
    file_sha256,
    find_fits_files,
    fits_records,
)
from sharpseek.data.ingest_jsoc import JsocDownload
from sharpseek.data.ingest_records import (
    DATASET_SCHEMA,
    model_space_annotator,
)
from sharpseek.data.ingest_synthetic import synthetic_records
from sharpseek.data.native import magnetogram_name
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.preprocess import (
    clip_field,
)
from sharpseek.data.store import open_store

__all__ = [
    "INGEST_SHARDS_PREFIX",
    "IngestShard",
    "commit_ingest_shards",
    "ingest_shard",
    "plan_fits_shards",
    "plan_jsoc_shards",
    "plan_synthetic_shards",
    "shard_items",
]

# sharded ingest: workers turn pieces of the input into records, one writer commits them
# ----------------------------------------------------------------------------------------------
#: Where ingest shards keep their records until the dataset writer commits them.
INGEST_SHARDS_PREFIX = "pipeline/ingest"


@dataclass(frozen=True)
class IngestShard:
    """A piece of an ingest that one worker turns into records: preprocessing + physics.

    ``kind == "synthetic"``: regions ``first_region`` .. ``stop_region - 1`` (0-based) of the
    recipe ``recipe`` (keyword arguments of :func:`synthetic_records`, as sorted pairs);
    ``kind == "fits"``: the Br FITS ``files``, their records tagged ``source``. ``key`` is the
    store prefix its records go to, made from its inputs (recipe and region range, or the
    files' names and bytes, and the sharpseek version): a rerun, or another worker, reuses
    what a shard already made. ``staged``: store keys holding a copy of each file (same
    order), read instead of the local paths, so that a worker on another machine can make
    the shard (JSOC downloads: :func:`plan_jsoc_shards`).
    """

    dataset: str
    kind: Literal["synthetic", "fits"]
    key: str
    recipe: tuple[tuple[str, Any], ...] = ()
    first_region: int = 0
    stop_region: int = 0
    files: tuple[str, ...] = ()
    source: str = "fits"
    staged: tuple[str, ...] = ()

    def __len__(self) -> int:
        """Regions (synthetic) or files (FITS) in the shard."""
        return self.stop_region - self.first_region if self.kind == "synthetic" else len(self.files)


def _shard_key(dataset: str, inputs: dict[str, Any]) -> str:
    text = json.dumps(
        {"schema": DATASET_SCHEMA, "sharpseek": __version__, **inputs}, sort_keys=True, default=str
    )
    return f"{INGEST_SHARDS_PREFIX}/{dataset}/{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def plan_synthetic_shards(
    *,
    regions: int,
    frames: int,
    cadence_hours: float,
    seed: int,
    shard_frames: int,
    dataset: str = "synthetic",
) -> list[IngestShard]:
    """Cut a synthetic recipe into shards of whole regions, about ``shard_frames`` frames each
    (at least one region); in region order."""
    if shard_frames < 1:
        raise ValueError(f"shard size must be >= 1 frame, got {shard_frames}")
    recipe = tuple(
        sorted(
            {
                "regions": regions,
                "frames": frames,
                "cadence_hours": cadence_hours,
                "seed": seed,
            }.items()
        )
    )
    per_shard = max(1, shard_frames // max(frames, 1))
    shards = []
    for first in range(0, regions, per_shard):
        stop = min(first + per_shard, regions)
        inputs = {"kind": "synthetic", "recipe": recipe, "regions_from": first, "to": stop}
        shards.append(
            IngestShard(dataset, "synthetic", _shard_key(dataset, inputs), recipe, first, stop)
        )
    return shards


def plan_fits_shards(
    files: Sequence[str | Path],
    *,
    dataset: str,
    source: str,
    shard_files: int,
    stage_in: ObjectStore | None = None,
) -> list[IngestShard]:
    """Cut Br FITS files into shards of at most ``shard_files`` files (one frame each), in the
    order given; a shard's key follows its files' names and bytes.

    With ``stage_in``, each file of a shard not yet made is copied into that store under
    ``<shard key>/inputs/<i>/<file name>`` (removed with the shard once committed), and the
    shard reads those copies (:attr:`IngestShard.staged`).
    """
    if shard_files < 1:
        raise ValueError(f"shard size must be >= 1 file, got {shard_files}")
    files = [str(f) for f in files]
    shards = []
    for start in range(0, len(files), shard_files):
        chunk = tuple(files[start : start + shard_files])
        inputs: dict[str, Any] = {
            "kind": "fits",
            "source": source,
            "files": [(Path(f).name, file_sha256(f)) for f in chunk],
        }
        # the line-of-sight segment beside a Br file (JSOC's R is computed on it)
        beside = {i: p for i, f in enumerate(chunk) if (p := _magnetogram_path(f)) is not None}
        if beside:
            inputs["magnetograms"] = [(i, file_sha256(p)) for i, p in sorted(beside.items())]
        key = _shard_key(dataset, inputs)
        staged: tuple[str, ...] = ()
        if stage_in is not None:
            staged = tuple(f"{key}/inputs/{i}/{Path(f).name}" for i, f in enumerate(chunk))
            if not stage_in.exists(f"{key}/done.json"):
                copies = [*zip(chunk, staged, strict=True)]
                copies += [(p, f"{key}/inputs/{i}/{p.name}") for i, p in beside.items()]
                for path, staged_key in copies:
                    if not stage_in.exists(staged_key):
                        stage_in.put_file(staged_key, Path(path))
        shards.append(IngestShard(dataset, "fits", key, files=chunk, source=source, staged=staged))
    return shards


def _magnetogram_path(br_path: str | Path) -> Path | None:
    name = magnetogram_name(Path(br_path).name)
    path = None if name is None else Path(br_path).with_name(name)
    return path if path is not None and path.is_file() else None


def _shard_inputs(shard: IngestShard, store: ObjectStore) -> Iterator[PatchRecord | Quarantined]:
    if shard.kind == "synthetic":  # a region does not depend on how many follow it
        recipe = {**dict(shard.recipe), "regions": shard.stop_region}
        return synthetic_records(**recipe, first_region=shard.first_region)
    if shard.staged:
        return _staged_fits_records(shard, store)
    return fits_records(map(Path, shard.files), source=shard.source, store=store)


def _staged_fits_records(
    shard: IngestShard, store: ObjectStore
) -> Iterator[PatchRecord | Quarantined]:
    """:func:`fits_records` of a shard's staged copies, fetched from the store into a
    temporary folder under their own names (the name carries the series); a refused file is
    reported under its original path, as a shard of local files reports it."""
    with tempfile.TemporaryDirectory(prefix="sharpseek-shard-") as folder:
        local: list[Path] = []
        for i, (original, key) in enumerate(zip(shard.files, shard.staged, strict=True)):
            path = Path(folder) / str(i) / Path(original).name
            path.parent.mkdir()
            path.write_bytes(store.get_bytes(key))
            local.append(path)
            los_name = magnetogram_name(path.name)  # staged beside it, when there was one
            los_key = f"{key.rsplit('/', 1)[0]}/{los_name}"
            if los_name is not None and store.exists(los_key):
                (path.parent / los_name).write_bytes(store.get_bytes(los_key))
        originals = {str(p): f for p, f in zip(local, shard.files, strict=True)}
        for item in fits_records(local, source=shard.source, store=store):
            if isinstance(item, Quarantined) and item.source in originals:
                original = originals[item.source]  # the reason may name the path too
                reason = item.reason.replace(item.source, original)
                item = Quarantined(original, reason, item.record_id)
            yield item


def ingest_shard(
    settings: Settings, shard: IngestShard, *, store: ObjectStore | None = None
) -> dict[str, Any]:
    """Make one shard's records: read or generate its frames, convert them to model space,
    compute the physics on the float16 images the dataset will hold (exactly what
    :func:`sharpseek.data.dataset_writer.append_records` would compute), and store them under
    ``shard.key`` (``images.npy`` float16 (n, 128, 128), ``rows.parquet`` metadata and
    columns, ``physics.parquet``, ``quarantined.json``, then ``done.json`` last: a shard
    exists once ``done.json`` does).

    Runs on any worker that reaches the store; a shard already made is not made again.
    Returns ``{"key", "records", "quarantined", "cached"}``.
    """
    store = store or open_store(settings)
    done_key = f"{shard.key}/done.json"
    if store.exists(done_key):
        return {**json.loads(store.get_bytes(done_key)), "key": shard.key, "cached": True}
    records: list[PatchRecord] = []
    quarantined: list[Quarantined] = []
    for item in _shard_inputs(shard, store):
        (quarantined if isinstance(item, Quarantined) else records).append(item)
    rows = [{**r.meta, **r.columns} for r in records]
    if records:
        stack = np.stack([r.image for r in records])  # (n, 128, 128)
        images = clip_field(stack, settings.quality.field_clip_gauss).astype(np.float16)
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        store.put_bytes(f"{shard.key}/images.npy", buffer.getvalue())
        _put_frame(store, f"{shard.key}/rows.parquet", pd.DataFrame(rows))
        # the physics of the stored (float16) values, as the dataset writer defines them
        physics = model_space_annotator(settings)(images.astype(np.float32), rows)
        frame = pd.DataFrame(physics)
        frame.insert(0, "record_id", [r.record_id for r in records])
        _put_frame(store, f"{shard.key}/physics.parquet", frame)
    store.put_bytes(
        f"{shard.key}/quarantined.json",
        json.dumps([[q.source, q.reason, q.record_id] for q in quarantined]).encode(),
    )
    counts = {"records": len(records), "quarantined": len(quarantined)}
    store.put_bytes(done_key, json.dumps(counts).encode())
    return {**counts, "key": shard.key, "cached": False}


def _put_frame(store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes(key, buffer.getvalue())


def _get_frame(store: ObjectStore, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)))


def shard_items(store: ObjectStore, shard: IngestShard) -> Iterator[PatchRecord | Quarantined]:
    """What a made shard holds, for the dataset writer: its quarantined inputs, then its
    records (float16 images; metadata and columns as the shard stored them)."""
    for source, reason, rid in json.loads(store.get_bytes(f"{shard.key}/quarantined.json")):
        yield Quarantined(source, reason, rid)
    if not store.exists(f"{shard.key}/rows.parquet"):
        return
    images = np.load(io.BytesIO(store.get_bytes(f"{shard.key}/images.npy")), allow_pickle=False)
    for image, row in zip(images, _get_frame(store, f"{shard.key}/rows.parquet").to_dict("records"),
                          strict=True):  # fmt: skip
        yield PatchRecord(image=image, meta=row)


def commit_ingest_shards(
    store: ObjectStore,
    dataset: str,
    shards: Sequence[IngestShard],
    *,
    provenance: dict[str, Any],
    leading: Sequence[Quarantined] = (),
    base: str | None = "latest",
    version: str | None = None,
    overwrite: bool = False,
    delete_shards: bool = True,
) -> AppendResult:
    """Commit made shards into ``dataset`` through the one dataset writer, in shard order.

    The writer (:func:`sharpseek.data.dataset_writer.append_records`, journaled and
    idempotent) takes the physics the shards computed instead of computing it again. Every
    shard must be made first; otherwise nothing is written. ``leading``: inputs refused
    before any shard (a path that does not exist). ``base``, ``version``, ``overwrite``: as
    :func:`sharpseek.data.dataset_writer.append_records`. With ``delete_shards``, the
    shards' staged records are removed once the version is committed.
    """
    missing = [s.key for s in shards if not store.exists(f"{s.key}/done.json")]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {len(shards)} ingest shards of {dataset!r} were not made "
            f"(first: {missing[0]}); the dataset is unchanged"
        )
    frames = [
        _get_frame(store, f"{s.key}/physics.parquet")
        for s in shards
        if store.exists(f"{s.key}/physics.parquet")
    ]
    physics = (
        pd.concat(frames, ignore_index=True).drop_duplicates("record_id").set_index("record_id")
        if frames
        else pd.DataFrame()
    )

    def annotate(images: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        part = physics.loc[[row["record_id"] for row in rows]]
        return {name: part[name].to_numpy() for name in part.columns}

    def items() -> Iterator[PatchRecord | Quarantined]:
        yield from leading
        for shard in shards:
            yield from shard_items(store, shard)

    result = append_records(
        store, dataset, items(), provenance=provenance, annotate=annotate, base=base,
        version=version, overwrite=overwrite,
    )  # fmt: skip
    if delete_shards:
        for shard in shards:
            store.delete_prefix(shard.key)
    return result


def plan_jsoc_shards(
    download: JsocDownload, *, dataset: str, shard_files: int, store: ObjectStore
) -> tuple[list[IngestShard], list[Quarantined]]:
    """Cut what a JSOC request downloaded into shards of at most ``shard_files`` Br files,
    and stage each file's bytes in ``store`` with its shard (the worker that makes a shard
    may run on another machine than the download: a Dask worker pod reads the store, not
    the flow run's disk). Returns the shards and what was refused before any shard (records
    the export did not deliver, files that are not Br FITS).

    The series (definitive or near-real-time) travels in each file's JSOC name, which the
    staged copy keeps: the dataset writer replaces an NRT record by the definitive one of
    the same HARP and T_REC, as it does for local files.
    """
    br_files, problems = find_fits_files(download.files)
    shards = plan_fits_shards(
        br_files, dataset=dataset, source="jsoc", shard_files=shard_files, stage_in=store
    )
    return shards, [*download.missing, *problems]
