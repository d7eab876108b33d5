"""SimSiam encoder (Chen & He 2020) with a ResNet backbone written here (SCIENCE.md,
"SimSiam retrieval"). torchvision is not used: it does not import beside the project's torch.

Paper sizes (``paper`` preset, ResNet-18)::

    stem: Conv2d(1 -> 64, 7x7, stride 2, pad 3) + BN + ReLU     -> (N, 64, 64, 64)
          MaxPool(3x3, stride 2, pad 1)                          -> (N, 64, 32, 32)
    layer1: 2 basic blocks, 64 channels                          -> (N, 64, 32, 32)
    layer2: 2 basic blocks, 128 channels, stride 2               -> (N, 128, 16, 16)
    layer3: 2 basic blocks, 256 channels, stride 2               -> (N, 256, 8, 8)
    layer4: 2 basic blocks, 512 channels, stride 2               -> (N, 512, 4, 4)
    global average pool                                          -> (N, 512)
    projection MLP (lightly's SimSiamProjectionHead(512, 512, 100), the reference code's):
        Linear 512 -> 512, BN, ReLU, Linear 512 -> 512, BN, ReLU,
        Linear 512 -> 100, BN without affine parameters                  -> z (N, 100)
    prediction MLP: Linear 100 -> 128, BN, ReLU, Linear 128 -> 100       -> p (N, 100)

The ``tiny`` preset keeps a two-layer projection (Linear, BN, ReLU, Linear, BN with affine
parameters; ``projection="two-layer"``), which is also what encoder checkpoints written before
the three-layer head existed hold: a stored config without ``projection`` loads as
``two-layer``.

The loss is SimSiam's symmetric negative cosine similarity with a stop-gradient on the
projection branch, computed in :meth:`SimSiam.forward`::

    L = -[cos(p1, stopgrad(z2)) + cos(p2, stopgrad(z1))] / 2          (-1 is the minimum)

The indexed vector (what retrieval searches) is the 100-d projection output z, see
:meth:`SimSiam.encode`. Collapse is monitored by :func:`collapse_level`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sharpseek.models.gan import check_images

__all__ = [
    "SimSiamConfig",
    "SIMSIAM_PRESETS",
    "simsiam_config",
    "ResNet",
    "BasicBlock",
    "SimSiam",
    "SimSiamOutput",
    "collapse_level",
    "projection_mlp",
    "PROJECTIONS",
]


REPRESENTATIONS = ("projection", "backbone")
#: Projection MLPs: "lightly" = lightly's SimSiamProjectionHead (three layers, the last BN
#: without affine parameters; the paper's reference code); "two-layer" = Linear, BN, ReLU,
#: Linear, BN (the tiny preset's, and every checkpoint's before the choice existed).
PROJECTIONS = ("lightly", "two-layer")


@dataclass(frozen=True)
class SimSiamConfig:
    """Sizes of the encoder; stored whole in every encoder checkpoint."""

    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels of the ResNet stages
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # basic blocks per stage (ResNet-18: 2, 2, 2, 2)
    stem_width: int = 64  # channels of the 7x7 stride-2 stem
    proj_hidden: int = 512  # hidden width of the projection MLP
    projection: str = "lightly"  # the projection MLP's layout (PROJECTIONS)
    dim: int = 100  # width of the projection output, and of the indexed vector
    pred_hidden: int = 128  # hidden width of the prediction MLP (SimSiam's bottleneck)
    # The indexed vector: "projection" (the paper's reference code: the 100-d projection
    # output) or "backbone" (the pooled backbone features, as SimSiam's own evaluation uses
    # them; then feature_dim must equal dim). docs/training.md has the measurements behind
    # the tiny preset's choice.
    representation: str = "projection"
    # Side of the grid the last stage is average-pooled to: 1 is the paper's global average
    # pool; 2 keeps where structures sit in the patch (four quadrants, widths[-1] * 4
    # features), which is what tells one region from a similar one elsewhere in the patch.
    pool_grid: int = 1

    def __post_init__(self):
        # tuples, also when rebuilt from a checkpoint's lists
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError(
                f"SimSiamConfig.widths {self.widths} and blocks {self.blocks} must be "
                "non-empty and of the same length (one entry per stage)"
            )
        if (
            min(self.widths + self.blocks) < 1
            or min(self.stem_width, self.proj_hidden, self.dim, self.pred_hidden) < 1
            or self.pool_grid < 1
        ):
            raise ValueError(f"SimSiamConfig sizes must be >= 1, got {self}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"SimSiamConfig.representation must be one of {REPRESENTATIONS}, got "
                f"{self.representation!r}"
            )
        if self.projection not in PROJECTIONS:
            raise ValueError(
                f"SimSiamConfig.projection must be one of {PROJECTIONS}, got {self.projection!r}"
            )
        if self.representation == "backbone" and self.feature_dim != self.dim:
            raise ValueError(
                f"SimSiamConfig.representation 'backbone' indexes the backbone's "
                f"{self.feature_dim}-d features: widths[-1] * pool_grid**2 must equal dim "
                f"({self.dim})"
            )

    @property
    def feature_dim(self) -> int:
        """Width of the backbone's pooled output (512 at paper size)."""
        return self.widths[-1] * self.pool_grid**2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimSiamConfig:
        """The config a checkpoint stored; one written before ``projection`` existed had
        the two-layer projection."""
        return cls(**{"projection": "two-layer", **data})


#: Named model sizes. ``tiny``: a narrow ResNet-10 for the CPU demo and tests.
SIMSIAM_PRESETS: dict[str, SimSiamConfig] = {
    "paper": SimSiamConfig(),
    # The tiny encoder indexes its backbone's pooled 100 channels: with the projection as the
    # indexed vector it only drew level with PCA of the pixels on same-region retrieval
    # (docs/training.md has the measurements).
    "tiny": SimSiamConfig(
        widths=(16, 32, 64, 100),
        blocks=(1, 1, 1, 1),
        stem_width=16,
        proj_hidden=128,
        projection="two-layer",
        pred_hidden=32,
        representation="backbone",
    ),
}


def simsiam_config(preset: str, **overrides: Any) -> SimSiamConfig:
    """The encoder sizes of a named preset (``tiny`` or ``paper``), with field overrides."""
    if preset not in SIMSIAM_PRESETS:
        raise ValueError(
            f"unknown SimSiam preset {preset!r}; choose one of {sorted(SIMSIAM_PRESETS)}"
        )
    return replace(SIMSIAM_PRESETS[preset], **overrides)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, plus the identity (or a 1x1
    strided projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, c_out, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet backbone for 1-channel 128 x 128 patches: (N, 1, 128, 128) -> (N, feature_dim),
    feature_dim = widths[-1] * pool_grid**2."""

    def __init__(self, config: SimSiamConfig):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, config.stem_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        c_in = config.stem_width
        for i, (width, n_blocks) in enumerate(zip(config.widths, config.blocks, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool_grid = config.pool_grid
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)  # (N, stem, 32, 32)
        x = self.stages(x)  # (N, widths[-1], 4, 4) with four stages
        if self.pool_grid == 1:
            return x.mean(dim=(2, 3))  # (N, widths[-1]): global average pool
        # (N, widths[-1] * g * g): average pool over a g x g grid, channels of each cell
        return F.adaptive_avg_pool2d(x, self.pool_grid).flatten(1)


def projection_mlp(config: SimSiamConfig) -> nn.Sequential:
    """The projection MLP (N, feature_dim) -> (N, dim) of ``config.projection``: lightly's
    SimSiamProjectionHead(feature_dim, proj_hidden, dim) (three Linear layers, bias-free
    before each BN, the last BN without affine parameters), or the two-layer one."""
    f, h, d = config.feature_dim, config.proj_hidden, config.dim
    if config.projection == "two-layer":
        return nn.Sequential(
            nn.Linear(f, h, bias=False),
            nn.BatchNorm1d(h),
            nn.ReLU(inplace=True),
            nn.Linear(h, d, bias=False),
            nn.BatchNorm1d(d),
        )
    return nn.Sequential(
        nn.Linear(f, h, bias=False),
        nn.BatchNorm1d(h),
        nn.ReLU(inplace=True),
        nn.Linear(h, h, bias=False),
        nn.BatchNorm1d(h),
        nn.ReLU(inplace=True),
        nn.Linear(h, d, bias=False),
        nn.BatchNorm1d(d, affine=False),
    )


class SimSiamOutput(NamedTuple):
    """What :meth:`SimSiam.forward` returns for a pair of views (a NamedTuple, so
    DistributedDataParallel can see its tensors)."""

    loss: torch.Tensor  # scalar, in [-1, 1]
    z1: torch.Tensor  # (N, dim) projections of view 1 (detached)
    z2: torch.Tensor  # (N, dim) projections of view 2 (detached)


class SimSiam(nn.Module):
    """Backbone + projection MLP (the representation) + prediction MLP (training only)."""

    def __init__(self, config: SimSiamConfig):
        super().__init__()
        self.config = config
        d = config.dim
        self.backbone = ResNet(config)
        self.projector = projection_mlp(config)
        self.predictor = nn.Sequential(
            nn.Linear(d, config.pred_hidden, bias=False),
            nn.BatchNorm1d(config.pred_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.pred_hidden, d),
        )

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 128, 128) -> projections z (N, dim), with gradients."""
        check_images(images)
        return self.projector(self.backbone(images))  # (N, dim)

    def represent(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 128, 128) -> the indexed vectors (N, dim): the projection, or the
        pooled backbone features (``config.representation``)."""
        if self.config.representation == "backbone":
            check_images(images)
            return self.backbone(images)  # (N, feature_dim == dim)
        return self.project(images)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> SimSiamOutput:
        """Two augmented views of the same images (N, 1, 128, 128) each -> loss and z's."""
        if view1.shape != view2.shape:
            raise ValueError(
                f"the two views must have the same shape, got {tuple(view1.shape)} and "
                f"{tuple(view2.shape)}"
            )
        n = view1.shape[0]
        z = self.project(torch.cat([view1, view2]))  # (2N, dim): one pass, shared BN stats
        p = self.predictor(z)  # (2N, dim)
        z1, z2 = z[:n], z[n:]
        p1, p2 = p[:n], p[n:]
        # stop-gradient on the projection branch: z is a constant target for p
        loss = -0.5 * (
            F.cosine_similarity(p1.float(), z2.detach().float(), dim=1).mean()
            + F.cosine_similarity(p2.float(), z1.detach().float(), dim=1).mean()
        )
        return SimSiamOutput(loss=loss, z1=z1.detach(), z2=z2.detach())

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor | Iterable[torch.Tensor], *, batch_size: int = 256
    ) -> torch.Tensor:
        """The 100-d representations (the indexed vectors, ``config.representation``) of
        images, in eval mode.

        Parameters
        ----------
        images : tensor (N, 1, 128, 128) or (N, 128, 128), or an iterable of such batches
            Model-space patches b in [-1, 1], on any device (moved to the model's).

        Returns
        -------
        tensor (N, dim), float32, on the CPU.
        """
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        if isinstance(images, torch.Tensor):
            images = images.unsqueeze(1) if images.ndim == 3 else images
            check_images(images)
            batches = images.split(batch_size)
        else:
            batches = images
        try:
            out = [self.represent(b.to(device, torch.float32)).float().cpu() for b in batches]
        finally:
            self.train(was_training)
        if not out:
            return torch.empty(0, self.config.dim)
        return torch.cat(out)


def collapse_level(z: torch.Tensor) -> float:
    """SimSiam's collapse monitor: the std over the batch of the L2-normalised outputs,
    averaged over dimensions, times sqrt(d). About 1 is healthy; 0 means collapsed (every
    image gives the same vector).

    Parameters
    ----------
    z : tensor (N, d), N >= 2
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"collapse_level needs outputs of shape (N >= 2, d), got {tuple(z.shape)}")
    zn = F.normalize(z.float(), dim=1)  # (N, d) unit vectors
    return float(zn.std(dim=0).mean() * math.sqrt(z.shape[1]))
