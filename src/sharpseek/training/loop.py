"""The one training loop: :func:`fit` runs a model's :class:`Task` (its networks, optimisers,
step and epoch-end measures) and owns everything around it that both models share.

``fit`` owns: the process group under torchrun (joined at the start, left at the end), the
device and precision, the HARP split, the seeded initial weights, resume from ``last.pt``,
the data order of each epoch, the progress bar, the per-epoch metrics row (CSV and
TensorBoard), the best epoch's bookkeeping and the checkpoints (every epoch, ``best.pt``,
``last.pt``; rank 0 writes). A task owns: the networks and optimisers (``state``, saved under
its checkpoint keys), one optimisation ``step`` on a batch, the epoch-end ``measure``, and the
rule that picks the best epoch.

Epoch e of a run (global batch B, rank r of W processes)::

    extras = task.begin_epoch(e)                  # per-epoch settings, e.g. the learning rate
    batches = task.batches(e, epoch_batches(...)) # a permutation drawn from (seed, e) alone
    for x in DataLoader(batches):                 # x: (B / W, 1, 128, 128) model-space b
        losses += task.step(x)
    row = {epoch, **extras, **mean(losses) over batches and ranks, **task.measure(e), seconds}
    best = task.update_best(row, best)
    save epoch-000e.pt [, best.pt], last.pt, metrics.csv; task.save_artefacts(run, e)

Resuming equals an uninterrupted run, bit for bit: every random draw of epoch e comes from
generators seeded by (seed, e, stream), and the global RNG states (which the DataLoader draws
its base seed from) are saved with the task's state at each epoch's end.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sharpseek.data.dataset import PatchDataset
from sharpseek.training.common import (
    DistInfo,
    MixedPrecision,
    RunStore,
    TensorBoardLogger,
    all_reduce_mean,
    capture_rng_state,
    checkpoint_header,
    distributed_info,
    epoch_batches,
    epoch_name,
    init_distributed,
    metrics_csv,
    open_run,
    resolve_device,
    seed_everything,
    training_split,
)

__all__ = ["Context", "Task", "Fitted", "fit", "optimiser_step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What a task is built from: its config, the data split, and where it runs."""

    config: Any  # the training config (GANTrainConfig, EncoderTrainConfig)
    dataset: Any  # a sharpseek.data.dataset.Dataset
    train_rows: np.ndarray  # manifest rows trained on
    held_rows: np.ndarray  # manifest rows of the held-out HARPs (quality measures)
    device: torch.device
    info: DistInfo
    amp: MixedPrecision

    def ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped for DistributedDataParallel under torch.distributed, else itself."""
        return DDP(module) if self.info.distributed else module


class Task:
    """One model's part of :func:`fit`. Subclasses set ``kind``, ``state`` and ``log_keys``
    and define ``step``, ``measure`` and ``update_best``; the other hooks default to nothing.

    Built as ``Task(context)`` after the initial seeding, so the weights it draws are a
    function of the seed.
    """

    kind: str  # "gan" or "encoder": the checkpoints' kind and folder under models/
    # Checkpoint key -> an object with state_dict()/load_state_dict() (networks, optimisers,
    # gradient scalers): saved at every epoch's end and restored on resume.
    state: dict[str, Any]
    log_keys: tuple[str, ...] = ()  # metrics in the per-epoch log line

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        """Set up epoch ``epoch`` (1-based); returns values for the metrics row."""
        return {}

    def batches(self, epoch: int, batches: list[list[int]]) -> list[list[int]]:
        """The epoch's batches (positions into the training rows), changed if need be."""
        return batches

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch x (b, 1, 128, 128) on the device; returns the
        batch's scalars (averaged over the epoch's batches and the processes)."""
        raise NotImplementedError

    def measure(self, epoch: int) -> dict[str, Any]:
        """Epoch-end measures (epoch 0: the untrained model; an empty dict logs no row)."""
        raise NotImplementedError

    def update_best(self, row: dict[str, Any], best: dict[str, Any] | None) -> dict | None:
        """The best epoch after ``row`` (``{"epoch", ..., "reason"}``), or ``best`` kept."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict[str, Any]:
        """Values every checkpoint carries beside the common header."""
        return {}

    def save_artefacts(self, run: RunStore, epoch: int) -> None:
        """Write pictures of the epoch into the run's folder (rank 0 only)."""

    def release_parallel(self) -> None:
        """Replace each DistributedDataParallel wrapper among the task's attributes by the
        module it wraps. A wrapper holds the process group; one still alive when the group
        is destroyed aborts its process at exit now and then (gloo: "terminate called
        without an active exception", 2 runs in 20 of the two-process test)."""
        wrapped = [name for name, value in vars(self).items() if isinstance(value, DDP)]
        for name in wrapped:
            setattr(self, name, getattr(self, name).module)
        if wrapped:
            gc.collect()  # DDP's reducer sits in reference cycles


T = TypeVar("T", bound=Task)


@dataclass
class Fitted(Generic[T]):
    """The result of :func:`fit`: the trained task and the run's record."""

    task: T
    version: str
    prefix: str  # models/<kind>/<version>/
    history: list[dict[str, Any]]  # one metrics row per epoch, from epoch 0 when measured
    best: dict[str, Any] | None


def optimiser_step(loss: torch.Tensor, optimiser, scaler: torch.amp.GradScaler) -> None:
    """Backpropagate ``loss`` and step ``optimiser`` through its gradient scaler (a pass-
    through unless fp16)."""
    optimiser.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimiser)
    scaler.update()


def fit(
    task_type: type[T],
    config,
    dataset,
    store,
    *,
    version: str,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    tensorboard_dir: Path | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> Fitted[T]:
    """Train ``task_type(context)`` for ``config.epochs`` epochs on ``dataset``, with a
    checkpoint per epoch in ``store`` under ``models/<task_type.kind>/<version>/``.

    Parameters
    ----------
    task_type : a :class:`Task` subclass
    config : a training config with ``preset``, ``seed``, ``epochs``, ``batch_size``,
        ``holdout_fraction``, ``precision``, ``num_workers`` and ``to_dict()``.
    resume : bool
        Continue from ``last.pt`` of this version (same config, ``epochs`` aside, and the same
        dataset); the result equals an uninterrupted run's.
    overwrite : bool
        Delete the version's objects first. Without ``resume`` or ``overwrite`` an existing
        version is an error.
    device : str or torch.device, optional
        Default: CUDA when available (this process's local rank under DDP), else CPU.
    on_epoch_end : callable(epoch, metrics), optional
        Called after each epoch's checkpoint is written (e.g. to stop a run early).

    Under torchrun (WORLD_SIZE > 1) ``fit`` joins the process group and leaves it at the end;
    a process group the caller initialised stays up. Only rank 0 writes to the store.
    """
    with _process_group():
        info = distributed_info()
        device = resolve_device(device)
        amp = MixedPrecision(config.precision, device)
        run = RunStore(store, task_type.kind, version)
        train_rows, held_rows = training_split(
            dataset, config.holdout_fraction, config.seed, config.batch_size
        )
        context = Context(config, dataset, train_rows, held_rows, device, info, amp)
        seed_everything(config.seed)  # the initial weights
        task = task_type(context)
        history, best, start = _open(task, run, context, resume=resume, overwrite=overwrite)

        with TensorBoardLogger(tensorboard_dir if info.is_main else None) as tb:
            if start == 0 and (measures := task.measure(0)):  # epoch 0: the untrained model
                history.append({"epoch": 0, **measures})
                tb.log(history[-1], 0)
            images = PatchDataset(dataset, rows=train_rows)
            for epoch in range(start + 1, config.epochs + 1):
                t0 = time.perf_counter()
                row = {"epoch": epoch, **task.begin_epoch(epoch)}
                row.update(_train_epoch(task, images, context, epoch, progress))
                row.update(task.measure(epoch))
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                best = task.update_best(row, best)
                if info.is_main:
                    _save_epoch(task, run, context, history, best)
                    tb.log(row, epoch)
                    log.info("%s epoch %d: %s", task.kind, epoch, _brief(row, task.log_keys))
                if info.distributed:
                    dist.barrier()
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
        task.release_parallel()
        if info.distributed:
            dist.barrier()  # every rank's wrappers gone before the group is
    return Fitted(task, version, run.prefix, history, best)


@contextlib.contextmanager
def _process_group():
    """Join the process group torchrun describes for the block (a no-op for one process, or
    when the caller initialised one)."""
    started = init_distributed()
    try:
        yield
    finally:
        if started:
            dist.destroy_process_group()


def _open(task: Task, run: RunStore, context: Context, *, resume: bool, overwrite: bool):
    """(history, best, last epoch done): empty for a fresh run, else the task's state, the
    record and the global RNG states of ``last.pt`` restored."""
    ckpt = open_run(
        run,
        resume=resume,
        overwrite=overwrite,
        config_dict=context.config.to_dict(),
        dataset=context.dataset,
        info=context.info,
    )
    history, best, start = [], None, 0
    if ckpt is not None:
        for name, obj in task.state.items():
            obj.load_state_dict(ckpt[name])
        history, best, start = list(ckpt["history"]), ckpt["best"], int(ckpt["epoch"])
    if context.info.distributed:
        dist.barrier()
    return history, best, start


def _train_epoch(
    task: Task, images: PatchDataset, context: Context, epoch: int, progress: bool
) -> dict[str, float]:
    """One pass over this rank's batches of epoch ``epoch``: the mean of each scalar the
    task's step returns, over the batches and the processes."""
    config, info = context.config, context.info
    batches = epoch_batches(
        len(context.train_rows),
        config.batch_size,
        config.seed,
        epoch,
        rank=info.rank,
        world_size=info.world_size,
    )
    batches = task.batches(epoch, batches)
    loader = DataLoader(
        images,
        batch_sampler=batches,
        num_workers=config.num_workers,
        pin_memory=context.device.type == "cuda",
    )
    bar = tqdm(
        loader,
        desc=f"{task.kind} epoch {epoch}/{config.epochs}",
        leave=False,
        disable=not (progress and info.is_main),
    )
    for obj in task.state.values():
        if isinstance(obj, torch.nn.Module):
            obj.train()
    sums: dict[str, float] = {}
    for x in bar:
        scalars = task.step(x.to(context.device, non_blocking=True))
        for key, value in scalars.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix({k: f"{v:.3f}" for k, v in scalars.items() if k.startswith("loss")})
    return all_reduce_mean({k: v / len(batches) for k, v in sums.items()}, info)


def _save_epoch(task: Task, run: RunStore, context: Context, history: list[dict], best) -> None:
    """The checkpoint of the epoch just ended (``history[-1]``) as ``epoch-<n>.pt``,
    ``best.pt`` when it is the best, then ``last.pt``; the metrics CSV; the task's pictures."""
    config, dataset, row = context.config, context.dataset, history[-1]
    epoch = row["epoch"]
    payload = {
        **checkpoint_header(task.kind, config.preset, dataset, config.to_dict()),
        **task.checkpoint_extras(),
        "epoch": epoch,
        "metrics": row,
        "history": history,
        "best": best,
        **{name: obj.state_dict() for name, obj in task.state.items()},
        "rng": capture_rng_state(),
        "splits": {"holdout_harpnums": _harps(dataset, context.held_rows)},
    }
    names = [epoch_name(epoch)]
    if best is not None and best["epoch"] == epoch:
        names.append("best.pt")
    run.save(payload, names + ["last.pt"])  # last.pt last: always a complete epoch
    run.put_bytes("metrics.csv", metrics_csv(history))
    task.save_artefacts(run, epoch)


def _harps(dataset, rows) -> list[int]:
    return sorted(int(h) for h in np.unique(dataset.manifest["harpnum"].to_numpy()[rows]))


def _brief(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={row[k]:.3g}" for k in keys if isinstance(row.get(k), int | float))
