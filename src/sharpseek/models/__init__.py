"""The project's networks as plain ``nn.Module``s: the paper's GAN, the SimSiam encoder
(with a ResNet written here) and batched augmentations. Each model is built from one frozen
config dataclass with ``tiny`` and ``paper`` presets; training lives in
:mod:`sharpseek.training`, and :mod:`sharpseek.models.checkpoints` rebuilds each model from
its checkpoint alone."""

from sharpseek.models.augment import (
    AUGMENTATION_SETS,
    AugmentConfig,
    augment,
    augmentation_set,
    random_affine,
)
from sharpseek.models.gan import (
    GAN_PRESETS,
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    gan_config,
    generator_loss,
)
from sharpseek.models.simsiam import (
    SIMSIAM_PRESETS,
    ResNet,
    SimSiam,
    SimSiamConfig,
    SimSiamOutput,
    collapse_level,
    simsiam_config,
)

__all__ = [
    "AUGMENTATION_SETS",
    "AugmentConfig",
    "augment",
    "augmentation_set",
    "random_affine",
    "GAN_PRESETS",
    "Discriminator",
    "GANConfig",
    "Generator",
    "discriminator_loss",
    "gan_config",
    "generator_loss",
    "SIMSIAM_PRESETS",
    "ResNet",
    "SimSiam",
    "SimSiamConfig",
    "SimSiamOutput",
    "collapse_level",
    "simsiam_config",
]
