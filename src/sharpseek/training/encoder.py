"""SimSiam encoder training (SCIENCE.md "SimSiam retrieval"): two augmented views of each
patch, the symmetric negative-cosine loss with stop-gradient (in :class:`SimSiam`'s
forward), SGD with lr = 0.05 x batch / 256 (0.0125 at batch 64), momentum 0.9, weight decay
1e-4 and SimSiam's cosine decay of the learning rate over the epochs.

Per epoch: the mean loss, the collapse level (std over the batch of the L2-normalised
projections times sqrt(d), averaged over the epoch's batches; ~1 healthy, 0 collapsed, a
warning below ``collapse_warning``), the learning rate, and, on HARPs held out from
training, same-region retrieval of the encoder beside its two baselines (PCA of the pixels,
standardised physical parameters; computed once) and augmentation robustness
(:mod:`sharpseek.science.evaluate`).

The default ("best") checkpoint is the last epoch whose collapse level is above the warning
threshold; the reason is recorded. The augmentation set is stored in every checkpoint.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sharpseek.models.augment import AUGMENTATION_SETS, AugmentConfig, augment, augmentation_set
from sharpseek.models.simsiam import SIMSIAM_PRESETS, SimSiam, SimSiamConfig, collapse_level
from sharpseek.science.evaluate import (
    augmentation_robustness,
    frame_hours,
    retrieval_scores,
    same_region_retrieval,
)
from sharpseek.training.common import (
    STREAM_AUGMENT,
    STREAM_PAIRS,
    epoch_generator,
    pick_partners,
    same_region_partners,
    subset_whole_regions,
)
from sharpseek.training.loop import Context, Task, fit, optimiser_step

__all__ = [
    "EncoderTrainConfig",
    "ENCODER_TRAIN_PRESETS",
    "encoder_train_config",
    "train_encoder",
    "EncoderRun",
    "EncoderTraining",
    "CollapseWarning",
]

log = logging.getLogger(__name__)


class CollapseWarning(UserWarning):
    """The encoder's outputs are collapsing toward one vector."""


POSITIVE_PAIRS = ("augment", "same-region")


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Everything an encoder run depends on; stored whole in each of its checkpoints."""

    preset: str = "paper"
    model: SimSiamConfig = field(default_factory=SimSiamConfig)
    augment: AugmentConfig = field(default_factory=lambda: AUGMENTATION_SETS["paper"])
    epochs: int = 100
    batch_size: int = 64  # global batch (split across processes under DDP)
    base_lr: float = 0.05  # lr = base_lr * batch_size / 256 (SimSiam's rule; 0.0125 at 64)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    cosine_decay: bool = True  # SimSiam's lr schedule: lr * 0.5 (1 + cos(pi epoch / epochs))
    seed: int = 0
    holdout_fraction: float = 0.2  # share of HARPs never trained on (retrieval measures)
    eval_max_frames: int = 2000  # held-out frames (whole regions) measured each epoch; 0: none
    collapse_warning: float = 0.1  # warn when the collapse level falls below this
    precision: str = "auto"  # auto (bf16 on CUDA, 32 on CPU), 32, bf16, fp16
    num_workers: int = 0  # DataLoader worker processes
    # Positive pairs: "augment" = two augmentations of one frame (the paper's SimSiam);
    # "same-region" = a frame and another frame of its HARP within pair_window_hours, each
    # augmented. The second teaches what stays the same while a region evolves, which is what
    # finding the same region means; it needs a dataset with several frames per region.
    positive_pairs: str = "augment"
    pair_window_hours: float = 24.0

    def __post_init__(self):
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", SimSiamConfig.from_dict(self.model))
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"EncoderTrainConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        if self.batch_size < 2:
            raise ValueError("EncoderTrainConfig.batch_size must be >= 2 (batch norm)")
        if self.positive_pairs not in POSITIVE_PAIRS:
            raise ValueError(
                f"EncoderTrainConfig.positive_pairs must be one of {POSITIVE_PAIRS}, got "
                f"{self.positive_pairs!r}"
            )
        if not self.pair_window_hours >= 0:
            raise ValueError(
                f"EncoderTrainConfig.pair_window_hours must be >= 0, got {self.pair_window_hours}"
            )

    @property
    def lr(self) -> float:
        """The initial learning rate: base_lr x batch_size / 256."""
        return self.base_lr * self.batch_size / 256

    def lr_at(self, epoch: int) -> float:
        """Learning rate during epoch ``epoch`` (1-based)."""
        if not self.cosine_decay:
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / self.epochs))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderTrainConfig:
        return cls(**data)


#: Training presets. ``paper``: the paper's SimSiam (two augmentations of one frame).
#: ``tiny``: a narrow ResNet-10, 12 epochs at batch 64 (lr 0.05), ~4 minutes on 2 CPU cores
#: over the 2,880 training frames of the synthetic demo data, with same-region pairs and no
#: geometric augmentation: at this budget the paper's pairs teach invariances that do not
#: single out a region (same-region retrieval 0.13, below the untrained network's 0.25),
#: while same-region pairs reach the PCA baseline (docs/training.md gives the figures).
ENCODER_TRAIN_PRESETS: dict[str, EncoderTrainConfig] = {
    "paper": EncoderTrainConfig(preset="paper", model=SIMSIAM_PRESETS["paper"]),
    "tiny": EncoderTrainConfig(
        preset="tiny",
        model=SIMSIAM_PRESETS["tiny"],
        augment=AUGMENTATION_SETS["none"],
        positive_pairs="same-region",
        base_lr=0.2,
        epochs=12,
        eval_max_frames=1000,
    ),
}


def encoder_train_config(
    preset: str,
    *,
    model: dict[str, Any] | None = None,
    augment: str | AugmentConfig | None = None,
    **overrides: Any,
) -> EncoderTrainConfig:
    """The encoder training config of a preset, with overrides; ``model`` overrides
    :class:`SimSiamConfig` fields, ``augment`` names an augmentation set (or is one)."""
    if preset not in ENCODER_TRAIN_PRESETS:
        raise ValueError(
            f"unknown encoder training preset {preset!r}; choose one of "
            f"{sorted(ENCODER_TRAIN_PRESETS)}"
        )
    base = ENCODER_TRAIN_PRESETS[preset]
    if model:
        overrides["model"] = replace(base.model, **model)
    if augment is not None:
        overrides["augment"] = augmentation_set(augment) if isinstance(augment, str) else augment
    return replace(base, **overrides)


@dataclass
class EncoderRun:
    """The result of :func:`train_encoder`."""

    version: str
    prefix: str  # models/encoder/<version>/
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    model: SimSiam


def default_version(config: EncoderTrainConfig) -> str:
    """``<preset>-<augmentations>-seed<seed>``, with ``-regionpairs`` for same-region pairs."""
    pairs = "-regionpairs" if config.positive_pairs == "same-region" else ""
    return f"{config.preset}-{config.augment.name}{pairs}-seed{config.seed}"


def train_encoder(
    config: EncoderTrainConfig,
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
) -> EncoderRun:
    """Train the SimSiam encoder on ``dataset``, checkpointing every epoch into ``store``
    under ``models/encoder/<version>/`` (default version ``<preset>-<augment>-seed<seed>``).

    ``resume``, ``overwrite``, ``device``, ``on_epoch_end`` and distributed training work as
    :func:`sharpseek.training.loop.fit` says.
    """
    fitted = fit(
        EncoderTraining,
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
    return EncoderRun(fitted.version, fitted.prefix, fitted.history, fitted.best, fitted.task.model)


class EncoderTraining(Task):
    """SimSiam in :func:`~sharpseek.training.loop.fit`: the model, its SGD optimiser, the
    step on two augmented views, and retrieval measures on held-out regions."""

    kind = "encoder"
    log_keys = ("loss", "collapse", "retrieval_encoder", "seconds")

    def __init__(self, context: Context):
        config, info = context.config, context.info
        self.config, self.context = config, context
        model = SimSiam(config.model).to(context.device)
        if info.distributed and context.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.scaler = context.amp.scaler()
        self.state = {"model": model, "optimizer": self.optimizer, "scaler": self.scaler}
        self.model_train = context.ddp(model)

        # Held-out evaluation set (whole regions) and the baselines, computed once.
        self.evaluation = (
            _Evaluation.build(context.dataset, context.train_rows, context.held_rows, config)
            if config.eval_max_frames > 0
            else None
        )
        self.partners = None  # same-region pairs: each training frame's candidate partners
        if config.positive_pairs == "same-region":
            train_table = context.dataset.manifest.iloc[context.train_rows]
            self.partners = same_region_partners(
                train_table["harpnum"].to_numpy(),
                frame_hours(train_table["t_rec"].to_numpy()),
                config.pair_window_hours,
            )

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        lr = self.config.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        seed, rank = self.config.seed, self.context.info.rank
        self.aug_gen = epoch_generator(seed, epoch, STREAM_AUGMENT, rank)
        return {"lr": lr}

    def batches(self, epoch: int, batches: list[list[int]]) -> list[list[int]]:
        if self.partners is None:
            return batches
        # each batch is followed by its frames' partners
        seed, rank = self.config.seed, self.context.info.rank
        pair_gen = epoch_generator(seed, epoch, STREAM_PAIRS, rank)
        return [b + pick_partners(b, self.partners, pair_gen) for b in batches]

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """Two augmented views (of each frame, or of a frame and its partner: x is then
        (2b, 1, 128, 128), frames first) through SimSiam, whose forward gives the loss."""
        first, second = x.chunk(2) if self.partners is not None else (x, x)
        with torch.no_grad():
            view1 = augment(first, self.config.augment, self.aug_gen)  # (b, 1, 128, 128)
            view2 = augment(second, self.config.augment, self.aug_gen)
        with self.context.amp.autocast():
            out = self.model_train(view1, view2)
        optimiser_step(out.loss, self.optimizer, self.scaler)
        return {"loss": out.loss.item(), "collapse": collapse_level(out.z1)}

    def measure(self, epoch: int) -> dict[str, Any]:
        if self.evaluation is None:
            return {}
        return {**self.evaluation.measure(self.model, self.config), **self.evaluation.baselines}

    def update_best(self, row: dict[str, Any], best: dict[str, Any] | None) -> dict | None:
        """The last epoch whose collapse level is at or above ``collapse_warning`` (the first
        epoch until one is); an epoch below it warns."""
        c = self.config
        healthy = row["collapse"] >= c.collapse_warning
        if not healthy and self.context.info.is_main:
            warnings.warn(
                f"encoder epoch {row['epoch']}: collapse level {row['collapse']:.3f} is below "
                f"{c.collapse_warning} (1 is healthy, 0 collapsed): the outputs are "
                "becoming one vector; lower the learning rate or change the augmentations",
                CollapseWarning,
                stacklevel=2,
            )
        if not healthy and best is not None:
            return best
        return {
            "epoch": row["epoch"],
            "collapse": row["collapse"],
            "reason": (
                f"the last epoch whose collapse level ({row['collapse']:.3f}) is at or "
                f"above {c.collapse_warning}"
                if healthy
                else f"no epoch yet above the collapse threshold {c.collapse_warning}"
            ),
        }

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"augment": self.config.augment.to_dict()}


@dataclass
class _Evaluation:
    """Held-out frames (whole regions), their images and the baselines' scores."""

    images: np.ndarray  # (n, 128, 128)
    table: Any  # manifest rows of the frames
    baselines: dict[str, float]
    seed: int

    @classmethod
    def build(cls, dataset, train_rows, held_rows, config) -> _Evaluation | None:
        rows = subset_whole_regions(
            dataset.manifest, held_rows, config.eval_max_frames, config.seed
        )
        if len(rows) <= 10 or dataset.manifest["harpnum"].iloc[rows].nunique() < 2:
            log.warning("too few held-out frames (%d) for retrieval measures", len(rows))
            return None
        images = dataset.images(rows)
        table = dataset.manifest.iloc[rows]
        rng = np.random.default_rng(config.seed)
        fit_rows = np.sort(rng.choice(train_rows, size=min(2000, len(train_rows)), replace=False))
        dummy = np.zeros((len(rows), config.model.dim))
        scores = retrieval_scores(
            dummy,
            images,
            table,
            fit_images=dataset.images(fit_rows),
            reference_table=dataset.manifest.iloc[train_rows],
        )
        baselines = {"retrieval_pca": scores.pca, "retrieval_physics": scores.physics}
        return cls(images, table, baselines, config.seed)

    def measure(self, model: SimSiam, config: EncoderTrainConfig) -> dict[str, float]:
        x = torch.from_numpy(self.images).unsqueeze(1)
        feats = model.encode(x)
        return {
            "retrieval_encoder": same_region_retrieval(
                feats.numpy(), self.table["harpnum"].to_numpy(), self.table["t_rec"].to_numpy()
            ),
            # against the paper's set whatever the encoder trained with: one yardstick for
            # every encoder (its own set may be "none", which would always give 0)
            "augmentation_robustness": augmentation_robustness(
                model,
                x,
                self.table["harpnum"].to_numpy(),
                AUGMENTATION_SETS["paper"],
                seed=self.seed,
            ),
        }
