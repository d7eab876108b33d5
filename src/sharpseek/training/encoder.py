"""SimSiam encoder training (SCIENCE.md "SimSiam retrieval"): two augmented views of each
patch, the symmetric negative-cosine loss with stop-gradient (in :class:`SimSiam`'s
forward), SGD with lr = 0.05 x batch / 256 (0.0125 at batch 64), momentum 0.9, weight decay
1e-4 and SimSiam's cosine decay of the learning rate over the epochs.

Per epoch: the mean loss, the collapse level (std over the batch of the L2-normalised
projections times sqrt(d), averaged over the epoch's batches; ~1 healthy, 0 collapsed, a
warning below ``collapse_warning``), the learning rate, and, on HARPs held out from
training, same-region retrieval of the encoder beside its two baselines (PCA of the pixels,
standardised physical parameters; computed once) and augmentation robustness
(:mod:`sharpseek.evaluate`).

The default ("best") checkpoint is the last epoch whose collapse level is above the warning
threshold; the reason is recorded. The augmentation set is stored in every checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
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
from sharpseek.evaluate import (
    augmentation_robustness,
    frame_hours,
    retrieval_scores,
    same_region_retrieval,
)
from sharpseek.models.augment import AUGMENTATION_SETS, AugmentConfig, augment, augmentation_set
from sharpseek.models.simsiam import SIMSIAM_PRESETS, SimSiam, SimSiamConfig, collapse_level
from sharpseek.training.common import (
    STREAM_AUGMENT,
    STREAM_PAIRS,
    MixedPrecision,
    RunStore,
    TensorBoardLogger,
    all_reduce_mean,
    capture_rng_state,
    checkpoint_header,
    distributed_info,
    epoch_batches,
    epoch_generator,
    epoch_name,
    load_checkpoint,
    metrics_csv,
    open_run,
    pick_partners,
    resolve_device,
    same_region_partners,
    seed_everything,
    subset_whole_regions,
    training_split,
)

__all__ = [
    "EncoderTrainConfig",
    "ENCODER_TRAIN_PRESETS",
    "encoder_train_config",
    "train_encoder",
    "EncoderRun",
    "load_encoder",
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
    in :func:`sharpseek.training.gan.train_gan`.
    """
    info = distributed_info()
    device = resolve_device(device)
    amp = MixedPrecision(config.precision, device)
    version = version or default_version(config)
    run = RunStore(store, "encoder", version)
    config_dict = config.to_dict()

    train_rows, held_rows = training_split(
        dataset, config.holdout_fraction, config.seed, config.batch_size
    )

    seed_everything(config.seed)
    model = SimSiam(config.model).to(device)
    if info.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    scaler = amp.scaler()

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
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        history, best, start = list(ckpt["history"]), ckpt["best"], int(ckpt["epoch"])
    if info.distributed:
        torch.distributed.barrier()

    # Held-out evaluation set (whole regions) and the baselines, computed once.
    evaluation = (
        _Evaluation.build(dataset, train_rows, held_rows, config)
        if (config.eval_max_frames > 0)
        else None
    )
    baselines = evaluation.baselines if evaluation is not None else {}

    tb = TensorBoardLogger(tensorboard_dir) if info.is_main else TensorBoardLogger(None)
    if start == 0 and evaluation is not None:  # epoch 0: the untrained encoder
        row0 = {"epoch": 0, **evaluation.measure(model, config), **baselines}
        history.append(row0)
        tb.log(row0, 0)
    train_model = DDP(model) if info.distributed else model
    images = PatchDataset(dataset, rows=train_rows)
    partners = None
    if config.positive_pairs == "same-region":
        train_table = dataset.manifest.iloc[train_rows]
        partners = same_region_partners(
            train_table["harpnum"].to_numpy(),
            frame_hours(train_table["t_rec"].to_numpy()),
            config.pair_window_hours,
        )
    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        lr = config.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = epoch_batches(
            len(train_rows),
            config.batch_size,
            config.seed,
            epoch,
            rank=info.rank,
            world_size=info.world_size,
        )
        if partners is not None:  # each batch is followed by its frames' partners
            pair_gen = epoch_generator(config.seed, epoch, STREAM_PAIRS, info.rank)
            batches = [b + pick_partners(b, partners, pair_gen) for b in batches]
        loader = DataLoader(
            images,
            batch_sampler=batches,
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
        )
        aug_gen = epoch_generator(config.seed, epoch, STREAM_AUGMENT, info.rank)
        model.train()
        sums = {"loss": 0.0, "collapse": 0.0}
        bar = tqdm(
            loader,
            desc=f"encoder epoch {epoch}/{config.epochs}",
            leave=False,
            disable=not (progress and info.is_main),
        )
        for x in bar:
            x = x.to(device, non_blocking=True)  # (b, 1, 128, 128)
            first, second = x.chunk(2) if partners is not None else (x, x)
            with torch.no_grad():
                view1 = augment(first, config.augment, aug_gen)
                view2 = augment(second, config.augment, aug_gen)
            with amp.autocast():
                out = train_model(view1, view2)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            sums["loss"] += out.loss.item()
            sums["collapse"] += collapse_level(out.z1)
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
        row: dict[str, Any] = {"epoch": epoch, "lr": lr}
        row.update(all_reduce_mean({k: v / len(batches) for k, v in sums.items()}, info))
        if evaluation is not None:
            row.update(evaluation.measure(model, config))
        row.update(baselines)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)

        healthy = row["collapse"] >= config.collapse_warning
        if not healthy and info.is_main:
            warnings.warn(
                f"encoder epoch {epoch}: collapse level {row['collapse']:.3f} is below "
                f"{config.collapse_warning} (1 is healthy, 0 collapsed): the outputs are "
                "becoming one vector; lower the learning rate or change the augmentations",
                CollapseWarning,
                stacklevel=2,
            )
        if healthy or best is None:
            best = {
                "epoch": epoch,
                "collapse": row["collapse"],
                "reason": (
                    f"the last epoch whose collapse level ({row['collapse']:.3f}) is at or "
                    f"above {config.collapse_warning}"
                    if healthy
                    else f"no epoch yet above the collapse threshold {config.collapse_warning}"
                ),
            }
        if info.is_main:
            payload = {
                **checkpoint_header("encoder", config.preset, dataset, config_dict),
                "augment": config.augment.to_dict(),
                "epoch": epoch,
                "metrics": row,
                "history": history,
                "best": best,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": capture_rng_state(),
                "splits": {
                    "holdout_harpnums": sorted(
                        int(h) for h in np.unique(dataset.manifest["harpnum"].to_numpy()[held_rows])
                    )
                },
            }
            names = [epoch_name(epoch)]
            if best["epoch"] == epoch:
                names.append("best.pt")
            run.save(payload, names + ["last.pt"])
            run.put_bytes("metrics.csv", metrics_csv(history))
            tb.log(row, epoch)
            log.info(
                "encoder epoch %d: loss %.4f collapse %.3f retrieval %s (%.1f s)",
                epoch,
                row["loss"],
                row["collapse"],
                row.get("retrieval_encoder"),
                row["seconds"],
            )
        if info.distributed:
            torch.distributed.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    tb.close()
    return EncoderRun(version, run.prefix, history, best, model)


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


# ---------------------------------------------------------------------------------------------
# Inference: rebuild from the file alone


def load_encoder(
    source, *, store=None, device: str | torch.device = "cpu"
) -> tuple[SimSiam, AugmentConfig]:
    """The SimSiam model of an encoder checkpoint (path or store key), in eval mode, and the
    augmentation set it was trained with. ``model.encode(images)`` gives the 100-d vectors."""
    ckpt = load_checkpoint(source, store=store, kind="encoder")
    config = EncoderTrainConfig.from_dict(ckpt["config"])
    model = SimSiam(config.model)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), config.augment
