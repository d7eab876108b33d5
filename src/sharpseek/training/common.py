"""The pieces :func:`sharpseek.training.loop.fit` is made of: seeding and RNG state, data
order as a function of (seed, epoch), HARP splits, precision, distributed set-up, checkpoints
written through the store (read back by :mod:`sharpseek.models.checkpoints`), and per-epoch
metrics (CSV, and TensorBoard when it is installed).

Checkpoint layout in the store (local folder or MinIO), one folder per training run::

    models/<kind>/<version>/epoch-0003.pt     every epoch (resumable: model, optimiser, RNG)
    models/<kind>/<version>/last.pt           the latest epoch (what --resume continues)
    models/<kind>/<version>/best.pt           the model the project uses by default
    models/<kind>/<version>/metrics.csv       one row per epoch
    models/<kind>/<version>/samples/...       pictures (GAN sample grids)

``kind`` is ``gan`` or ``encoder``. Every checkpoint is a dict of plain Python values and
tensors (it loads with ``torch.load(weights_only=True)``) holding: ``kind``, ``format``,
``code_version`` (``sharpseek.__version__``), ``preset``, ``dataset`` (name, version),
``config`` (the training config, whole, with the model's config inside it, so the model is
rebuilt from the file alone), ``epoch``, ``metrics`` (this epoch's), ``history`` (all
epochs'), ``best`` (epoch and reason) and the states needed to resume.

Resuming gives the same result as an uninterrupted run: the data order, latent vectors and
augmentations of epoch e are drawn from generators seeded by (seed, e, stream), never from
a global generator carried across epochs, and the model, optimiser and global RNG states
(torch, numpy, python) are saved at each epoch's end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from sharpseek import __version__
from sharpseek.data.exclusion import usable_rows

# Checkpoint keys and reading live with the models (inference loads them without this
# module); RunStore and checkpoint_header use them, and they stay importable from here.
from sharpseek.models.checkpoints import CHECKPOINT_FORMAT, KINDS, checkpoint_key, load_checkpoint

__all__ = [
    "CHECKPOINT_FORMAT",
    "KINDS",
    "PRECISIONS",
    "DistInfo",
    "MixedPrecision",
    "RunStore",
    "capture_rng_state",
    "restore_rng_state",
    "seed_everything",
    "derive_seed",
    "epoch_generator",
    "epoch_batches",
    "split_by_harp",
    "subset_whole_regions",
    "resolve_device",
    "distributed_info",
    "init_distributed",
    "checkpoint_key",
    "load_checkpoint",
    "metrics_csv",
    "TensorBoardLogger",
]

log = logging.getLogger(__name__)

#: Precision choices: auto = bf16 on CUDA, 32-bit elsewhere; bf16 and fp16 need CUDA.
PRECISIONS = ("auto", "32", "bf16", "fp16")

# Streams of randomness, one generator each per epoch (see derive_seed).
STREAM_ORDER = 1
STREAM_LATENT = 2
STREAM_AUGMENT = 3
STREAM_FIXED = 4
STREAM_SPLIT = 5
STREAM_PAIRS = 6


# ---------------------------------------------------------------------------------------------
# Seeds and random state


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (all CUDA devices too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global state, for libraries)
    torch.manual_seed(seed)


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that is a fixed function of ``(seed, *keys)`` (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(seed) % 2**63, *[int(k) for k in keys]]).generate_state(
        2, dtype=np.uint32
    )
    return int(state[0]) << 31 ^ int(state[1])


def epoch_generator(seed: int, epoch: int, stream: int, rank: int = 0) -> torch.Generator:
    """A CPU torch generator for one (seed, epoch, stream[, rank]): resumable by design."""
    return torch.Generator().manual_seed(derive_seed(seed, epoch, stream, rank))


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA) as checkpoint-safe values."""
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (np_state[0], np_state[1].numpy().astype(np.uint32), *[v for v in np_state[2:]])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# Data order and splits


def epoch_batches(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """This rank's batches of epoch ``epoch``: positions into a dataset of length ``n``.

    The order is a permutation drawn from (seed, epoch) alone, cut into global batches of
    ``batch_size`` (an incomplete last batch is dropped); rank r of ``world_size`` takes the
    r-th slice of each global batch, so the union over ranks is the single-process batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of the number of processes {world_size}"
        )
    if n < batch_size:
        raise ValueError(f"the training set holds {n} frames, fewer than one batch of {batch_size}")
    order = torch.randperm(n, generator=epoch_generator(seed, epoch, STREAM_ORDER)).tolist()
    per_rank = batch_size // world_size
    batches = []
    for start in range(0, n - batch_size + 1, batch_size):
        batch = order[start : start + batch_size]
        batches.append(batch[rank * per_rank : (rank + 1) * per_rank])
    return batches


def same_region_partners(
    harpnum: np.ndarray, hours: np.ndarray, window_hours: float
) -> list[np.ndarray]:
    """For each frame, the positions of the frames of its own region within ``window_hours``
    (itself included): the candidates for its positive pair.

    Parameters
    ----------
    harpnum : (n,) int
    hours : (n,) float, frame times [h]
    """
    harpnum, hours = np.asarray(harpnum), np.asarray(hours, dtype=np.float64)
    partners: list[np.ndarray] = [np.empty(0, int)] * len(harpnum)
    for harp in np.unique(harpnum):
        members = np.flatnonzero(harpnum == harp)
        close = np.abs(hours[members, None] - hours[None, members]) <= window_hours + 1e-9
        for i, row in zip(members, close, strict=True):
            partners[i] = members[row]
    return partners


def pick_partners(
    batch: Sequence[int], partners: list[np.ndarray], generator: torch.Generator
) -> list[int]:
    """One random same-region partner for each position of ``batch`` (drawn from
    ``generator``, so the pairs are a function of seed and epoch)."""
    u = torch.rand(len(batch), generator=generator, dtype=torch.float64).numpy()
    return [int(partners[i][int(f * len(partners[i]))]) for i, f in zip(batch, u, strict=True)]


def split_by_harp(
    manifest: pd.DataFrame, holdout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split manifest rows by HARPNUM (never by frame): (training rows, held-out rows).

    A seeded share ``holdout_fraction`` of the regions (at least one when the fraction is
    positive and there are two regions or more) is held out with all its frames.
    """
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    if "harpnum" not in manifest.columns:
        raise ValueError("the dataset manifest has no 'harpnum' column to split by")
    harps = np.unique(manifest["harpnum"].to_numpy())
    rng = np.random.default_rng(derive_seed(seed, STREAM_SPLIT))
    n_hold = int(round(holdout_fraction * len(harps)))
    if holdout_fraction > 0 and len(harps) > 1:
        n_hold = min(max(n_hold, 1), len(harps) - 1)
    held = set(rng.permutation(harps)[:n_hold].tolist())
    is_held = manifest["harpnum"].isin(held).to_numpy()
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def training_split(dataset, holdout_fraction: float, seed: int, batch_size: int):
    """:func:`split_by_harp` of a dataset's manifest, refusing fewer training frames than
    one batch: (training rows, held-out rows). Frames mostly off the disk or NaN
    (:func:`sharpseek.data.exclusion.usable_rows`) are left out of both."""
    train_rows, held_rows = split_by_harp(dataset.manifest, holdout_fraction, seed)
    usable = usable_rows(dataset.manifest)
    train_rows, held_rows = train_rows[usable[train_rows]], held_rows[usable[held_rows]]
    if len(train_rows) < batch_size:
        raise ValueError(
            f"dataset {dataset.name}/{dataset.version}: {len(train_rows)} training frames, "
            f"fewer than one batch of {batch_size}"
        )
    return train_rows, held_rows


def subset_whole_regions(
    manifest: pd.DataFrame, rows: np.ndarray, max_frames: int, seed: int
) -> np.ndarray:
    """At most ``max_frames`` of ``rows``, made of whole regions (all frames of a HARP or
    none), chosen in a seeded order; sorted row numbers."""
    rows = np.asarray(rows)
    if len(rows) <= max_frames:
        return np.sort(rows)
    harp = manifest["harpnum"].to_numpy()[rows]
    harps = np.random.default_rng(derive_seed(seed, STREAM_FIXED, 1)).permutation(np.unique(harp))
    keep, total = [], 0
    counts = pd.Series(harp).value_counts()
    for h in harps:
        if total + counts[h] > max_frames:
            continue
        keep.append(h)
        total += counts[h]
    return np.sort(rows[np.isin(harp, keep)])


# ---------------------------------------------------------------------------------------------
# Devices, precision, processes


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: CUDA when available (this process's local rank under DDP)."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", distributed_info().local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(device)


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the training processes (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def distributed_info() -> DistInfo:
    """Rank and world size from an initialised process group (else a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    return DistInfo(local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment).

    NCCL when CUDA is available, gloo otherwise. Returns True when this call initialised it
    (the caller then destroys it with ``torch.distributed.destroy_process_group()``).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


class MixedPrecision:
    """Autocast and gradient scaling for one precision choice on one device.

    ``auto`` means bf16 on CUDA and 32-bit elsewhere; ``bf16`` and ``fp16`` are refused on
    a CPU (autocast there is slower than fp32 on the machines this project targets).
    """

    def __init__(self, precision: str, device: torch.device):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "32"
        if precision in ("bf16", "fp16") and device.type != "cuda":
            raise ValueError(
                f"precision {precision!r} needs a CUDA device; on {device.type} use '32' or 'auto'"
            )
        self.precision = precision
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active for fp16 only (one per optimiser)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics over processes (identity for a single process)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


# ---------------------------------------------------------------------------------------------
# Checkpoints through the store


def epoch_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


class RunStore:
    """The objects of one training run (``models/<kind>/<version>/``) in an ObjectStore."""

    def __init__(self, store, kind: str, version: str):
        self.store = store
        self.kind = kind
        self.version = version
        self.prefix = checkpoint_key(kind, version, "")

    def key(self, name: str) -> str:
        return self.prefix + name

    def exists(self, name: str) -> bool:
        return self.store.exists(self.key(name))

    def has_checkpoints(self) -> bool:
        return any(info.key.endswith(".pt") for info in self.store.list(self.prefix))

    def save(self, payload: dict[str, Any], names: Sequence[str]) -> list[str]:
        """Serialise ``payload`` once and put it under each of ``names``; return the keys."""
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        keys = []
        for name in names:
            key = self.key(name)
            self.store.put_bytes(
                key, data, metadata={"kind": self.kind, "epoch": str(payload["epoch"])}
            )
            keys.append(key)
        return keys

    def put_bytes(self, name: str, data: bytes) -> str:
        key = self.key(name)
        self.store.put_bytes(key, data)
        return key

    def put_file(self, name: str, path: Path) -> str:
        key = self.key(name)
        self.store.put_file(key, path)
        return key

    def load(self, name: str, kind: str | None = None) -> dict[str, Any]:
        return load_checkpoint(self.key(name), store=self.store, kind=kind or self.kind)

    def delete_all(self) -> int:
        return self.store.delete_prefix(self.prefix.rstrip("/"))


def open_run(
    run: RunStore,
    *,
    resume: bool,
    overwrite: bool,
    config_dict: dict[str, Any],
    dataset,
    info: DistInfo,
) -> dict[str, Any] | None:
    """Prepare a run's folder before training: refuse to clobber an existing run, clear it
    (``overwrite``), or load its ``last.pt`` for ``resume`` after checking that the config
    and dataset match (random-generator states restored).

    Returns the checkpoint to resume from, or None for a fresh start.
    """
    if not run.has_checkpoints():
        return None
    if overwrite:
        if info.is_main:
            run.delete_all()
        return None
    if not resume:
        raise FileExistsError(
            f"{run.store.describe()} already holds checkpoints under {run.prefix}; pass "
            "resume=True (--resume) to continue that run, overwrite=True (--overwrite) to "
            "replace it, or choose another version"
        )
    ckpt = run.load("last.pt")
    check_resumable(ckpt, config_dict, dataset, run.key("last.pt"))
    restore_rng_state(ckpt["rng"])
    log.info("resuming %s from epoch %d", run.prefix, int(ckpt["epoch"]))
    return ckpt


def checkpoint_header(kind: str, preset: str, dataset, config_dict: dict[str, Any]) -> dict:
    """The provenance every checkpoint carries."""
    return {
        "kind": kind,
        "format": CHECKPOINT_FORMAT,
        "code_version": __version__,
        "torch_version": str(torch.__version__),
        "preset": preset,
        "dataset": {"name": dataset.name, "version": dataset.version},
        "config": config_dict,
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def check_resumable(
    ckpt: dict[str, Any], config_dict: dict[str, Any], dataset, source: str
) -> None:
    """Refuse to resume a run with another config (epochs aside) or another dataset."""
    old = {k: v for k, v in ckpt["config"].items() if k != "epochs"}
    new = {k: v for k, v in config_dict.items() if k != "epochs"}
    if _plain(old) != _plain(new):
        changed = sorted(k for k in set(old) | set(new) if _plain(old.get(k)) != _plain(new.get(k)))
        raise ValueError(
            f"cannot resume {source}: its config differs in {changed}; resume with the same "
            "settings (only --epochs may change) or start another version"
        )
    want = {"name": dataset.name, "version": dataset.version}
    if ckpt["dataset"] != want:
        raise ValueError(
            f"cannot resume {source}: it was trained on dataset "
            f"{ckpt['dataset']['name']}/{ckpt['dataset']['version']}, not "
            f"{dataset.name}/{dataset.version}"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Metrics


def metrics_csv(history: Iterable[dict[str, Any]]) -> bytes:
    """The per-epoch metrics as CSV bytes (columns: the union of keys, in first-seen order)."""
    rows = list(history)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return out.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


class TensorBoardLogger:
    """Scalars to TensorBoard when ``torch.utils.tensorboard`` imports; otherwise a no-op."""

    def __init__(self, log_dir: Path | None):
        self.writer = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            log.info("tensorboard is not installed: metrics go to CSV only")
            return
        self.writer = SummaryWriter(str(log_dir))

    def log(self, row: dict[str, Any], epoch: int) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and key != "epoch" and math.isfinite(value):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
