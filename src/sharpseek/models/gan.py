"""The paper's GAN: generator and discriminator (SCIENCE.md, "GAN"), losses beside them.

Sizes at ``width=1`` (the ``paper`` preset) are the public reference code's; ``width`` scales
every channel count (and the discriminator's dense layer) for the ``tiny`` CPU preset.
All convolutions have kernel 3, stride 2, padding 0.

Generator (z ~ N(0, I), 100 dimensions)::

    Linear(100 -> 64*15*15) + LeakyReLU(0.2)           -> (N, 64, 15, 15)
    ConvTranspose2d(64 -> 64) + LeakyReLU(0.2)         -> (N, 64, 31, 31)
    ConvTranspose2d(64 -> 32) + LeakyReLU(0.2)         -> (N, 32, 63, 63)
    pad right and bottom by 1                          -> (N, 32, 64, 64)
    ConvTranspose2d(32 -> 1) + Tanh                    -> (N, 1, 129, 129)
    keep [:128, :128]                                  -> (N, 1, 128, 128)

Discriminator::

    Conv2d(1 -> 32) + LeakyReLU(0.2)                   -> (N, 32, 63, 63)
    Conv2d(32 -> 64) + LeakyReLU(0.2)                  -> (N, 64, 31, 31)
    Conv2d(64 -> 64) + LeakyReLU(0.2)                  -> (N, 64, 15, 15)
    flatten                                            -> (N, 14400)
    Linear(14400 -> 100) + LeakyReLU(0.2)              -> (N, 100)
    Linear(100 -> 1)                                   -> (N,) logit; probability = sigmoid

Losses (paper equations (1) and (2), on logits with ``BCEWithLogits``: the same values as
a sigmoid + BCE, and safe under mixed precision)::

    L_D = [BCE(D(x), 1) + BCE(D(G(z).detach()), 0)] / 2   # D never backpropagates into G
    L_G = BCE(D(G(z)), 1)                              # the non-saturating generator loss
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sharpseek.physics import MODEL_SIZE

__all__ = [
    "GANConfig",
    "GAN_PRESETS",
    "gan_config",
    "Generator",
    "Discriminator",
    "discriminator_loss",
    "generator_loss",
    "check_images",
]


@dataclass(frozen=True)
class GANConfig:
    """Sizes of the generator and discriminator; stored whole in every GAN checkpoint."""

    latent_dim: int = 100  # z ~ N(0, I) of this many dimensions
    width: float = 1.0  # multiplies every channel count and D's dense layer; paper = 1
    negative_slope: float = 0.2  # LeakyReLU slope

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"GANConfig.latent_dim must be >= 1, got {self.latent_dim}")
        if not self.width > 0:
            raise ValueError(f"GANConfig.width must be > 0, got {self.width}")

    def channels(self, n: int) -> int:
        """A paper channel count ``n`` scaled by ``width`` (at least 1)."""
        return max(1, round(n * self.width))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANConfig:
        return cls(**data)


#: Named model sizes. ``tiny`` (half width) keeps the CPU demo within minutes.
GAN_PRESETS: dict[str, GANConfig] = {
    "paper": GANConfig(),
    "tiny": GANConfig(width=0.5),
}


def gan_config(preset: str, **overrides: Any) -> GANConfig:
    """The GAN sizes of a named preset (``tiny`` or ``paper``), with field overrides."""
    if preset not in GAN_PRESETS:
        raise ValueError(f"unknown GAN preset {preset!r}; choose one of {sorted(GAN_PRESETS)}")
    return replace(GAN_PRESETS[preset], **overrides)


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise ValueError unless ``images`` is a float tensor (N, 1, 128, 128)."""
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4 or shape[1:] != (1, MODEL_SIZE, MODEL_SIZE):
        raise ValueError(f"{name} must have shape (N, 1, {MODEL_SIZE}, {MODEL_SIZE}), got {shape}")


class Generator(nn.Module):
    """z (N, latent_dim) -> model-space images b in [-1, 1], (N, 1, 128, 128)."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        c64, c32 = config.channels(64), config.channels(32)
        self.c64 = c64
        self.fc = nn.Linear(config.latent_dim, c64 * 15 * 15)
        self.up1 = nn.ConvTranspose2d(c64, c64, kernel_size=3, stride=2, padding=0)
        self.up2 = nn.ConvTranspose2d(c64, c32, kernel_size=3, stride=2, padding=0)
        self.up3 = nn.ConvTranspose2d(c32, 1, kernel_size=3, stride=2, padding=0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"latent vectors must have shape (N, {self.config.latent_dim}), "
                f"got {tuple(z.shape)}"
            )
        slope = self.config.negative_slope
        x = F.leaky_relu(self.fc(z), slope)  # (N, c64*15*15)
        x = x.view(-1, self.c64, 15, 15)  # (N, c64, 15, 15)
        x = F.leaky_relu(self.up1(x), slope)  # (N, c64, 31, 31)
        x = F.leaky_relu(self.up2(x), slope)  # (N, c32, 63, 63)
        x = F.pad(x, (0, 1, 0, 1))  # (N, c32, 64, 64): right and bottom
        x = torch.tanh(self.up3(x))  # (N, 1, 129, 129)
        return x[:, :, :MODEL_SIZE, :MODEL_SIZE]  # (N, 1, 128, 128)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from z ~ N(0, I) drawn with ``generator`` (on this module's device)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(device)
        return self(z)


class Discriminator(nn.Module):
    """Images (N, 1, 128, 128) -> logits (N,): > 0 means "real"."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        c32, c64 = config.channels(32), config.channels(64)
        self.conv1 = nn.Conv2d(1, c32, kernel_size=3, stride=2, padding=0)
        self.conv2 = nn.Conv2d(c32, c64, kernel_size=3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(c64, c64, kernel_size=3, stride=2, padding=0)
        self.fc1 = nn.Linear(c64 * 15 * 15, config.channels(100))
        self.fc2 = nn.Linear(config.channels(100), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        slope = self.config.negative_slope
        x = F.leaky_relu(self.conv1(images), slope)  # (N, c32, 63, 63)
        x = F.leaky_relu(self.conv2(x), slope)  # (N, c64, 31, 31)
        x = F.leaky_relu(self.conv3(x), slope)  # (N, c64, 15, 15)
        x = x.flatten(1)  # (N, c64*15*15)
        x = F.leaky_relu(self.fc1(x), slope)  # (N, c100)
        return self.fc2(x).squeeze(1)  # (N,) logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Paper eq. (2): [BCE(D(x), 1) + BCE(D(G(z)), 0)] / 2, on logits (G(z) detached)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Paper eq. (1), non-saturating: BCE(D(G(z)), 1), on logits."""
    fake_logits = fake_logits.float()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
