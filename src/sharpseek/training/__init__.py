"""Training of the GAN and the SimSiam encoder in plain PyTorch (CPU, one GPU, DDP), with
checkpoints through the store, per-epoch metrics and exact resume: one loop
(:func:`sharpseek.training.loop.fit`) runs each model's task. Checkpoints are read back by
:mod:`sharpseek.models.checkpoints`. See docs/training.md."""

from sharpseek.training.common import split_by_harp
from sharpseek.training.encoder import (
    ENCODER_TRAIN_PRESETS,
    CollapseWarning,
    EncoderRun,
    EncoderTrainConfig,
    encoder_train_config,
    train_encoder,
)
from sharpseek.training.gan import (
    GAN_TRAIN_PRESETS,
    GANRun,
    GANTrainConfig,
    gan_train_config,
    train_gan,
)
from sharpseek.training.loop import fit

__all__ = [
    "split_by_harp",
    "ENCODER_TRAIN_PRESETS",
    "CollapseWarning",
    "EncoderRun",
    "EncoderTrainConfig",
    "encoder_train_config",
    "train_encoder",
    "GAN_TRAIN_PRESETS",
    "GANRun",
    "GANTrainConfig",
    "gan_train_config",
    "train_gan",
    "fit",
]
