"""Batched augmentations for SimSiam, in torch on the training device (affine grids).

Each image gets its own random affine map, drawn from a seeded ``torch.Generator``:

- shift: a uniform offset within ``shift_px`` model pixels along x and along y;
- zoom: a magnification uniform in ``zoom`` (1.2 makes structures 20% larger);
- rotation: an angle uniform within +-``rotation_deg`` about the patch centre;
- vertical flip (with probability 1/2): y -> -y, north <-> south. This reverses the sign of
  the tilt (Joy <-> anti-Joy), so a flip-invariant encoder cannot tell them apart;
- quarter turns (``quarter_turns``, after the affine map): a random multiple of 90 deg,
  exact (``torch.rot90``, no resampling);
- blur (``blur_px``, last): a Gaussian of standard deviation uniform in [0, ``blur_px``] model
  pixels (SimCLR's blur), which leaves the encoder indifferent to the finest texture.

Pixels brought in from outside the patch are 0 (no field). Parameters are drawn on the CPU
from the generator, then applied with ``F.affine_grid`` / ``F.grid_sample`` (bilinear) on the
images' device, so the same seed gives the same maps on any device.

Named sets (:data:`AUGMENTATION_SETS`): ``paper`` (SCIENCE.md: shift 10 px, zoom 0.8-1.2,
rotation +-20 deg, vertical flip), ``tilt-sensitive`` (no flip, rotation +-5 deg: for searches
about tilt and orientation), ``none``, and three measured for issue 17's retrieval targets:
``no-zoom`` (the paper's set with shifts of 5 px and no zoom), ``flip`` (the north-south
flip only), ``dihedral`` (flip and quarter turns) and ``blur`` (the blur alone, up to 1.5 px:
the finest texture is where generated images differ most from the frames).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from sharpseek.models.gan import check_images
from sharpseek.physics.definitions import MODEL_SIZE

__all__ = [
    "AugmentConfig",
    "AUGMENTATION_SETS",
    "augmentation_set",
    "random_affine",
    "augment",
    "gaussian_blur",
]


@dataclass(frozen=True)
class AugmentConfig:
    """One augmentation set; every encoder checkpoint stores the one it was trained with.

    A component is switched off by its neutral value: ``shift_px=0``, ``zoom=(1, 1)``,
    ``rotation_deg=0``, ``vflip=False``.
    """

    name: str = "paper"
    shift_px: float = 10.0  # max |offset| along x and along y [model px]
    zoom: tuple[float, float] = (0.8, 1.2)  # magnification range
    rotation_deg: float = 20.0  # max |rotation| [deg]
    vflip: bool = True  # flip north-south with probability 1/2
    # a random multiple of 90 deg (after the affine map): exact, no resampling, and TUF, R,
    # PSEP and GRAD are unchanged by it
    quarter_turns: bool = False
    # Gaussian blur of sigma uniform in [0, blur_px] model px, after everything else; 0: off
    blur_px: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "zoom", tuple(float(v) for v in self.zoom))
        lo, hi = self.zoom
        if len(self.zoom) != 2 or not 0 < lo <= hi:
            raise ValueError(
                f"AugmentConfig.zoom must be (low, high) with 0 < low <= high, got {self.zoom}"
            )
        if self.shift_px < 0 or self.rotation_deg < 0:
            raise ValueError(
                f"AugmentConfig.shift_px and rotation_deg must be >= 0, got {self.shift_px}, "
                f"{self.rotation_deg}"
            )
        if not 0 <= self.blur_px <= 8:
            raise ValueError(f"AugmentConfig.blur_px must be in [0, 8], got {self.blur_px}")

    @property
    def is_identity(self) -> bool:
        return (
            self.shift_px == 0
            and self.zoom == (1.0, 1.0)
            and self.rotation_deg == 0
            and not self.vflip
            and not self.quarter_turns
            and self.blur_px == 0
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        return cls(**data)


AUGMENTATION_SETS: dict[str, AugmentConfig] = {
    "paper": AugmentConfig("paper"),
    "tilt-sensitive": AugmentConfig("tilt-sensitive", rotation_deg=5.0, vflip=False),
    "none": AugmentConfig("none", shift_px=0.0, zoom=(1.0, 1.0), rotation_deg=0.0, vflip=False),
    # Sets that keep what the retrieval targets measure (issue 17; docs/search.md, "Encoder
    # variants"): "no-zoom" keeps sizes and separations (PSEP, TUF); "flip" and "dihedral"
    # (flip and quarter turns) change no pixel value, so TUF, R, PSEP and GRAD are kept exactly.
    "no-zoom": AugmentConfig("no-zoom", shift_px=5.0, zoom=(1.0, 1.0)),
    "flip": AugmentConfig("flip", shift_px=0.0, zoom=(1.0, 1.0), rotation_deg=0.0),
    "dihedral": AugmentConfig(
        "dihedral", shift_px=0.0, zoom=(1.0, 1.0), rotation_deg=0.0, quarter_turns=True
    ),
    "blur": AugmentConfig(
        "blur", shift_px=0.0, zoom=(1.0, 1.0), rotation_deg=0.0, vflip=False, blur_px=1.5
    ),
}


def augmentation_set(name: str, **overrides: Any) -> AugmentConfig:
    """The named augmentation set (``paper``, ``tilt-sensitive``, ``none``, ``no-zoom``,
    ``flip``, ``dihedral``, ``blur``), with overrides."""
    if name not in AUGMENTATION_SETS:
        raise ValueError(
            f"unknown augmentation set {name!r}; choose one of {sorted(AUGMENTATION_SETS)}"
        )
    return replace(AUGMENTATION_SETS[name], **overrides)


def random_affine(
    n: int, config: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` random affine maps as ``F.affine_grid`` thetas (n, 2, 3), float32 on the CPU.

    Theta maps output coordinates to input coordinates in normalised units (-1..1 across
    the patch; one pixel = 2/128). With A = R(angle) / zoom (and y negated for a flip), an
    output point p samples the input at A (p - t): the content is rotated by ``angle``,
    magnified by ``zoom`` and moved by t.
    """
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)  # (n, 5) in [0, 1)
    shift = (2 * u[:, 0:2] - 1) * config.shift_px * (2.0 / MODEL_SIZE)  # (n, 2) normalised
    lo, hi = config.zoom
    zoom = lo + (hi - lo) * u[:, 2]  # (n,)
    angle = (2 * u[:, 3] - 1) * math.radians(config.rotation_deg)  # (n,)
    flip = (u[:, 4] < 0.5) if config.vflip else torch.zeros(n, dtype=torch.bool)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (n,2,2)
    a[flip, :, 1] *= -1  # y -> -y before rotating: a north-south flip
    t = -(a @ shift.unsqueeze(-1))  # (n, 2, 1)
    return torch.cat([a, t], dim=2).float()  # (n, 2, 3)


def augment(
    images: torch.Tensor,
    config: AugmentConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Augment a batch (N, 1, 128, 128) on its own device; a new tensor, same shape.

    Parameters
    ----------
    images : tensor (N, 1, 128, 128)
        Model-space patches.
    config : AugmentConfig
        Which transformations, how large (:func:`augmentation_set` gives the named ones).
    generator : torch.Generator, optional
        A CPU generator: the same state gives the same maps on any device.
    """
    check_images(images)
    if config.is_identity:
        return images.clone()
    if replace(config, quarter_turns=False, blur_px=0.0).is_identity:  # no resampling at all
        out = images.clone()
    else:
        theta = random_affine(images.shape[0], config, generator).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, 128, 128, 2)
        out = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
    if config.quarter_turns:
        turns = torch.randint(0, 4, (images.shape[0],), generator=generator)  # (N,) on the CPU
        for k in (1, 2, 3):
            chosen = (turns == k).to(out.device)
            out[chosen] = torch.rot90(out[chosen], k, dims=(2, 3))
    if config.blur_px > 0:
        sigma = torch.rand(images.shape[0], generator=generator) * config.blur_px  # (N,) CPU
        out = gaussian_blur(out, sigma.to(out.device))
    return out


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image (N, 1, H, W) blurred by a Gaussian of its own ``sigma`` (N,) [px] (0: left
    as it is), separably, with zeros beyond the patch (as the affine maps bring in)."""
    reach = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-reach, reach + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images.dtype).clamp(min=1e-3)[:, None]  # (N, 1)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * s**2))  # (N, 2r+1)
    kernel = kernel / kernel.sum(1, keepdim=True)
    n, _, h, w = images.shape
    x = images.reshape(1, n, h, w)  # one group per image
    x = F.conv2d(x, kernel[:, None, :, None], padding=(reach, 0), groups=n)  # along y
    x = F.conv2d(x, kernel[:, None, None, :], padding=(0, reach), groups=n)  # along x
    return x.reshape(n, 1, h, w)
