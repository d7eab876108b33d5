"""Versioned datasets of model-space patches in the object store.

Layout under a store (local folder ``SHARPSEEK_HOME`` or an S3/MinIO bucket)::

    datasets/<name>/shards/<hash>.npy          float16 (n, 128, 128) arrays, content-addressed:
                                               versions share them, a rerun rewrites none
    datasets/<name>/<version>/manifest.parquet one row per patch: identity, SHARP metadata,
                                               physics, shard + offset, content hash, source
    datasets/<name>/<version>/quarantine.parquet  records refused, with their reason
    datasets/<name>/<version>/claim.json       written first, only if absent: the writer that
                                               owns this version number (a number is used once)
    datasets/<name>/<version>/dataset.json     written last: a version exists once it exists
    datasets/<name>/LATEST                     the newest complete version's name, moved only
                                               by a compare-and-swap from the version built on
    datasets/<name>/journal/<version>/<hash>.parquet  rows of shards written by a run of
                                               <version> not yet committed

A version is a manifest: appending 100 patches to a 50,000-patch version writes one new
shard and a new manifest that references the old shards. Records are keyed by
``record_id`` = (series, HARPNUM, T_REC): a rerun skips what is there (idempotent); a run
that crashes leaves its finished shards in the journal, and the next run takes them up, so
nothing is computed twice, duplicated or lost. A definitive record replaces the
near-real-time record of the same (HARPNUM, T_REC).

The writer is :func:`sharpseek.data.dataset_writer.append_records`.
Several writers may run at once (two ``sharpseek ingest`` on one home, the flows' commit
beside a CLI ingest). Each commit claims a fresh version number with a create-if-absent
put, writes its version, and moves ``LATEST`` with a compare-and-swap from the version it
built on (:meth:`sharpseek.data.object_store.ObjectStore.put_if`). A writer that loses the
race rebases: it takes the other writer's version as its base, keeps its own records that are
not in it, and commits again under a new number; never a silent overwrite.

Images are float16 (b in [-1, 1]: spacing <= 5e-4, i.e. <= 0.5 G) and every parameter in
the manifest is computed from the stored values, so what a reader loads is exactly what the
parameters describe.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sharpseek.data.local_store import LocalStore
from sharpseek.data.object_store import ObjectNotFound, ObjectStore
from sharpseek.physics.definitions import MODEL_SIZE

__all__ = [
    "Dataset",
    "PatchDataset",
    "PatchRecord",
    "Quarantined",
    "check_dataset_name",
    "dataset_info",
    "dataset_names",
    "dataset_versions",
    "latest_version",
    "load_dataset",
    "open_dataset",
    "record_id",
]

MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.parquet"
INFO = "dataset.json"
CLAIM = "claim.json"
IMAGE_DTYPE = np.float16
DEFINITIVE_SERIES = "hmi.sharp_cea_720s"
NRT_SERIES = "hmi.sharp_cea_720s_nrt"
QUARANTINE_COLUMNS = ["source", "record_id", "reason", "when"]


def record_id(series: str, harpnum: int, t_rec: datetime) -> str:
    """Identity of a record: ``series:HARPNUM:T_REC`` (T_REC in TAI, to the second)."""
    return f"{series}:{int(harpnum)}:{pd.Timestamp(t_rec):%Y%m%d_%H%M%S}_TAI"


@dataclass
class PatchRecord:
    """One frame on its way into a dataset.

    Attributes
    ----------
    image : ndarray (128, 128)
        Model-space patch, b in [-1, 1].
    meta : dict
        SHARP metadata (series, harpnum, t_rec, lat_fwt, ..., see SCIENCE.md "Data").
    columns : dict
        Further per-frame columns (resize scales, physical-unit quantities, truth_*, source).
    """

    image: np.ndarray
    meta: dict[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def record_id(self) -> str:
        return record_id(self.meta["series"], self.meta["harpnum"], self.meta["t_rec"])


@dataclass(frozen=True)
class Quarantined:
    """A record (or file) refused on the way in, and why. Good records still go in."""

    source: str
    reason: str
    record_id: str = ""


@dataclass
class Dataset:
    """A complete dataset version: manifest in memory, shards read on demand from the store."""

    store: ObjectStore
    name: str
    version: str
    info: dict[str, Any]
    manifest: pd.DataFrame
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def prefix(self) -> str:
        return f"datasets/{self.name}/{self.version}"

    @property
    def path(self) -> Path | None:
        """The version's folder when the store is a local folder, else None."""
        if isinstance(self.store, LocalStore):
            return self.store.root / self.prefix
        return None

    def shard(self, key: str) -> np.ndarray:
        """The float16 array of one shard (memory-mapped from a local store)."""
        array = self._cache.get(key)
        if array is None:
            if isinstance(self.store, LocalStore):
                array = np.load(self.store.root / key, mmap_mode="r")
            else:
                array = np.load(io.BytesIO(self.store.get_bytes(key)), allow_pickle=False)
                if len(self._cache) >= 4:  # bound memory: keep a few remote shards
                    self._cache.pop(next(iter(self._cache)))
            self._cache[key] = array
        return array

    def images(self, rows: Iterable[int] | None = None) -> np.ndarray:
        """Model-space images, float32 (n, 128, 128), in manifest order (or of ``rows``)."""
        manifest = self.manifest if rows is None else self.manifest.iloc[list(rows)]
        out = np.empty((len(manifest), MODEL_SIZE, MODEL_SIZE), dtype=np.float32)
        shards = manifest["shard"].to_numpy()
        offsets = manifest["shard_index"].to_numpy()
        for key in pd.unique(shards):
            where = np.flatnonzero(shards == key)
            out[where] = self.shard(key)[offsets[where]]
        return out

    def iter_shards(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Yield (manifest rows, float32 images) shard by shard: bounded memory."""
        for key, group in self.manifest.groupby("shard", sort=False):
            yield group, np.asarray(self.shard(key)[group["shard_index"].to_numpy()], np.float32)


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
#: A dataset name names a folder of the store: letters, digits, '.', '_', '-' (no '/', no '..').
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_dataset_name(name: str) -> str:
    """``name`` if it can name a dataset, else ValueError saying why (the one rule, checked
    by every function here that takes a name, so no name reaches outside ``datasets/``).

    >>> check_dataset_name("sharp-2014")
    'sharp-2014'
    """
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"dataset name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (no '/' and no '..': it names a folder of the store)"
        )
    return name


def dataset_versions(store: ObjectStore, name: str) -> list[str]:
    """Names of the complete versions of dataset ``name``, oldest first."""
    return _versions(store, check_dataset_name(name))[0]


def _versions(store: ObjectStore, name: str) -> tuple[list[str], set[str]]:
    """The complete versions (oldest first) and every version name claimed or complete."""
    prefix = f"datasets/{name}/"
    found = []
    taken: set[str] = set()
    for info in store.list(prefix, recursive=True):
        parts = info.key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[1] in (INFO, CLAIM):
            taken.add(parts[0])
            if parts[1] == INFO:
                found.append((info.modified, parts[0]))
    return [version for _, version in sorted(found)], taken


def dataset_names(store: ObjectStore) -> list[str]:
    """Names of the datasets in ``store`` (those with at least one complete version)."""
    names = []
    for info in store.list("datasets/", recursive=False):
        name = info.key.rstrip("/").split("/")[-1]
        if info.is_dir and dataset_versions(store, name):
            names.append(name)
    return sorted(names)


def latest_version(store: ObjectStore, name: str) -> str | None:
    """The newest complete version of ``name`` (from ``LATEST``), or None."""
    check_dataset_name(name)
    try:
        version = store.get_bytes(f"datasets/{name}/LATEST").decode().strip()
    except ObjectNotFound:
        return None
    return version if store.exists(f"datasets/{name}/{version}/{INFO}") else None


def dataset_info(store: ObjectStore, name: str, version: str) -> dict[str, Any]:
    """The ``dataset.json`` of version ``version`` of ``name`` (counts, provenance), without
    reading its manifest."""
    check_dataset_name(name)
    try:
        return json.loads(store.get_bytes(f"datasets/{name}/{version}/{INFO}"))
    except ObjectNotFound:
        raise FileNotFoundError(
            f"dataset {name}/{version} is not a complete sharpseek dataset in "
            f"{store.describe()} (missing {INFO})"
        ) from None


def load_dataset(store: ObjectStore, name: str, version: str | None = None) -> Dataset:
    """Open version ``version`` (default: the latest) of dataset ``name`` in ``store``."""
    check_dataset_name(name)
    version = version or latest_version(store, name)
    if version is None:
        raise FileNotFoundError(f"no complete version of dataset {name!r} in {store.describe()}")
    prefix = f"datasets/{name}/{version}"
    info = dataset_info(store, name, version)
    manifest = pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{MANIFEST}")))
    quarantine = (
        pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{QUARANTINE}")))
        if store.exists(f"{prefix}/{QUARANTINE}")
        else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    return Dataset(store, name, version, info, manifest, quarantine)


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset version from its local folder ``<home>/datasets/<name>/<version>``."""
    path = Path(path).expanduser().resolve()
    if not (path / INFO).is_file() or not (path / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{path} is not a complete sharpseek dataset (missing {INFO} or {MANIFEST})"
        )
    return load_dataset(LocalStore(path.parents[2]), path.parent.name, path.name)


class PatchDataset:
    """A ``torch.utils.data.Dataset`` over a dataset version: item i is a float32 tensor
    (1, 128, 128) of model-space b, with the manifest row's ``columns`` when asked for.

    Shards are opened once per worker and read lazily (memory-mapped from a local store),
    so a DataLoader with workers does not copy the dataset into each process.

    Parameters
    ----------
    dataset : Dataset
        An opened dataset version.
    rows : sequence of int, optional
        Manifest row numbers to expose (e.g. a split by HARPNUM); default all.
    columns : sequence of str
        Manifest columns returned beside each image (as a float32 tensor, in this order).
    """

    def __init__(self, dataset: Dataset, rows=None, columns=()):
        manifest = dataset.manifest
        self.dataset = dataset
        self.rows = np.arange(len(manifest)) if rows is None else np.asarray(rows, dtype=int)
        self._shard = manifest["shard"].to_numpy()[self.rows]
        self._index = manifest["shard_index"].to_numpy()[self.rows]
        self.columns = tuple(columns)
        self._values = (
            np.array(manifest.iloc[self.rows][list(self.columns)], dtype=np.float32)  # writable
            if self.columns
            else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        array = self.dataset.shard(self._shard[i])
        image = torch.from_numpy(np.asarray(array[self._index[i]], dtype=np.float32))[None]
        if self._values is None:
            return image  # (1, 128, 128)
        return image, torch.from_numpy(self._values[i])

    def __getstate__(self):  # shard maps are reopened in each worker process
        state = dict(self.__dict__)
        state["dataset"] = Dataset(
            self.dataset.store,
            self.dataset.name,
            self.dataset.version,
            self.dataset.info,
            self.dataset.manifest,
            self.dataset.quarantine,
        )
        return state
