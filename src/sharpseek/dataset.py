"""Versioned datasets of model-space patches: sharded arrays plus a Parquet manifest.

Layout of one dataset version (under ``<SHARPSEEK_HOME>/datasets/<name>/<version>/``)::

    manifest.parquet     one row per frame: identity, SHARP metadata, resize scales,
                         physical parameters (model space and physical units), truth_* for
                         synthetic data
    images-00000.npy     float16 array (n, 128, 128) of b = clip(Br / 1000 G, -1, 1)
    images-00001.npy     ...
    dataset.json         name, version, provenance (how it was made), counts, shard size

Images are stored as float16 (b in [-1, 1]: spacing <= 5e-4, i.e. <= 0.5 G) and every
parameter in the manifest is computed from the stored float16 values, so what a reader loads
is exactly what the parameters describe.

A version is written into a temporary folder and renamed into place when complete, so a
crash never leaves a half-written version that looks finished.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.physics import MODEL_SIZE

__all__ = ["PatchRecord", "Dataset", "write_dataset", "open_dataset", "record_id"]

MANIFEST = "manifest.parquet"
INFO = "dataset.json"
IMAGE_DTYPE = np.float16


def record_id(series: str, harpnum: int, t_rec: datetime) -> str:
    """Identity of a record: ``series:HARPNUM:T_REC`` (T_REC in TAI, to the second)."""
    return f"{series}:{int(harpnum)}:{t_rec:%Y%m%d_%H%M%S}_TAI"


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
        Further per-frame columns (resize scales, physical-unit quantities, truth_*).
    """

    image: np.ndarray
    meta: dict[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """A written dataset version: manifest in memory, images loaded per shard on demand."""

    path: Path
    info: dict[str, Any]
    manifest: pd.DataFrame

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def version(self) -> str:
        return self.info["version"]

    def images(self, rows: Iterable[int] | None = None) -> np.ndarray:
        """Model-space images, float32 (n, 128, 128), in manifest order (or of ``rows``)."""
        manifest = self.manifest if rows is None else self.manifest.iloc[list(rows)]
        out = np.empty((len(manifest), MODEL_SIZE, MODEL_SIZE), dtype=np.float32)
        for shard, group in manifest.groupby("shard", sort=True):
            arr = np.load(self.path / shard, mmap_mode="r")
            positions = np.flatnonzero(manifest["shard"].to_numpy() == shard)
            out[positions] = arr[group["shard_index"].to_numpy()]
        return out

    def iter_shards(self) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Yield (manifest rows, float32 images) shard by shard: bounded memory."""
        for shard, group in self.manifest.groupby("shard", sort=True):
            arr = np.load(self.path / shard, mmap_mode="r")
            yield group, np.asarray(arr[group["shard_index"].to_numpy()], dtype=np.float32)


def write_dataset(
    root: Path,
    name: str,
    version: str,
    records: Iterable[PatchRecord],
    *,
    provenance: dict[str, Any],
    shard_size: int = 1024,
    annotate=None,
    overwrite: bool = False,
) -> Dataset:
    """Write records as dataset ``name``/``version`` under ``root`` and return it.

    Parameters
    ----------
    root : Path
        The datasets folder (``Settings.datasets_dir``).
    records : iterable of PatchRecord
        Consumed once, shard by shard (never all in memory).
    provenance : dict
        How the data was made (source, seed, sizes, code version); stored in dataset.json.
    annotate : callable, optional
        ``annotate(images, rows) -> dict[str, ndarray (n,)]`` adds columns per shard, computed
        on the stored float16 images (``rows``: each record's meta and columns merged), for example
        :func:`sharpseek.physics.compute_parameters`.
    overwrite : bool
        Replace an existing complete version. Without it an existing version is an error.
    """
    final = root / name / version
    if final.exists():
        if not overwrite:
            raise FileExistsError(f"dataset {name}/{version} already exists at {final}")
        shutil.rmtree(final)
    tmp = root / name / f".{version}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # the leftovers of an interrupted write
    tmp.mkdir(parents=True)

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    shard_number = 0
    batch: list[PatchRecord] = []

    def flush() -> None:
        nonlocal shard_number
        if not batch:
            return
        shard = f"images-{shard_number:05d}.npy"
        images = np.stack([_checked_image(r.image, r.meta) for r in batch]).astype(IMAGE_DTYPE)
        np.save(tmp / shard, images)
        shard_rows = []
        for i, rec in enumerate(batch):
            row = {
                "record_id": record_id(rec.meta["series"], rec.meta["harpnum"], rec.meta["t_rec"])
            }
            row.update(rec.meta)
            row.update(rec.columns)
            row["shard"] = shard
            row["shard_index"] = i
            shard_rows.append(row)
        if annotate is not None:
            extra = annotate(images.astype(np.float32), shard_rows)
            for i, row in enumerate(shard_rows):
                row.update({k: _scalar(v[i]) for k, v in extra.items()})
        rows.extend(shard_rows)
        batch.clear()
        shard_number += 1

    for rec in records:
        rid = record_id(rec.meta["series"], rec.meta["harpnum"], rec.meta["t_rec"])
        if rid in seen:
            raise ValueError(f"duplicate record {rid} in dataset {name}/{version}")
        seen.add(rid)
        batch.append(rec)
        if len(batch) >= shard_size:
            flush()
    flush()

    manifest = pd.DataFrame(rows)
    manifest.to_parquet(tmp / MANIFEST, index=False)
    info = {
        "name": name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_records": len(manifest),
        "n_regions": int(manifest["harpnum"].nunique()) if len(manifest) else 0,
        "shard_size": shard_size,
        "image_dtype": np.dtype(IMAGE_DTYPE).name,
        "provenance": provenance,
    }
    (tmp / INFO).write_text(json.dumps(info, indent=2, default=str))
    tmp.rename(final)
    return Dataset(path=final, info=info, manifest=manifest)


def open_dataset(path: Path) -> Dataset:
    """Open a written dataset version folder."""
    path = Path(path)
    if not (path / INFO).is_file() or not (path / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{path} is not a complete sharpseek dataset (missing {INFO} or {MANIFEST})"
        )
    info = json.loads((path / INFO).read_text())
    manifest = pd.read_parquet(path / MANIFEST)
    return Dataset(path=path, info=info, manifest=manifest)


def latest_version(root: Path, name: str) -> Path | None:
    """The most recently written complete version of dataset ``name``, or None."""
    folder = Path(root) / name
    if not folder.is_dir():
        return None
    done = [p for p in folder.iterdir() if p.is_dir() and (p / INFO).is_file()]
    return max(done, key=lambda p: (p / INFO).stat().st_mtime, default=None)


def _checked_image(image: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    image = np.asarray(image)
    if image.shape != (MODEL_SIZE, MODEL_SIZE):
        raise ValueError(
            f"record {meta.get('series')}:{meta.get('harpnum')}:{meta.get('t_rec')}: "
            f"image shape {image.shape}, expected ({MODEL_SIZE}, {MODEL_SIZE})"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError(
            f"record {meta.get('series')}:{meta.get('harpnum')}:{meta.get('t_rec')}: "
            "image has non-finite values"
        )
    return image


def _scalar(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value
