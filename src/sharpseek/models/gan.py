"""The paper's GAN: generator and discriminator (SCIENCE.md, "GAN"), losses beside them, and
the switchable options of issue 17 that make a small CPU-trained GAN draw active regions.

Sizes at ``width=1`` (the ``paper`` preset) are the public reference code's; ``width`` scales
every channel count (and the discriminator's dense layer) for the ``tiny`` CPU preset.
Every option below defaults to the paper's recipe, so a checkpoint config written before the
options existed loads as the paper's networks.

Paper generator (``generator="paper"``; z ~ N(0, I), 100 dimensions; convolutions kernel 3,
stride 2, padding 0)::

    Linear(100 -> 64*15*15) + LeakyReLU(0.2)           -> (N, 64, 15, 15)
    ConvTranspose2d(64 -> 64) + LeakyReLU(0.2)         -> (N, 64, 31, 31)
    ConvTranspose2d(64 -> 32) + LeakyReLU(0.2)         -> (N, 32, 63, 63)
    pad right and bottom by 1                          -> (N, 32, 64, 64)
    ConvTranspose2d(32 -> 1) + Tanh                    -> (N, 1, 129, 129)
    keep [:128, :128]                                  -> (N, 1, 128, 128)

Upsampling generator (``generator="upsample"``): x2 (``upsampling``: nearest-neighbour, or
bilinear, which leaves no 2x2 blocks for the convolution to undo) then a 3x3 convolution
(padding 1) instead of transposed convolutions (whose uneven kernel overlap draws the
checkerboard), at an internal resolution of ``internal_size`` px (S = 64 by default;
``internal_width`` px across, x, where given: every feature map then has S/8.. rows and
internal_width/8.. columns), bilinear to 128 px; ``s = S / 8``::

    Linear(100 -> 64*s*s) + LeakyReLU(0.2)             -> (N, 64, S/8, S/8)
    [x2, Conv2d 3x3 + LeakyReLU(0.2)] x 3              -> (N, 64 / 64 / 32, S/4 / S/2 / S)
      (``refine=True``: a second Conv2d 3x3 + LeakyReLU after the first two, at S/4 and S/2)
    Conv2d 3x3 (32 -> 1)                               -> (N, 1, S, S)  the smooth field m
    bilinear to 128                                    -> (N, 1, 128, 128)
    Tanh                                               -> b

With ``noise=True`` (the weak background: HMI noise and the network at 128 px that a 64 px
field cannot draw)::

    a1, a2 = exp(Conv2d 1x1 (32 -> 2) of the S-px features), bilinear to 128   amplitude maps
    n = P z', P a fixed (128*128, latent_dim - codes) matrix          unit-variance noise image
    b = Tanh(m at 128 + a1 * n + a2 * n^3 / sqrt(15))   (or the clip of output="clip", below)

Two noise images because the data's weak field is not Gaussian: HMI noise (Gaussian) and the
network's small strong elements (a heavy tail). A Gaussian alone wide enough to give the
data's gradients (GRAD) and unsigned flux (TUF) is too wide at its core (SIGMA, the width of
a Gaussian fitted to the histogram of b); n^3 (unit variance after / sqrt(15)) puts the same
power into fewer, stronger pixels.

P's columns are white N(0, 1) images blurred by a Gaussian of ``NOISE_BLUR_PX`` (the
correlation of neighbouring pixels that HMI noise has after the resize to 128 px, ~0.3 in
the synthetic data) and scaled so that, for a fixed z, the pixels of n are N(0, |z|^2 /
latent_dim) draws; z' = z[codes:], the latent vector less its ``codes`` leading coordinates
(the physical codes of :mod:`sharpseek.training.codes`, which a direction then moves without
redrawing the noise). n is a fixed linear function of z, so an image stays a function of its
seed alone (every road draws one z per seed) and a shift of z moves the noise with the rest.
P is drawn from ``NOISE_SEED``, not stored (checkpoints stay small); no convolution runs at
128 px (the CPU cost of the generator stays at its internal resolution). The amplitude's
log starts at log(``NOISE_START``) (the weights near zero): HMI-like noise of a few gauss to
tens of gauss, not the unit noise a default initialisation would draw, which Adam's small
steps take thousands of steps to bring down; it is clamped to [-12, 0] (a <= 1000 G).

``blob_blur_px`` > 0 (off by default) gives the heavy-tailed part an image of its own,
``n_b = P_b z'``, P_b drawn from ``NOISE_SEED + 1`` and blurred by ``blob_blur_px``:
``a2 * n_b^3 / sqrt(15)`` then draws isolated elements a few pixels wide (the cube keeps the
peaks of a smooth field), the size of the data's plage elements at 128 px, instead of single
strong pixels.

``output="clip"`` ends either generator in the data's own clip to [-1, 1] instead of Tanh
(model space is the clipped field, SCIENCE.md), with the identity's gradient (straight-through)
so a pixel past the clip is still pulled back: a spot's core can sit at exactly 1000 G, as the
data's umbrae do, where Tanh only approaches it.

Discriminator (``spectral_norm=True`` wraps every layer in spectral normalisation)::

    Conv2d(1 -> 32) + LeakyReLU(0.2)                   -> (N, 32, 63, 63)
    Conv2d(32 -> 64) + LeakyReLU(0.2)                  -> (N, 64, 31, 31)
    Conv2d(64 -> 64) + LeakyReLU(0.2)                  -> (N, 64, 15, 15)
    flatten                                            -> (N, 14400)
    Linear(14400 -> 100) + LeakyReLU(0.2)              -> (N, 100)
    Linear(100 -> 1)                                   -> (N,) logit; probability = sigmoid

Losses on logits (``loss="bce"``: paper equations (1) and (2) with ``BCEWithLogits``, the same
values as a sigmoid + BCE, and safe under mixed precision; ``loss="hinge"``: Lim & Ye 2017,
Miyato et al. 2018)::

    bce:   L_D = [BCE(D(x), 1) + BCE(D(G(z).detach()), 0)] / 2   L_G = BCE(D(G(z)), 1)
    hinge: L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z).detach())))   L_G = -mean(D(G(z)))
    R1 (Mescheder et al. 2018): gamma / 2 * mean over real x of |grad_x D(x)|^2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from sharpseek.physics.definitions import MODEL_SIZE

__all__ = [
    "GANConfig",
    "GAN_PRESETS",
    "GAN_LOSSES",
    "GENERATORS",
    "OUTPUTS",
    "UPSAMPLINGS",
    "NOISE_SEED",
    "gan_config",
    "Generator",
    "Discriminator",
    "discriminator_loss",
    "generator_loss",
    "r1_penalty",
    "check_images",
]

GENERATORS = ("paper", "upsample")
#: How the upsampling generator doubles its resolution before each 3x3 convolution:
#: ``nearest`` (each pixel a 2x2 block) or ``bilinear`` (no blocks for the convolution to undo).
UPSAMPLINGS = ("nearest", "bilinear")
#: The generator's last non-linearity: the paper's ``tanh``, or ``clip``, the data's own
#: clip to [-1, 1] (model space, SCIENCE.md) with a straight-through gradient.
OUTPUTS = ("tanh", "clip")
GAN_LOSSES = ("bce", "hinge")
#: Seed of the fixed matrix that turns z into the noise image (``noise=True``).
NOISE_SEED = 17
#: Gaussian sigma [128-px pixels] of the blur in the noise image's columns (lag-1
#: correlation exp(-1 / (4 sigma^2)) = 0.37).
NOISE_BLUR_PX = 0.5
#: The amplitudes (Gaussian, heavy-tailed) a freshly built generator draws [b]: 6 G and
#: 20 G, whose sum has about the synthetic data's median SIGMA, GRAD and background TUF on
#: a 64-px smoothed field (measured on the demo data, docs/training.md).
NOISE_START = (0.006, 0.02)


@dataclass(frozen=True)
class GANConfig:
    """Sizes and options of the generator and discriminator; stored whole in every GAN
    checkpoint. The defaults are the paper's networks."""

    latent_dim: int = 100  # z ~ N(0, I) of this many dimensions
    width: float = 1.0  # multiplies every channel count and D's dense layer; paper = 1
    negative_slope: float = 0.2  # LeakyReLU slope
    generator: str = "paper"  # "paper" (transposed convolutions) or "upsample"
    internal_size: int = 64  # px the upsampling generator draws at (then bilinear to 128)
    upsampling: str = "nearest"  # the upsampling generator's x2: "nearest" or "bilinear"
    internal_width: int | None = None  # px across (x) it draws at; None: internal_size
    noise: bool = False  # upsampling generator: a learned-amplitude noise field at 128 px
    # Gaussian sigma [128-px pixels] of the heavy-tailed noise image's own blur; 0: the
    # heavy-tailed part is the cube of the Gaussian part's image (blurred NOISE_BLUR_PX)
    blob_blur_px: float = 0.0
    # a second 3x3 convolution (+ LeakyReLU) after each doubling below the internal size
    # (at S/4 and S/2), where it is cheap: room to smooth the doublings' edges away
    refine: bool = False
    codes: int = 0  # leading latent coordinates kept out of the noise field (physical codes)
    code_gain: float = 1.0  # the codes' factor at G's input (sqrt(97 / 3) ~ 5.7: their share)
    spectral_norm: bool = False  # spectral normalisation of every discriminator layer
    output: str = "tanh"  # G's last non-linearity: "tanh" (paper) or "clip" (the data's clip)

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"GANConfig.latent_dim must be >= 1, got {self.latent_dim}")
        if not self.width > 0:
            raise ValueError(f"GANConfig.width must be > 0, got {self.width}")
        if self.generator not in GENERATORS:
            raise ValueError(
                f"GANConfig.generator must be one of {GENERATORS}, got {self.generator!r}"
            )
        if self.internal_size % 8 or not 8 <= self.internal_size <= MODEL_SIZE:
            raise ValueError(
                f"GANConfig.internal_size must be a multiple of 8 in 8..{MODEL_SIZE}, "
                f"got {self.internal_size}"
            )
        width = self.internal_width
        if width is not None and (width % 8 or not 8 <= width <= MODEL_SIZE):
            raise ValueError(
                f"GANConfig.internal_width must be a multiple of 8 in 8..{MODEL_SIZE}, got {width}"
            )
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(
                f"GANConfig.upsampling must be one of {UPSAMPLINGS}, got {self.upsampling!r}"
            )
        if self.output not in OUTPUTS:
            raise ValueError(f"GANConfig.output must be one of {OUTPUTS}, got {self.output!r}")
        if self.noise and self.generator != "upsample":
            raise ValueError("GANConfig.noise needs generator='upsample'")
        if not 0 <= self.blob_blur_px <= 4:
            raise ValueError(f"GANConfig.blob_blur_px must be in [0, 4], got {self.blob_blur_px}")
        if self.refine and self.generator != "upsample":
            raise ValueError("GANConfig.refine needs generator='upsample'")
        if self.blob_blur_px and not self.noise:
            raise ValueError("GANConfig.blob_blur_px needs noise=True")
        if not self.code_gain > 0:
            raise ValueError(f"GANConfig.code_gain must be > 0, got {self.code_gain}")
        if not 0 <= self.codes < self.latent_dim:
            raise ValueError(
                f"GANConfig.codes must be in 0..{self.latent_dim - 1}, got {self.codes}"
            )

    def channels(self, n: int) -> int:
        """A paper channel count ``n`` scaled by ``width`` (at least 1)."""
        return max(1, round(n * self.width))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANConfig:
        """A config from its dict; fields it lacks (checkpoints older than an option) take
        the paper's values; unknown fields are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"GANConfig: unknown fields {unknown}")
        return cls(**data)


#: Named model sizes. ``tiny``: the half-width upsampling generator at 64 px with a second
#: convolution at 16 and 32 px, the noise field (off the 2 physical codes, TUF and PSEP) and
#: a spectral-norm discriminator (docs/training.md measures each option).
GAN_PRESETS: dict[str, GANConfig] = {
    "paper": GANConfig(),
    "tiny": GANConfig(
        width=0.5, generator="upsample", refine=True, noise=True, spectral_norm=True, codes=2
    ),
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
    """z (N, latent_dim) -> model-space images b in [-1, 1], (N, 1, 128, 128); the paper's
    layers or the upsampling ones, as ``config.generator`` says (module docstring)."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        c64, c32 = config.channels(64), config.channels(32)
        self.c64 = c64
        if config.generator == "paper":
            self.fc = nn.Linear(config.latent_dim, c64 * 15 * 15)
            self.up1 = nn.ConvTranspose2d(c64, c64, kernel_size=3, stride=2, padding=0)
            self.up2 = nn.ConvTranspose2d(c64, c32, kernel_size=3, stride=2, padding=0)
            self.up3 = nn.ConvTranspose2d(c32, 1, kernel_size=3, stride=2, padding=0)
            return
        self.start = config.internal_size // 8  # rows (y) of the first feature map
        self.start_x = (config.internal_width or config.internal_size) // 8  # its columns (x)
        self.fc = nn.Linear(config.latent_dim, c64 * self.start * self.start_x)
        self.conv1 = nn.Conv2d(c64, c64, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c64, c64, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(c64, c32, kernel_size=3, padding=1)
        self.to_field = nn.Conv2d(c32, 1, kernel_size=3, padding=1)
        if config.refine:
            self.refine1 = nn.Conv2d(c64, c64, kernel_size=3, padding=1)
            self.refine2 = nn.Conv2d(c64, c64, kernel_size=3, padding=1)
        if config.noise:
            self.to_amplitude = nn.Conv2d(c32, 2, kernel_size=1)
            with torch.no_grad():
                self.to_amplitude.bias.copy_(torch.log(torch.tensor(NOISE_START)))
            noise_dim = config.latent_dim - config.codes  # the codes never move the noise
            self.register_buffer("noise_matrix", noise_matrix(noise_dim), persistent=False)
            if config.blob_blur_px:
                blobs = noise_matrix(noise_dim, config.blob_blur_px, NOISE_SEED + 1)
                self.register_buffer("blob_matrix", blobs, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"latent vectors must have shape (N, {self.config.latent_dim}), "
                f"got {tuple(z.shape)}"
            )
        if self.config.generator == "paper":
            return self._paper(z)
        return self._upsample(z)

    def _paper(self, z: torch.Tensor) -> torch.Tensor:
        slope = self.config.negative_slope
        x = F.leaky_relu(self.fc(z), slope)  # (N, c64*15*15)
        x = x.view(-1, self.c64, 15, 15)  # (N, c64, 15, 15)
        x = F.leaky_relu(self.up1(x), slope)  # (N, c64, 31, 31)
        x = F.leaky_relu(self.up2(x), slope)  # (N, c32, 63, 63)
        x = F.pad(x, (0, 1, 0, 1))  # (N, c32, 64, 64): right and bottom
        x = self._output(self.up3(x))  # (N, 1, 129, 129)
        return x[:, :, :MODEL_SIZE, :MODEL_SIZE]  # (N, 1, 128, 128)

    def _upsample(self, z: torch.Tensor) -> torch.Tensor:
        slope, s, k = self.config.negative_slope, self.start, self.config.codes
        if k and self.config.code_gain != 1:  # the codes as strong at the input as the rest
            z_in = torch.cat([z[:, :k] * self.config.code_gain, z[:, k:]], 1)
        else:
            z_in = z
        x = F.leaky_relu(self.fc(z_in), slope).view(-1, self.c64, s, self.start_x)  # S/8 rows
        refines = (self.refine1, self.refine2, None) if self.config.refine else (None,) * 3
        for conv, refine in zip((self.conv1, self.conv2, self.conv3), refines, strict=True):
            x = F.leaky_relu(conv(self._double(x)), slope)  # (N, c, S/4), (S/2), (S)
            if refine is not None:
                x = F.leaky_relu(refine(x), slope)
        size = (MODEL_SIZE, MODEL_SIZE)
        field = F.interpolate(self.to_field(x), size=size, mode="bilinear", align_corners=False)
        if not self.config.noise:
            return self._output(field)  # (N, 1, 128, 128)
        amplitude = torch.exp(self.to_amplitude(x).clamp(-12.0, 0.0))  # (N, 2, S, S)
        amplitude = F.interpolate(amplitude, size=size, mode="bilinear", align_corners=False)
        z_noise = z[:, self.config.codes :].float()  # the codes never move the noise

        def image(matrix: torch.Tensor) -> torch.Tensor:  # (N, 1, 128, 128)
            return (z_noise @ matrix.T).view(-1, 1, *size).to(field.dtype)

        n = image(self.noise_matrix)
        blobs = image(self.blob_matrix) if self.config.blob_blur_px else n
        noise = torch.cat([n, blobs**3 / 15**0.5], dim=1)  # (N, 2, 128, 128), unit variance each
        return self._output(field + (amplitude * noise).sum(1, keepdim=True))  # (N, 1, 128, 128)

    def _double(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> (N, C, 2H, 2W) by ``config.upsampling``."""
        if self.config.upsampling == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """The last non-linearity: tanh, or the data's clip to [-1, 1] with the identity's
        gradient (straight-through), so a pixel past the clip can still be pulled back."""
        if self.config.output == "tanh":
            return torch.tanh(x)
        return x + (x.clamp(-1.0, 1.0) - x).detach()

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from z ~ N(0, I) drawn with ``generator`` (on this module's device)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(device)
        return self(z)


def noise_matrix(
    latent_dim: int, blur_px: float = NOISE_BLUR_PX, seed: int = NOISE_SEED
) -> torch.Tensor:
    """P (128*128, latent_dim): column j is a white N(0, 1) 128 x 128 image drawn from
    ``seed``, blurred by a Gaussian of ``blur_px`` (circular), scaled so P z has pixel
    variance |z|^2 / latent_dim."""
    g = torch.Generator().manual_seed(seed)
    white = torch.randn(latent_dim, 1, MODEL_SIZE, MODEL_SIZE, generator=g)
    reach = max(2, math.ceil(3 * blur_px))
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * blur_px**2))
    kernel = (kernel[:, None] * kernel[None, :])[None, None]  # (1, 1, 2r+1, 2r+1)
    blurred = F.conv2d(F.pad(white, (reach,) * 4, mode="circular"), kernel)
    blurred = blurred / blurred.std()  # unit variance per pixel over columns
    return blurred.view(latent_dim, -1).T.contiguous() / latent_dim**0.5


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
        if config.spectral_norm:
            for name in ("conv1", "conv2", "conv3", "fc1", "fc2"):
                setattr(self, name, _spectral_norm(getattr(self, name)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        slope = self.config.negative_slope
        x = F.leaky_relu(self.conv1(images), slope)  # (N, c32, 63, 63)
        x = F.leaky_relu(self.conv2(x), slope)  # (N, c64, 31, 31)
        x = F.leaky_relu(self.conv3(x), slope)  # (N, c64, 15, 15)
        x = x.flatten(1)  # (N, c64*15*15)
        x = F.leaky_relu(self.fc1(x), slope)  # (N, c100)
        return self.fc2(x).squeeze(1)  # (N,) logits


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str = "bce"
) -> torch.Tensor:
    """D's loss on logits (G(z) detached): paper eq. (2) ``bce`` or ``hinge``."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if loss != "bce":
        raise ValueError(f"unknown GAN loss {loss!r}; choose one of {GAN_LOSSES}")
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)


def generator_loss(fake_logits: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    """G's loss on logits: paper eq. (1) non-saturating ``bce``, or ``hinge`` -mean(D(G(z)))."""
    fake_logits = fake_logits.float()
    if loss == "hinge":
        return -fake_logits.mean()
    if loss != "bce":
        raise ValueError(f"unknown GAN loss {loss!r}; choose one of {GAN_LOSSES}")
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1: ``gamma / 2`` times the mean over the real images of |grad_x D(x)|^2, from D's
    logits (N,) of ``real`` (N, 1, 128, 128, requires_grad); a graph that backpropagates
    into D's weights (one D pass serves the loss and the penalty)."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return 0.5 * gamma * grad.float().pow(2).flatten(1).sum(1).mean()
