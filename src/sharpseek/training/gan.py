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

import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sharpseek.evaluate import QUALITY_PARAMETERS, parameter_distances
from sharpseek.models.gan import (
    GAN_PRESETS,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    generator_loss,
)
from sharpseek.physics import compute_parameters
from sharpseek.training.common import (
    STREAM_FIXED,
    STREAM_LATENT,
    RunStore,
    derive_seed,
    epoch_generator,
)
from sharpseek.training.loop import Context, Task, fit, optimiser_step

__all__ = [
    "GANTrainConfig",
    "GAN_TRAIN_PRESETS",
    "gan_train_config",
    "train_gan",
    "GANRun",
    "GANTraining",
]


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
    every epoch into ``store`` under ``models/gan/<version>/`` (default version
    ``<preset>-seed<seed>``).

    ``resume``, ``overwrite``, ``device``, ``on_epoch_end`` and distributed training (both
    networks in DistributedDataParallel) work as :func:`sharpseek.training.loop.fit` says.
    """
    fitted = fit(
        GANTraining,
        config,
        dataset,
        store,
        version=version or default_version(config),
        resume=resume,
        overwrite=overwrite,
        device=device,
        progress=progress,
        tensorboard_dir=tensorboard_dir,
        on_epoch_end=on_epoch_end,
    )
    G, D = fitted.task.G, fitted.task.D
    return GANRun(fitted.version, fitted.prefix, fitted.history, fitted.best, G, D)


class GANTraining(Task):
    """The GAN in :func:`~sharpseek.training.loop.fit`: G, D, their Adam optimisers, the
    step, and the measures on fixed sets (the same every epoch, drawn from the seed)."""

    kind = "gan"
    log_keys = ("loss_d", "loss_g", "acc_real", "acc_fake", "w1_mean", "seconds")

    def __init__(self, context: Context):
        config, device = context.config, context.device
        self.config, self.context = config, context
        self.G = Generator(config.model).to(device)
        self.D = Discriminator(config.model).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr, betas=config.betas)
        self.scaler_g, self.scaler_d = context.amp.scaler(), context.amp.scaler()
        self.state = {
            "generator": self.G,
            "discriminator": self.D,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "scaler_g": self.scaler_g,
            "scaler_d": self.scaler_d,
        }
        self.G_train, self.D_train = context.ddp(self.G), context.ddp(self.D)

        # Fixed evaluation sets: functions of the seed alone.
        g_fixed = torch.Generator().manual_seed(derive_seed(config.seed, STREAM_FIXED))
        self.z_fixed = torch.randn(config.fixed_size, config.model.latent_dim, generator=g_fixed)
        rng = np.random.default_rng(derive_seed(config.seed, STREAM_FIXED, 2))
        train_rows, held_rows = context.train_rows, context.held_rows
        fixed_rows = np.sort(
            rng.choice(train_rows, size=min(config.fixed_size, len(train_rows)), replace=False)
        )
        real = context.dataset.images(fixed_rows)  # (n, 128, 128)
        self.real_fixed = torch.from_numpy(real).unsqueeze(1)  # (n, 1, 128, 128)
        quality_rows = held_rows if len(held_rows) >= 2 else train_rows
        self.real_table = context.dataset.manifest.iloc[quality_rows]
        self.samples = None  # G(z_fixed) of the last measure, (fixed_size, 128, 128)

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        self.z_gen = epoch_generator(self.config.seed, epoch, STREAM_LATENT)
        return {}

    def step(self, real: torch.Tensor) -> dict[str, float]:
        """D on real and G(z) (detached), then G against the updated D; real (b, 1, 128, 128)
        is this rank's slice of the global batch, and so is z."""
        config, info, amp = self.config, self.context.info, self.context.amp
        b = config.batch_size // info.world_size
        z = torch.randn(config.batch_size, config.model.latent_dim, generator=self.z_gen)
        z = z[info.rank * b : (info.rank + 1) * b].to(real.device)  # (b, latent_dim)
        with amp.autocast():
            fake = self.G_train(z)  # (b, 1, 128, 128)
            logits = self.D_train(torch.cat([real, fake.detach()]))  # (2b,): one pass for DDP
            loss_d = discriminator_loss(logits[:b], logits[b:])
        optimiser_step(loss_d, self.opt_d, self.scaler_d)
        with amp.autocast():
            # D's own weights: its gradients here are discarded (zeroed before D's next
            # step), and bypassing the DDP wrapper keeps them out of the all-reduce.
            loss_g = generator_loss(self.D(fake))
        optimiser_step(loss_g, self.opt_g, self.scaler_g)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    @torch.no_grad()
    def measure(self, epoch: int) -> dict[str, Any]:
        """D's accuracies on the fixed sets and the parameter distances of G(z_fixed) to the
        held-out frames (in eval mode, then back to train mode); keeps G(z_fixed) for the
        epoch's sample grid."""
        G, D, device, amp = self.G, self.D, self.context.device, self.context.amp
        G.eval()
        D.eval()
        fakes, fake_logits, real_logits = [], [], []
        for z in self.z_fixed.split(256):
            with amp.autocast():
                f = G(z.to(device))  # (256, 1, 128, 128)
                fake_logits.append(D(f).float().cpu())
            fakes.append(f.float().cpu())
        for x in self.real_fixed.split(256):
            with amp.autocast():
                real_logits.append(D(x.to(device)).float().cpu())
        self.samples = torch.cat(fakes)[:, 0].numpy()  # (fixed_size, 128, 128)
        metrics = {
            "acc_real": float((torch.cat(real_logits) > 0).float().mean()),
            "acc_fake": float((torch.cat(fake_logits) < 0).float().mean()),
        }
        params = compute_parameters(self.samples.astype(np.float64))
        metrics.update(parameter_distances(params, self.real_table, QUALITY_PARAMETERS))
        G.train()
        D.train()
        return metrics

    def update_best(self, row: dict[str, Any], best: dict[str, Any] | None) -> dict | None:
        """The paper's choice: the lowest ``acc_fake`` within the first ``best_fraction`` of
        the epochs; ties go to the later epoch."""
        c = self.config
        eligible = row["epoch"] <= c.best_window
        if not eligible or (best is not None and row["acc_fake"] > best["acc_fake"]):
            return best
        return {
            "epoch": row["epoch"],
            "acc_fake": row["acc_fake"],
            "reason": (
                f"lowest discriminator accuracy on the {c.fixed_size} fixed generated "
                f"images ({row['acc_fake']:.3f}) among epochs 1-{c.best_window}, the "
                f"first {c.best_fraction:g} of {c.epochs} (the paper's choice; "
                "ties go to the later epoch)"
            ),
        }

    def save_artefacts(self, run: RunStore, epoch: int) -> None:
        _save_grid(run, self.samples[: self.config.grid_size], epoch)


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
