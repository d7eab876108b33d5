"""The dataset writer: append records as a new version, journaled, committed by compare-and-swap.

:func:`append_records` writes content-addressed float16 shards and journals their rows as it
goes (a crashed run's finished shards are taken up by the next run); the commit claims a fresh
version number with a create-if-absent put, writes the manifest, quarantine and dataset.json,
and moves ``LATEST`` with a compare-and-swap from the version it built on. A writer that loses
the race rebases onto the other writer's version and commits again. The layout and the reading
side are in :mod:`sharpseek.data.dataset`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.data.dataset import (
    CLAIM,
    DEFINITIVE_SERIES,
    IMAGE_DTYPE,
    INFO,
    MANIFEST,
    NRT_SERIES,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    Dataset,
    PatchRecord,
    Quarantined,
    _versions,
    check_dataset_name,
    dataset_versions,
    latest_version,
    load_dataset,
)
from sharpseek.data.local_store import LocalStore
from sharpseek.data.object_store import ObjectNotFound, ObjectStore, PreconditionFailed
from sharpseek.physics.definitions import MODEL_SIZE

__all__ = ["Annotate", "AppendResult", "CommitConflict", "append_records", "write_dataset"]

log = logging.getLogger(__name__)

#: Rebases a writer tries before it gives up (each one means another writer committed).
COMMIT_TRIES = 50


class CommitConflict(RuntimeError):
    """A dataset version could not be committed because other writers kept committing (or
    hold the version name asked for); names the dataset and the other writer's version."""


@dataclass
class AppendResult:
    """What an append did."""

    dataset: Dataset
    added: int = 0
    skipped: int = 0  # already in the base version (or repeated in the input)
    replaced: int = 0  # near-real-time rows replaced by definitive ones
    recovered: int = 0  # rows taken up from the journal of an interrupted run
    quarantined: list[Quarantined] = field(default_factory=list)
    unchanged: bool = False  # nothing new: no version written, ``dataset`` is the base
    rebased_onto: list[str] = field(default_factory=list)  # other writers' versions taken in


Annotate = Callable[[np.ndarray, list[dict[str, Any]]], dict[str, np.ndarray]]


def append_records(
    store: ObjectStore,
    name: str,
    records: Iterable[PatchRecord | Quarantined],
    *,
    provenance: dict[str, Any],
    annotate: Annotate | None = None,
    base: str | None = "latest",
    version: str | None = None,
    shard_size: int = 2048,
    overwrite: bool = False,
) -> AppendResult:
    """Add records to dataset ``name`` as a new version and return it.

    Parameters
    ----------
    records : iterable of PatchRecord or Quarantined
        Consumed once, shard by shard (never all in memory). ``Quarantined`` items are
        recorded with their reason; everything else goes on.
    provenance : dict
        How the data was made (source, query, seed, code version); stored in dataset.json.
    annotate : callable, optional
        ``annotate(images, rows) -> dict[str, ndarray (n,)]`` adds columns per shard, computed
        on the stored float16 images (``rows``: each record's meta and columns merged), for
        example :func:`sharpseek.physics.parameters.compute_parameters`.
    base : str or None
        The version to extend: ``"latest"`` (default), a version name, or None for a fresh
        dataset.
    version : str, optional
        Name of the new version (default ``v0001``, ``v0002``, ... after the existing ones).
    overwrite : bool
        Replace an existing version of that name; without it that is an error.
    """
    check_dataset_name(name)
    base_version = latest_version(store, name) if base == "latest" else base
    base_ds = load_dataset(store, name, base_version) if base_version else None
    base_manifest = base_ds.manifest if base_ds is not None else pd.DataFrame()
    existing = dataset_versions(store, name)
    explicit = version is not None
    version = version or _next_version(existing)
    if version in existing and not overwrite:
        raise FileExistsError(f"dataset {name}/{version} already exists in {store.describe()}")
    result = AppendResult(dataset=None)  # type: ignore[arg-type]

    known = set(base_manifest["record_id"]) if len(base_manifest) else set()
    definitive_keys = _keys(base_manifest, DEFINITIVE_SERIES)
    # The journal of this run's version: a rerun after a crash (nothing committed since)
    # picks the same version, so it finds what the crashed run finished. A writer running
    # beside this one on the same version may take up these rows too; the commit keeps
    # each record once either way.
    journal_prefix = f"datasets/{name}/journal/{version}/"
    journal_keys, journal_rows = _read_journal(store, journal_prefix, known)
    result.recovered = len(journal_rows)
    known |= {row["record_id"] for row in journal_rows}

    new_rows: list[dict[str, Any]] = list(journal_rows)
    batch: list[PatchRecord] = []

    def flush() -> None:
        if not batch:
            return
        journal_key, rows = _write_shard(store, name, batch, annotate, journal_prefix)
        journal_keys.append(journal_key)
        new_rows.extend(rows)
        batch.clear()

    quarantined: list[Quarantined] = []
    for item in records:
        if isinstance(item, Quarantined):
            log.warning("quarantined %s: %s", item.record_id or item.source, item.reason)
            quarantined.append(item)
            continue
        rid = item.record_id
        series, harp, t_rec = item.meta["series"], int(item.meta["harpnum"]), item.meta["t_rec"]
        if rid in known or (
            series == NRT_SERIES and (harp, pd.Timestamp(t_rec)) in definitive_keys
        ):
            result.skipped += 1
            continue
        known.add(rid)
        if series == DEFINITIVE_SERIES:
            definitive_keys.add((harp, pd.Timestamp(t_rec)))
        batch.append(item)
        if len(batch) >= shard_size:
            flush()
    flush()
    result.quarantined = quarantined

    commit = _Commit(store, name, base, base_ds, version, explicit, overwrite)
    return commit.run(result, new_rows, quarantined, journal_keys, provenance, shard_size)


def _write_shard(
    store: ObjectStore,
    name: str,
    batch: list[PatchRecord],
    annotate: Annotate | None,
    journal_prefix: str,
) -> tuple[str, list[dict[str, Any]]]:
    """Put one shard of ``batch``'s images (content-addressed, float16 (n, 128, 128)) and
    journal its manifest rows; return the journal key and the rows."""
    images = np.stack([_checked_image(r.image, r.record_id) for r in batch]).astype(IMAGE_DTYPE)
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    data = buffer.getvalue()
    key = f"datasets/{name}/shards/{hashlib.sha256(data).hexdigest()[:24]}.npy"
    if not store.exists(key):
        store.put_bytes(key, data, content_type="application/octet-stream")
    rows = []
    for i, rec in enumerate(batch):
        row = {"record_id": rec.record_id, **rec.meta, **rec.columns}
        row["content_hash"] = hashlib.sha256(images[i].tobytes()).hexdigest()[:16]
        row["shard"] = key
        row["shard_index"] = i
        rows.append(row)
    if annotate is not None:
        extra = annotate(images.astype(np.float32), rows)
        for i, row in enumerate(rows):
            row.update({k: _scalar(v[i]) for k, v in extra.items()})
    journal = io.BytesIO()
    pd.DataFrame(rows).to_parquet(journal, index=False)
    journal_key = f"{journal_prefix}{Path(key).stem}.parquet"
    store.put_bytes(journal_key, journal.getvalue())
    return journal_key, rows


class _Commit:
    """The end of an append: assemble the version on the latest base and move ``LATEST``
    with a compare-and-swap; on a lost race, rebase onto the winner's version and retry."""

    def __init__(self, store, name, base, base_ds, version, explicit, overwrite):
        self.store: ObjectStore = store
        self.name: str = name
        self.follow_latest = base == "latest"
        self.base_ds: Dataset | None = base_ds
        self.version: str = version
        self.explicit: bool = explicit
        self.overwrite: bool = overwrite
        self.writer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def latest_key(self) -> str:
        return f"datasets/{self.name}/LATEST"

    def _read_latest(self) -> tuple[str | None, str | None]:
        try:
            data, token = self.store.get_versioned(self.latest_key)
        except ObjectNotFound:
            return None, None
        return data.decode().strip(), token

    def run(self, result, new_rows, quarantined, journal_keys, provenance, shard_size):
        store, name = self.store, self.name
        skipped_before = result.skipped
        for _ in range(COMMIT_TRIES):
            latest, token = self._read_latest()
            base_version = self.base_ds.version if self.base_ds is not None else None
            if self.follow_latest and latest is not None and latest != base_version:
                if not store.exists(f"datasets/{name}/{latest}/{INFO}"):
                    raise CommitConflict(
                        f"dataset {name}: LATEST names {latest}, which is not complete in "
                        f"{store.describe()}; nothing was committed"
                    )
                log.warning(
                    "dataset %s: another writer committed %s (this run began on %s); "
                    "rebasing onto it",
                    name, latest, base_version,
                )  # fmt: skip
                self.base_ds = load_dataset(store, name, latest)
                result.rebased_onto.append(latest)
            base_ds = self.base_ds
            base_manifest = base_ds.manifest if base_ds is not None else pd.DataFrame()
            base_quarantine = base_ds.quarantine if base_ds is not None else pd.DataFrame()
            mine, replaced, dropped = _on_base(base_manifest, new_rows)
            result.skipped = skipped_before + dropped
            manifest = (
                pd.concat([base_manifest[~replaced], mine], ignore_index=True)
                if len(base_manifest)
                else mine
            )
            result.added, result.replaced = len(mine), int(replaced.sum())
            quarantine = _merge_quarantine(
                base_quarantine, quarantined, set(manifest.get("record_id", []))
            )
            if (
                base_ds is not None
                and not self.explicit
                and result.added == 0
                and result.replaced == 0
                and len(quarantine) == len(base_quarantine)
            ):
                # An incremental ingest that found nothing new (the hourly job, most hours)
                # leaves the dataset as it was instead of writing one identical version per run.
                _delete_keys(store, journal_keys)
                result.dataset, result.unchanged = base_ds, True
                return result
            version = self._claim(base_ds)
            if version is None:
                continue  # another writer took the number: look again
            info = self._write(version, base_ds, manifest, quarantine, result, provenance,
                               shard_size)  # fmt: skip
            if self._move_latest(version, token):
                _delete_keys(store, journal_keys)  # committed: this run's journal is spent
                result.dataset = Dataset(store, name, version, info, manifest, quarantine)
                return result
        raise CommitConflict(
            f"dataset {name}: gave up after {COMMIT_TRIES} tries, other writers kept "
            f"committing (last: {self._read_latest()[0]}); nothing of this run was committed, "
            "its finished shards stay in the journal for a rerun"
        )

    def _claim(self, base_ds: Dataset | None) -> str | None:
        """Take a version number (create-if-absent of its claim); None when another writer
        took it first."""
        store, name = self.store, self.name
        if self.explicit:
            version = self.version
        else:
            complete, taken = _versions(store, name)
            version = _next_version(sorted(taken | set(complete)))
        claim = {
            "writer": self.writer,
            "base_version": base_ds.version if base_ds is not None else None,
            "claimed": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        key = f"datasets/{name}/{version}/{CLAIM}"
        data = json.dumps(claim).encode()
        if self.explicit and self.overwrite:
            store.put_bytes(key, data)  # replacing a named version is what was asked for
            return version
        try:
            store.put_if(key, data, match=None)
        except PreconditionFailed:
            if self.explicit:
                other = _read_json(store, key)
                raise CommitConflict(
                    f"dataset {name}/{version} is being written (or was) by another writer "
                    f"({other.get('writer', '?')}, claimed {other.get('claimed', '?')}); "
                    "nothing was overwritten"
                ) from None
            return None
        return version

    def _write(self, version, base_ds, manifest, quarantine, result, provenance, shard_size):
        store, name = self.store, self.name
        prefix = f"datasets/{name}/{version}"
        _put_parquet(store, f"{prefix}/{MANIFEST}", manifest)
        _put_parquet(store, f"{prefix}/{QUARANTINE}", quarantine)
        info = {
            "name": name,
            "version": version,
            "base_version": base_ds.version if base_ds is not None else None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_records": len(manifest),
            "n_regions": int(manifest["harpnum"].nunique()) if len(manifest) else 0,
            "n_added": result.added,
            "n_replaced_nrt": result.replaced,
            "n_quarantined": len(quarantine),
            "shard_size": shard_size,
            "image_dtype": np.dtype(IMAGE_DTYPE).name,
            "provenance": provenance,
        }
        store.put_bytes(f"{prefix}/{INFO}", json.dumps(info, indent=2, default=str).encode())
        return info

    def _move_latest(self, version: str, token: str | None) -> bool:
        """``LATEST`` := ``version`` if it still names the base (compare-and-swap)."""
        store = self.store
        while True:
            try:
                store.put_if(self.latest_key, version.encode(), match=token)
                return True
            except PreconditionFailed:
                if self.follow_latest:
                    break
                # built on a named base (or none): complete on its own, it only needs the
                # pointer; it is the newest version now
                token = self._read_latest()[1]
        # Lost: another writer committed on our base. Withdraw this version (it was never
        # latest) and rebase.
        prefix = f"datasets/{self.name}/{version}"
        for part in (INFO, MANIFEST, QUARANTINE, CLAIM):  # the claim last: the number stays
            store.delete(f"{prefix}/{part}")  # ours until our files are gone
        return False


def write_dataset(
    root: Path,
    name: str,
    version: str,
    records: Iterable[PatchRecord | Quarantined],
    *,
    provenance: dict[str, Any],
    shard_size: int = 2048,
    annotate: Annotate | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Write ``records`` as a fresh version ``name/version`` in the local folder ``root``
    (the data home). See :func:`append_records`."""
    return append_records(
        LocalStore(root),
        name,
        records,
        provenance=provenance,
        annotate=annotate,
        base=None,
        version=version,
        shard_size=shard_size,
        overwrite=overwrite,
    ).dataset


def _next_version(existing: list[str]) -> str:
    numbers = [int(m.group(1)) for v in existing if (m := re.fullmatch(r"v(\d+)", v))]
    return f"v{max(numbers, default=0) + 1:04d}"


def _keys(manifest: pd.DataFrame, series: str) -> set[tuple[int, pd.Timestamp]]:
    if not len(manifest):
        return set()
    rows = manifest[manifest["series"] == series]
    return {(int(h), pd.Timestamp(t)) for h, t in zip(rows["harpnum"], rows["t_rec"], strict=True)}


def _replaced_nrt(manifest: pd.DataFrame, definitive: set) -> pd.Series:
    is_nrt = manifest["series"] == NRT_SERIES
    keys = [
        (int(h), pd.Timestamp(t))
        for h, t in zip(manifest["harpnum"], manifest["t_rec"], strict=True)
    ]
    return is_nrt & pd.Series([k in definitive for k in keys], index=manifest.index)


def _read_journal(
    store: ObjectStore, prefix: str, known: set[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The journal's keys read and the rows not yet ``known`` (added to it)."""
    keys: list[str] = []
    rows: list[dict[str, Any]] = []
    for info in store.list(prefix):
        if not info.key.endswith(".parquet"):
            continue
        try:
            data = store.get_bytes(info.key)
        except ObjectNotFound:
            # gone between the listing and the read: its writer committed (its rows are in
            # the version this run rebases onto) or withdrew them; either way not ours
            continue
        keys.append(info.key)
        frame = pd.read_parquet(io.BytesIO(data))
        if not store.exists(frame["shard"].iloc[0]):
            continue  # its shard never landed: the records will simply be redone
        for row in frame.to_dict("records"):
            if row["record_id"] not in known:
                known.add(row["record_id"])
                rows.append(row)
    if rows:
        log.info("taking up %d records from an interrupted run (%s)", len(rows), prefix)
    return keys, rows


def _on_base(
    base: pd.DataFrame, new_rows: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.Series, int]:
    """This run's rows that ``base`` lacks, which base rows they replace (NRT rows with a
    definitive twin), and how many rows ``base`` already held (another writer's commit)."""
    frame = pd.DataFrame(new_rows)
    if not len(base):
        return frame, pd.Series([], dtype=bool), 0
    if len(frame):
        held = frame["record_id"].isin(set(base["record_id"]))
        base_definitive = _keys(base, DEFINITIVE_SERIES)
        is_nrt = (frame["series"] == NRT_SERIES).to_numpy()
        twin = [
            bool(nrt) and (int(h), pd.Timestamp(t)) in base_definitive
            for nrt, h, t in zip(is_nrt, frame["harpnum"], frame["t_rec"], strict=True)
        ]
        keep = ~(held.to_numpy() | np.asarray(twin, dtype=bool))
        dropped = int((~keep).sum())
        frame = frame[keep].reset_index(drop=True)
    else:
        dropped = 0
    definitive = _keys(base, DEFINITIVE_SERIES) | _keys(frame, DEFINITIVE_SERIES)
    return frame, _replaced_nrt(base, definitive), dropped


def _delete_keys(store: ObjectStore, keys: Iterable[str]) -> None:
    for key in keys:
        store.delete(key)


def _read_json(store: ObjectStore, key: str) -> dict[str, Any]:
    try:
        return json.loads(store.get_bytes(key))
    except (ObjectNotFound, ValueError):
        return {}


def _merge_quarantine(
    base: pd.DataFrame, new: list[Quarantined], ingested: set[str]
) -> pd.DataFrame:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    frame = pd.DataFrame(
        [
            {"source": q.source, "record_id": q.record_id, "reason": q.reason, "when": now}
            for q in new
        ],
        columns=QUARANTINE_COLUMNS,
    )
    merged = pd.concat([base, frame], ignore_index=True) if len(base) else frame
    if not len(merged):
        return merged
    # a record that has since been ingested is no longer in quarantine; keep one entry per source
    merged = merged[~merged["record_id"].isin(ingested - {""})]
    return merged.drop_duplicates(subset=["source", "record_id"], keep="last").reset_index(
        drop=True
    )


def _put_parquet(store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes(key, buffer.getvalue())


def _checked_image(image: np.ndarray, rid: str) -> np.ndarray:
    image = np.asarray(image)
    if image.shape != (MODEL_SIZE, MODEL_SIZE):
        raise ValueError(
            f"record {rid}: image shape {image.shape}, expected ({MODEL_SIZE}, {MODEL_SIZE})"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError(f"record {rid}: image has non-finite values")
    return image


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
