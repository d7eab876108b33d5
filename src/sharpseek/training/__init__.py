"""Training of the GAN and the SimSiam encoder in plain PyTorch (CPU, one GPU, DDP), with
checkpoints through the store, per-epoch metrics and exact resume. See docs/training.md."""

from sharpseek.training.common import load_checkpoint, split_by_harp
from sharpseek.training.encoder import (
    ENCODER_TRAIN_PRESETS,
    CollapseWarning,
    EncoderRun,
    EncoderTrainConfig,
    encoder_train_config,
    load_encoder,
    train_encoder,
)
from sharpseek.training.gan import (
    GAN_TRAIN_PRESETS,
    GANRun,
    GANTrainConfig,
    gan_train_config,
    load_discriminator,
    load_generator,
    train_gan,
)

__all__ = [
    "load_checkpoint",
    "split_by_harp",
    "ENCODER_TRAIN_PRESETS",
    "CollapseWarning",
    "EncoderRun",
    "EncoderTrainConfig",
    "encoder_train_config",
    "load_encoder",
    "train_encoder",
    "GAN_TRAIN_PRESETS",
    "GANRun",
    "GANTrainConfig",
    "gan_train_config",
    "load_discriminator",
    "load_generator",
    "train_gan",
]
