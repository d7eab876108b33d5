"""GAN training, the paper's way (SCIENCE.md "GAN"): Adam (lr 5e-4, betas 0.9, 0.999),
batch 32, D trained on G's output detached, BCE on logits.

One step (global batch B; rank r of W processes takes the r-th slice of it)::

    fake = G(z)                                         z ~ N(0, I) from the (seed, epoch) generator
    L_D = [BCE(D(real), 1) + BCE(D(fake.detach()), 0)] / 2  -> Adam step on D only
    L_G = BCE(D(fake), 1)                               -> Adam step on G only (D not updated)

At each epoch's end, on FIXED sets (the same every epoch, drawn from the seed):
``acc_real`` = share of ``fixed_size`` real training patches D calls real (logit > 0),
``acc_fake`` = share of G(z_fixed) D calls generated (logit < 0), the per-parameter distances
between G(z_fixed) and held-out real frames (:func:`sharpseek.evaluate.parameter_distances`),
and a sample grid. Epoch 0 in the metrics is the untrained generator.

The default ("best") checkpoint is the paper's choice: the epoch with the lowest ``acc_fake``
among the first ``best_fraction`` (one half) of the epochs; ties go to the later epoch. Its
reason is written into the checkpoint and the run's result.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sharpseek.dataset import PatchDataset
from sharpseek.evaluate import QUALITY_PARAMETERS, parameter_distances
from sharpseek.models.gan import (
    GAN_PRESETS,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    generator_loss,
)
from sharpseek.training.common import (
    STREAM_FIXED,
    STREAM_LATENT,
    MixedPrecision,
    RunStore,
    TensorBoardLogger,
    all_reduce_mean,
    capture_rng_state,
    checkpoint_header,
    derive_seed,
    distributed_info,
    epoch_batches,
    epoch_generator,
    epoch_name,
    load_checkpoint,
    metrics_csv,
    open_run,
    resolve_device,
    seed_everything,
    training_split,
)

__all__ = [
    "GANTrainConfig",
    "GAN_TRAIN_PRESETS",
    "gan_train_config",
    "train_gan",
    "GANRun",
    "load_generator",
    "load_discriminator",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GANTrainConfig:
    """Everything a GAN run depends on; stored whole in each of its checkpoints."""

    preset: str = "paper"
    model: GANConfig = field(default_factory=GANConfig)
    epochs: int = 200
    batch_size: int = 32  # global batch (split across processes under DDP)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    holdout_fraction: float = 0.2  # share of HARPs never trained on (quality measures)
    fixed_size: int = 256  # fixed latent vectors / real patches measured at each epoch's end
    grid_size: int = 16  # generated samples in each epoch's grid picture
    best_fraction: float = 0.5  # "best" = lowest acc_fake within this leading share of epochs
    precision: str = "auto"  # auto (bf16 on CUDA, 32 on CPU), 32, bf16, fp16
    num_workers: int = 0  # DataLoader worker processes

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", GANConfig.from_dict(self.model))
        for name in ("epochs", "batch_size", "fixed_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"GANTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.best_fraction <= 1:
            raise ValueError(
                f"GANTrainConfig.best_fraction must be in (0, 1], got {self.best_fraction}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANTrainConfig:
        return cls(**data)

    @property
    def best_window(self) -> int:
        """The last epoch eligible as "best" (the first half of training by default)."""
        return max(1, math.floor(self.epochs * self.best_fraction))


#: Training presets. ``tiny``: the half-width GAN, 10 epochs (about 2 minutes on 2 CPU cores
#: over the 2,880 training frames of the synthetic demo data).
GAN_TRAIN_PRESETS: dict[str, GANTrainConfig] = {
    "paper": GANTrainConfig(preset="paper", model=GAN_PRESETS["paper"]),
    "tiny": GANTrainConfig(preset="tiny", model=GAN_PRESETS["tiny"], epochs=10, fixed_size=128),
}


def gan_train_config(preset: str, *, model: dict[str, Any] | None = None, **overrides: Any):
    """The GAN training config of a preset, with overrides of training fields and, through
    ``model``, of :class:`GANConfig` fields (e.g. ``model={"width": 0.25}``)."""
    if preset not in GAN_TRAIN_PRESETS:
        raise ValueError(
            f"unknown GAN training preset {preset!r}; choose one of {sorted(GAN_TRAIN_PRESETS)}"
        )
    base = GAN_TRAIN_PRESETS[preset]
    if model:
        overrides["model"] = replace(base.model, **model)
    return replace(base, **overrides)


@dataclass
class GANRun:
    """The result of :func:`train_gan`."""

    version: str
    prefix: str  # models/gan/<version>/
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    generator: Generator
    discriminator: Discriminator


def default_version(config) -> str:
    return f"{config.preset}-seed{config.seed}"


def train_gan(
    config: GANTrainConfig,
    dataset,
    store,
    *,
    version: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    tensorboard_dir: Path | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> GANRun:
    """Train the GAN on ``dataset`` (a :class:`sharpseek.dataset.Dataset`), checkpointing
    every epoch into ``store`` under ``models/gan/<version>/``.

    Parameters
    ----------
    version : str, optional
        The run's name (default ``<preset>-seed<seed>``).
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

    Under ``torch.distributed`` (initialised by the caller, or by
    :func:`sharpseek.training.common.init_distributed` under torchrun) both networks are
    wrapped in DistributedDataParallel; only rank 0 writes to the store.
    """
    info = distributed_info()
    device = resolve_device(device)
    amp = MixedPrecision(config.precision, device)
    version = version or default_version(config)
    run = RunStore(store, "gan", version)
    config_dict = config.to_dict()

    train_rows, held_rows = training_split(
        dataset, config.holdout_fraction, config.seed, config.batch_size
    )

    seed_everything(config.seed)  # the initial weights
    G = Generator(config.model).to(device)
    D = Discriminator(config.model).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=config.betas)
    scaler_g, scaler_d = amp.scaler(), amp.scaler()

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start = 0
    ckpt = open_run(
        run,
        resume=resume,
        overwrite=overwrite,
        config_dict=config_dict,
        dataset=dataset,
        info=info,
    )
    if ckpt is not None:
        G.load_state_dict(ckpt["generator"])
        D.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        scaler_g.load_state_dict(ckpt["scaler_g"])
        scaler_d.load_state_dict(ckpt["scaler_d"])
        history, best, start = list(ckpt["history"]), ckpt["best"], int(ckpt["epoch"])
    if info.distributed:
        torch.distributed.barrier()

    # Fixed evaluation sets: functions of the seed alone.
    g_fixed = torch.Generator().manual_seed(derive_seed(config.seed, STREAM_FIXED))
    z_fixed = torch.randn(config.fixed_size, config.model.latent_dim, generator=g_fixed)
    rng = np.random.default_rng(derive_seed(config.seed, STREAM_FIXED, 2))
    fixed_rows = np.sort(
        rng.choice(train_rows, size=min(config.fixed_size, len(train_rows)), replace=False)
    )
    real_fixed = torch.from_numpy(dataset.images(fixed_rows)).unsqueeze(1)  # (n, 1, 128, 128)
    quality_rows = held_rows if len(held_rows) >= 2 else train_rows
    real_table = dataset.manifest.iloc[quality_rows]

    def measure(epoch: int) -> tuple[dict[str, Any], np.ndarray]:
        metrics, images = _epoch_end_measures(G, D, z_fixed, real_fixed, real_table, device, amp)
        return {"epoch": epoch, **metrics}, images

    tb = TensorBoardLogger(tensorboard_dir) if info.is_main else TensorBoardLogger(None)
    if start == 0:
        row, _ = measure(0)
        history.append(row)
        tb.log(row, 0)

    G_train = DDP(G) if info.distributed else G
    D_train = DDP(D) if info.distributed else D
    images = PatchDataset(dataset, rows=train_rows)
    per_rank = config.batch_size // info.world_size

    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        batches = epoch_batches(
            len(train_rows),
            config.batch_size,
            config.seed,
            epoch,
            rank=info.rank,
            world_size=info.world_size,
        )
        loader = DataLoader(
            images,
            batch_sampler=batches,
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
        )
        z_gen = epoch_generator(config.seed, epoch, STREAM_LATENT)
        G.train()
        D.train()
        sums = {"loss_d": 0.0, "loss_g": 0.0}
        bar = tqdm(
            loader,
            desc=f"gan epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not (progress and info.is_main),
        )
        for real in bar:
            real = real.to(device, non_blocking=True)
            z = torch.randn(config.batch_size, config.model.latent_dim, generator=z_gen)
            z = z[info.rank * per_rank : (info.rank + 1) * per_rank].to(device)
            with amp.autocast():
                fake = G_train(z)  # (b, 1, 128, 128)
                logits = D_train(torch.cat([real, fake.detach()]))  # (2b,): one pass for DDP
                loss_d = discriminator_loss(logits[:per_rank], logits[per_rank:])
            opt_d.zero_grad(set_to_none=True)
            scaler_d.scale(loss_d).backward()
            scaler_d.step(opt_d)
            scaler_d.update()
            with amp.autocast():
                # D's own weights: its gradients here are discarded (zeroed before D's next
                # step), and bypassing the DDP wrapper keeps them out of the all-reduce.
                loss_g = generator_loss(D(fake))
            opt_g.zero_grad(set_to_none=True)
            scaler_g.scale(loss_g).backward()
            scaler_g.step(opt_g)
            scaler_g.update()
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        losses = all_reduce_mean({k: v / len(batches) for k, v in sums.items()}, info)
        row, grid = measure(epoch)
        row = {"epoch": epoch, **losses, **{k: v for k, v in row.items() if k != "epoch"}}
        row["seconds"] = time.perf_counter() - t0
        history.append(row)

        if epoch <= config.best_window and (best is None or row["acc_fake"] <= best["acc_fake"]):
            best = {
                "epoch": epoch,
                "acc_fake": row["acc_fake"],
                "reason": (
                    f"lowest discriminator accuracy on the {config.fixed_size} fixed generated "
                    f"images ({row['acc_fake']:.3f}) among epochs 1-{config.best_window}, the "
                    f"first {config.best_fraction:g} of {config.epochs} (the paper's choice; "
                    "ties go to the later epoch)"
                ),
            }
        if info.is_main:
            payload = {
                **checkpoint_header("gan", config.preset, dataset, config_dict),
                "epoch": epoch,
                "metrics": row,
                "history": history,
                "best": best,
                "generator": G.state_dict(),
                "discriminator": D.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "scaler_g": scaler_g.state_dict(),
                "scaler_d": scaler_d.state_dict(),
                "rng": capture_rng_state(),
                "splits": {"holdout_harpnums": _harps(dataset, held_rows)},
            }
            names = [epoch_name(epoch)]
            if best is not None and best["epoch"] == epoch:
                names.append("best.pt")
            run.save(payload, names + ["last.pt"])  # last.pt last: always a complete epoch
            run.put_bytes("metrics.csv", metrics_csv(history))
            _save_grid(run, grid[: config.grid_size], epoch)
            tb.log(row, epoch)
            log.info("gan epoch %d: %s", epoch, _brief(row))
        if info.distributed:
            torch.distributed.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    tb.close()
    return GANRun(version, run.prefix, history, best, G, D)


@torch.no_grad()
def _epoch_end_measures(G, D, z_fixed, real_fixed, real_table, device, amp):
    """D accuracies on the fixed sets and parameter distances of G(z_fixed) to real frames."""
    from sharpseek.physics import compute_parameters

    G.eval()
    D.eval()
    fakes, fake_logits, real_logits = [], [], []
    for z in z_fixed.split(256):
        with amp.autocast():
            f = G(z.to(device))
            fake_logits.append(D(f).float().cpu())
        fakes.append(f.float().cpu())
    for x in real_fixed.split(256):
        with amp.autocast():
            real_logits.append(D(x.to(device)).float().cpu())
    fake = torch.cat(fakes)[:, 0].numpy()  # (n, 128, 128)
    metrics = {
        "acc_real": float((torch.cat(real_logits) > 0).float().mean()),
        "acc_fake": float((torch.cat(fake_logits) < 0).float().mean()),
    }
    params = compute_parameters(fake.astype(np.float64))
    metrics.update(parameter_distances(params, real_table, QUALITY_PARAMETERS))
    G.train()
    D.train()
    return metrics, fake


def _save_grid(run: RunStore, images: np.ndarray, epoch: int) -> None:
    from sharpseek.plotting import magnetogram_grid

    with tempfile.TemporaryDirectory() as tmp:
        path = magnetogram_grid(
            images,
            Path(tmp) / "grid.png",
            ncols=8,
            suptitle=f"GAN samples, epoch {epoch} (fixed latent vectors)",
        )
        run.put_file(f"samples/epoch-{epoch:04d}.png", path)


def _harps(dataset, rows) -> list[int]:
    return sorted(int(h) for h in np.unique(dataset.manifest["harpnum"].to_numpy()[rows]))


def _brief(row: dict[str, Any]) -> str:
    keys = ("loss_d", "loss_g", "acc_real", "acc_fake", "w1_mean", "seconds")
    return ", ".join(f"{k}={row[k]:.3g}" for k in keys if k in row)


# ---------------------------------------------------------------------------------------------
# Inference: rebuild from the file alone


def load_generator(source, *, store=None, device: str | torch.device = "cpu") -> Generator:
    """The generator of a GAN checkpoint (path or store key), in eval mode."""
    ckpt = load_checkpoint(source, store=store, kind="gan")
    config = GANTrainConfig.from_dict(ckpt["config"])
    G = Generator(config.model)
    G.load_state_dict(ckpt["generator"])
    return G.to(device).eval()


def load_discriminator(source, *, store=None, device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator of a GAN checkpoint (path or store key), in eval mode."""
    ckpt = load_checkpoint(source, store=store, kind="gan")
    config = GANTrainConfig.from_dict(ckpt["config"])
    D = Discriminator(config.model)
    D.load_state_dict(ckpt["discriminator"])
    return D.to(device).eval()
