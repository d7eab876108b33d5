"""GAN training, the paper's way by default (SCIENCE.md "GAN"): Adam (lr 5e-4, betas 0.9,
0.999), batch 32, D trained on G's output detached, BCE on logits; and the switchable options
of issue 17 (:class:`GANTrainConfig`: ``loss``, ``r1_gamma``, ``ema_decay``, ``augment``;
the networks' own options live in :class:`sharpseek.models.gan.GANConfig`).

One step (global batch B; rank r of W processes takes the r-th slice of it)::

    fake = G(z)                                         z ~ N(0, I) from the (seed, epoch) generator
    T = translate(...) if augment else identity         one random shift per image, both sets
    L_D = loss_D(D(T(real)), D(T(fake.detach())))       (+ R1 on T(real) if r1_gamma > 0)
                                                        -> Adam step on D only
    L_G = loss_G(D(T(fake)))                            -> Adam step on G only (D not updated)
    G_ema <- ema_decay * G_ema + (1 - ema_decay) * G    if ema_decay > 0

``augment="translation"`` is differentiable augmentation (Zhao et al. 2020, DiffAugment):
every image D sees, real or generated, is shifted by up to 1/8 of its size with zeros (b = 0,
no field) filled in, so D cannot memorise the few thousand training frames; G learns the
unshifted images because the same shifts apply to both sets. With ``ema_decay`` > 0 the
measures, the sample grids and the checkpoint's ``generator`` (what every user of the
checkpoint loads) are the moving average; the trained weights are kept as
``generator_train`` for resuming.

At each epoch's end, on FIXED sets (the same every epoch, drawn from the seed):
``acc_real`` = share of ``fixed_size`` real training patches D calls real (logit > 0),
``acc_fake`` = share of G(z_fixed) D calls generated (logit < 0), the per-parameter distances
between G(z_fixed) and held-out real frames
(:func:`sharpseek.science.evaluate.parameter_distances`), and a sample grid. Epoch 0 in the metrics
is the untrained generator.

The default ("best") checkpoint is the paper's choice: the epoch with the lowest ``acc_fake``
among the first ``best_fraction`` (one half) of the epochs; ties go to the later epoch. Its
reason is written into the checkpoint and the run's result.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from sharpseek.models.gan import (
    GAN_LOSSES,
    GAN_PRESETS,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    generator_loss,
    r1_penalty,
)
from sharpseek.physics.definitions import MODEL_SIZE
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.evaluate import QUALITY_PARAMETERS, parameter_distances
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.training.codes import (
    CODE_MARGINALS,
    CodeTargets,
    balance_loss,
    balance_scale,
    code_loss,
)
from sharpseek.training.common import (
    STREAM_FIXED,
    STREAM_LATENT,
    RunStore,
    derive_seed,
    epoch_generator,
)
from sharpseek.training.loop import Context, Task, fit, optimiser_step

__all__ = [
    "GAN_AUGMENTS",
    "GAN_LR_DECAYS",
    "GANTrainConfig",
    "GAN_TRAIN_PRESETS",
    "gan_train_config",
    "train_gan",
    "GANRun",
    "GANTraining",
]


GAN_AUGMENTS = ("none", "translation")
#: How the learning rates change over a run (:meth:`GANTrainConfig.lr_factor`).
GAN_LR_DECAYS = ("none", "linear")


@dataclass(frozen=True)
class GANTrainConfig:
    """Everything a GAN run depends on; stored whole in each of its checkpoints."""

    preset: str = "paper"
    model: GANConfig = field(default_factory=GANConfig)
    epochs: int = 200
    batch_size: int = 32  # global batch (split across processes under DDP)
    lr: float = 5e-4  # Adam's learning rate for G (and for D unless lr_d is given)
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    holdout_fraction: float = 0.2  # share of HARPs never trained on (quality measures)
    fixed_size: int = 256  # fixed latent vectors / real patches measured at each epoch's end
    grid_size: int = 16  # generated samples in each epoch's grid picture
    best_fraction: float = 0.5  # "best" = lowest acc_fake within this leading share of epochs
    precision: str = "auto"  # auto (bf16 on CUDA, 32 on CPU), 32, bf16, fp16
    num_workers: int = 0  # DataLoader worker processes
    # --- issue 17's options; the defaults are the paper's recipe
    loss: str = "bce"  # "bce" (paper eqs. 1-2) or "hinge"
    lr_d: float | None = None  # D's own learning rate (two time-scale updates); None: lr
    r1_gamma: float = 0.0  # R1 gradient penalty weight on real images (0: off)
    ema_decay: float = 0.0  # exponential moving average of G's weights (0: off)
    augment: str = "none"  # "none" or "translation" (differentiable, on all D inputs)
    # physical codes (sharpseek.training.codes): z[:, :k] asks for these parameters, k =
    # model.codes; L_G + code_weight * L_code (0: off)
    code_weight: float = 0.0
    code_parameters: tuple[str, ...] = ("tuf", "psep", "r")
    code_marginals: str = "gaussian"  # or "empirical": the data's quantiles (codes.py)
    # flux balance: L_G + balance_weight * L_balance, the generated images' flux imbalance
    # over the training frames' (codes.py; 0: off)
    balance_weight: float = 0.0
    # "linear": both learning rates fall linearly over the second half of the epochs
    # (:meth:`lr_factor`); "none": constant (the paper's)
    lr_decay: str = "none"

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "code_parameters", tuple(self.code_parameters))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", GANConfig.from_dict(self.model))
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"GANTrainConfig.loss must be one of {GAN_LOSSES}, got {self.loss!r}")
        if self.augment not in GAN_AUGMENTS:
            raise ValueError(
                f"GANTrainConfig.augment must be one of {GAN_AUGMENTS}, got {self.augment!r}"
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"GANTrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.code_marginals not in CODE_MARGINALS:
            raise ValueError(
                f"GANTrainConfig.code_marginals must be one of {CODE_MARGINALS}, "
                f"got {self.code_marginals!r}"
            )
        if self.lr_decay not in GAN_LR_DECAYS:
            raise ValueError(
                f"GANTrainConfig.lr_decay must be one of {GAN_LR_DECAYS}, got {self.lr_decay!r}"
            )
        if self.balance_weight < 0:
            raise ValueError(
                f"GANTrainConfig.balance_weight must be >= 0, got {self.balance_weight}"
            )
        if self.code_weight < 0:
            raise ValueError(f"GANTrainConfig.code_weight must be >= 0, got {self.code_weight}")
        if self.code_weight > 0 and self.model.codes != len(self.code_parameters):
            raise ValueError(
                f"GANTrainConfig.code_weight > 0 needs model.codes = {len(self.code_parameters)} "
                f"(one latent coordinate per code parameter), got {self.model.codes}"
            )
        if self.r1_gamma < 0:
            raise ValueError(f"GANTrainConfig.r1_gamma must be >= 0, got {self.r1_gamma}")
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
        """A config from its dict; fields it lacks (runs older than an option) take the
        paper's values."""
        return cls(**data)

    def lr_factor(self, epoch: int) -> float:
        """The learning rates' factor during epoch ``epoch`` (1-based): 1 throughout without
        decay; with ``lr_decay="linear"`` 1 over the first half of the epochs, then falling
        by equal steps to 1 / (E - E // 2 + 1) in the last (E = epochs; the schedule of
        CycleGAN, which ends a GAN's run where its networks move least)."""
        half = self.epochs // 2
        if self.lr_decay == "none" or epoch <= half:
            return 1.0
        return (self.epochs - epoch + 1) / (self.epochs - half + 1)

    @property
    def best_window(self) -> int:
        """The last epoch eligible as "best" (the first half of training by default)."""
        return max(1, math.floor(self.epochs * self.best_fraction))


#: Training presets. ``tiny``: the half-width GAN with physical codes, 16 epochs (about 5
#: minutes on 2 CPU cores over the 2,880 training frames of the synthetic demo data; at 10
#: the second convolution had not yet paid off: docs/training.md).
GAN_TRAIN_PRESETS: dict[str, GANTrainConfig] = {
    "paper": GANTrainConfig(preset="paper", model=GAN_PRESETS["paper"]),
    "tiny": GANTrainConfig(
        preset="tiny",
        model=GAN_PRESETS["tiny"],
        epochs=16,
        fixed_size=128,
        lr=1e-3,  # G as fast as D: 900 steps are few (training.md, "G's learning rate")
        lr_d=1e-3,
        betas=(0.0, 0.9),
        loss="hinge",
        # off since the codes: the average lags a fast-moving G; 0.98, adopted for one fresh
        # demo, missed one generator target more than the preset (training.md)
        ema_decay=0.0,
        code_weight=3.0,
        # R's code cost more realism than it gave (training.md, "G's learning rate and R's code")
        code_parameters=("tuf", "psep"),
        # the data's own quantiles: a Gaussian of log PSEP asks for a median 0.86x the
        # frames', and the 16-epoch generator draws what it is asked (training.md, "What the
        # PSEP code asks for")
        code_marginals="empirical",
    ),
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
    """Train the GAN on ``dataset`` (a :class:`sharpseek.data.dataset.Dataset`), checkpointing
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
    G, D = fitted.task.G_eval, fitted.task.D  # the moving average where there is one
    return GANRun(fitted.version, fitted.prefix, fitted.history, fitted.best, G, D)


class GANTraining(Task):
    """The GAN in :func:`~sharpseek.training.loop.fit`: G, D, their Adam optimisers, the
    step, and the measures on fixed sets (the same every epoch, drawn from the seed)."""

    kind = "gan"
    log_keys = ("loss_d", "loss_g", "loss_code", "acc_real", "acc_fake", "w1_mean", "seconds")

    def __init__(self, context: Context):
        config, device = context.config, context.device
        self.config, self.context = config, context
        self.G = Generator(config.model).to(device)
        self.D = Discriminator(config.model).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas)
        lr_d = config.lr if config.lr_d is None else config.lr_d
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=config.betas)
        self.base_lrs = (config.lr, lr_d)
        self.scaler_g, self.scaler_d = context.amp.scaler(), context.amp.scaler()
        # G_eval: what is measured, drawn and loaded from the checkpoint ("generator").
        self.G_eval = self.G
        if config.ema_decay > 0:
            self.G_eval = copy.deepcopy(self.G).requires_grad_(False)
        self.state = {
            "generator": self.G_eval,
            "discriminator": self.D,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "scaler_g": self.scaler_g,
            "scaler_d": self.scaler_d,
        }
        if self.G_eval is not self.G:
            self.state["generator_train"] = self.G
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
        # The grid's dataset row: random frames of held-out HARPs, one per region where
        # there are enough regions.
        n_real = min(config.grid_size // 2, len(quality_rows))
        table = self.real_table.reset_index(drop=True).iloc[rng.permutation(len(quality_rows))]
        one_each = table.drop_duplicates("harpnum")
        picked = np.sort((one_each if len(one_each) >= n_real else table).index[:n_real])
        self.grid_real = context.dataset.images(quality_rows[picked])  # (n_real, 128, 128)
        harps = self.real_table["harpnum"].to_numpy()[picked]
        self.grid_real_titles = [f"dataset HARP {int(h)}" for h in harps]
        self.code_targets = None  # the dataset's joint log parameters the codes ask for
        self.balance_scale = None  # s of L_balance: the training frames' RMS imbalance
        if config.code_weight > 0 or config.balance_weight > 0:
            rows = np.sort(rng.choice(train_rows, size=min(2000, len(train_rows)), replace=False))
            images = context.dataset.images(rows)
            if config.code_weight > 0:
                self.code_targets = CodeTargets.from_images(
                    images, config.code_parameters, config.code_marginals
                )
            if config.balance_weight > 0:
                self.balance_scale = balance_scale(images)

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        self.z_gen = epoch_generator(self.config.seed, epoch, STREAM_LATENT)
        factor = self.config.lr_factor(epoch)
        for optimiser, base in zip((self.opt_g, self.opt_d), self.base_lrs, strict=True):
            for group in optimiser.param_groups:
                group["lr"] = base * factor
        return {"lr_g": self.base_lrs[0] * factor} if self.config.lr_decay != "none" else {}

    def step(self, real: torch.Tensor) -> dict[str, float]:
        """D on real and G(z) (detached), then G against the updated D; real (b, 1, 128, 128)
        is this rank's slice of the global batch, and so is z (and the shifts of
        ``augment``, drawn from the same per-epoch generator)."""
        config, info, amp = self.config, self.context.info, self.context.amp
        b = config.batch_size // info.world_size
        z = torch.randn(config.batch_size, config.model.latent_dim, generator=self.z_gen)
        z = z[info.rank * b : (info.rank + 1) * b].to(real.device)  # (b, latent_dim)
        shifts = self._shifts(config.batch_size)  # (3, B, 2) or None
        if shifts is not None:  # this rank's: real, fake for D, fake for G -> (3b, 2)
            shifts = shifts[:, info.rank * b : (info.rank + 1) * b].reshape(3 * b, 2)
        if config.r1_gamma > 0:
            real = real.detach().requires_grad_(True)  # R1 differentiates D(real) by it
        with amp.autocast():
            fake = self.G_train(z)  # (b, 1, 128, 128)
            seen = translate(torch.cat([real, fake.detach()]), shifts, 0)
            logits = self.D_train(seen)  # (2b,): one pass for DDP
            loss_d = discriminator_loss(logits[:b], logits[b:], config.loss)
        metrics = {"loss_d": loss_d.item()}
        if config.r1_gamma > 0:
            r1 = r1_penalty(logits[:b], real, config.r1_gamma)
            loss_d = loss_d + r1
            metrics["r1"] = r1.item()
        optimiser_step(loss_d, self.opt_d, self.scaler_d)
        with amp.autocast():
            # D's own weights: its gradients here are discarded (zeroed before D's next
            # step), and bypassing the DDP wrapper keeps them out of the all-reduce.
            loss_g = generator_loss(self.D(translate(fake, shifts, 2 * b)), config.loss)
        if self.code_targets is not None:  # float32: the surrogates' logs and centroids
            loss_code = code_loss(
                fake, z[:, : config.model.codes], self.code_targets, self._global_weight
            )
            metrics["loss_code"] = loss_code.item()
            loss_g = loss_g + config.code_weight * loss_code
        if self.balance_scale is not None:
            loss_balance = balance_loss(fake, self.balance_scale)
            metrics["loss_balance"] = loss_balance.item()
            loss_g = loss_g + config.balance_weight * loss_balance
        optimiser_step(loss_g, self.opt_g, self.scaler_g)
        if self.G_eval is not self.G:
            ema_update(self.G_eval, self.G, config.ema_decay)
        metrics["loss_g"] = loss_g.item()
        return metrics

    def _global_weight(self, weight_sum: torch.Tensor) -> torch.Tensor:
        """The code loss's weight summed over the global batch, over the world size (the
        batch's own for one process): the PSEP term counts bipolar images only, so the
        ranks' counts differ and a per-rank mean would not average to the global one."""
        info = self.context.info
        if not info.distributed:
            return weight_sum
        total = weight_sum.clone()
        dist.all_reduce(total)
        return total / info.world_size

    def _shifts(self, n: int) -> torch.Tensor | None:
        """(3, n, 2) shifts (dy, dx) in px, uniform in [-size/8, size/8], for the real
        images, the generated ones D learns on and those G learns through; None without
        ``augment``."""
        if self.config.augment == "none":
            return None
        reach = MODEL_SIZE // 8
        return torch.randint(-reach, reach + 1, (3, n, 2), generator=self.z_gen)

    @torch.no_grad()
    def measure(self, epoch: int) -> dict[str, Any]:
        """D's accuracies on the fixed sets and the parameter distances of G(z_fixed) to the
        held-out frames (in eval mode, then back to train mode); keeps G(z_fixed) for the
        epoch's sample grid."""
        G, D, device, amp = self.G_eval, self.D, self.context.device, self.context.amp
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
        """The epoch's grid: generated samples (fixed z) above frames of held-out HARPs, on
        one colour scale."""
        n_gen = self.config.grid_size - len(self.grid_real)
        images = np.concatenate([self.samples[:n_gen], self.grid_real])
        titles = [f"generated {i}" for i in range(n_gen)] + self.grid_real_titles
        _save_grid(run, images, titles, epoch)


@torch.no_grad()
def ema_update(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model``, parameter by parameter; buffers
    are copied."""
    for a, m in zip(average.parameters(), model.parameters(), strict=True):
        a.lerp_(m.detach(), 1.0 - decay)
    for a, m in zip(average.buffers(), model.buffers(), strict=True):
        a.copy_(m)


def translate(images: torch.Tensor, shifts: torch.Tensor | None, start: int) -> torch.Tensor:
    """Images (n, 1, H, W) each shifted by ``shifts[start + i]`` = (dy, dx) px, zeros (b = 0)
    shifted in; differentiable (a gather), so G learns through it. ``shifts`` None: the
    images themselves."""
    if shifts is None:
        return images
    n, _, h, w = images.shape
    d = shifts[start : start + n].to(images.device)  # (n, 2)
    padded = F.pad(images, (w, w, h, h))  # (n, 1, 3H, 3W), zeros around
    rows = torch.arange(h, device=images.device)[None, :] + h - d[:, :1]  # (n, H)
    cols = torch.arange(w, device=images.device)[None, :] + w - d[:, 1:]  # (n, W)
    idx = torch.arange(n, device=images.device)[:, None, None]
    return padded[idx, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (n, 1, H, W)


def _save_grid(run: RunStore, images: np.ndarray, titles: list[str], epoch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = magnetogram_grid(
            images,
            Path(tmp) / "grid.png",
            ncols=8,
            titles=titles,
            suptitle=f"GAN samples, epoch {epoch} (fixed latent vectors), beside held-out "
            "dataset frames",
        )
        run.put_file(f"samples/epoch-{epoch:04d}.png", path)
