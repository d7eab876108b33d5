"""Physical latent codes (issue 17's option ``code_weight`` of GAN training): the first
``k`` latent coordinates c = z[:, :k] of the generator are tied, during training, to the
physical parameters named in ``code_parameters`` (TUF, PSEP, R), so that a straight step in
latent space moves them, as the paper's directions assume.

Why: the demo GAN trained by the plain recipe draws images whose TUF, PSEP and R are not
linear in z (ridge R^2 of each on z below 0 on 3,000 samples, docs/training.md): a linear
direction then raises its parameter in ~75 % of seeds by a few per cent. A known code read
back from the image is InfoGAN's device (Chen et al. 2016, mutual information between a
latent code and the image); here the reader is the physics itself, not a learned network.

The codes follow the dataset's joint distribution of the log parameters: with f(x) the
vector of log surrogates (below) of an image, mu and Sigma = L L^T (Cholesky) their mean and
covariance over bipolar training frames, a code c ~ N(0, I) asks for f = mu + L c, and::

    L_code = mean over images and parameters of huber((f(G(z)) - mu - L c) / s)

with s the per-parameter standard deviation; the PSEP term only where G(z) is bipolar. The
generator's loss is L_G + ``code_weight`` * L_code. The directions are still fitted by
measurement (sharpseek directions fit) on z ~ N(0, I): nothing tells them which coordinates
the codes are.

The differentiable surrogates of TUF, PSEP and R are
:func:`sharpseek.physics.surrogates.soft_parameters`; the codes read them as::

    f    = (log tuf, log(psep + 1), log(r + r_floor)), r_floor the 5th percentile of r > 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sharpseek.physics.surrogates import SURROGATE_PARAMETERS, soft_parameters

__all__ = ["CODE_PARAMETERS", "CodeTargets", "code_loss"]

#: The parameters a code may carry (the order of the latent coordinates is the config's).
CODE_PARAMETERS = SURROGATE_PARAMETERS


@dataclass(frozen=True)
class CodeTargets:
    """The dataset's joint distribution of the log surrogates ``f`` of ``parameters``: mean
    ``mu`` (k,), Cholesky factor ``chol`` (k, k) of the covariance, standard deviations
    ``scale`` (k,), and ``r_floor`` [b] (module docstring)."""

    parameters: tuple[str, ...]
    mu: torch.Tensor
    chol: torch.Tensor
    scale: torch.Tensor
    r_floor: float

    @classmethod
    def from_images(cls, images: np.ndarray, parameters: tuple[str, ...]) -> CodeTargets:
        """From real frames (n, 128, 128) in b; only bipolar frames count."""
        unknown = [p for p in parameters if p not in CODE_PARAMETERS]
        if unknown:
            raise ValueError(f"code_parameters: {unknown} unknown; choose from {CODE_PARAMETERS}")
        parts, flags = [], []
        with torch.no_grad():
            for chunk in np.array_split(images, max(1, len(images) // 256)):
                values, bipolar = soft_parameters(torch.from_numpy(chunk).float()[:, None])
                parts.append(values)
                flags.append(bipolar)
        values = {p: torch.cat([v[p] for v in parts]).double() for p in parameters}
        bipolar = torch.cat(flags)
        if int(bipolar.sum()) < 2 * len(parameters) + 2:
            raise ValueError(
                f"code targets need bipolar training frames; found {int(bipolar.sum())}"
            )
        r = values.get("r", torch.ones(1))
        positive = r[r > 0]
        r_floor = float(np.percentile(positive.numpy(), 5)) if len(positive) else 1e-6
        f = _log_values({p: v[bipolar] for p, v in values.items()}, parameters, r_floor)
        mu = f.mean(0)
        cov = torch.cov(f.T).reshape(len(parameters), len(parameters))
        chol = torch.linalg.cholesky(cov + 1e-9 * torch.eye(len(parameters), dtype=cov.dtype))
        return cls(tuple(parameters), mu.float(), chol.float(), cov.diag().sqrt().float(), r_floor)


def _log_values(
    values: dict[str, torch.Tensor], parameters: tuple[str, ...], r_floor: float
) -> torch.Tensor:
    """f (N, k): log tuf, log(psep + 1), log(r + r_floor) in the order of ``parameters``."""
    shift = {"tuf": 0.0, "psep": 1.0, "r": r_floor}
    return torch.stack([torch.log(values[p] + shift[p]) for p in parameters], 1)


def code_loss(
    images: torch.Tensor,
    codes: torch.Tensor,
    targets: CodeTargets,
    weight_total: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """L_code (module docstring) of generated images (N, 1, 128, 128) drawn from latent
    vectors whose first k coordinates are ``codes`` (N, k); a scalar. ``weight_total`` maps
    this batch's summed weight (a 0-d tensor) to the total the loss is averaged over (None:
    the batch's own); under DDP the global batch's over the world size, so that the
    ranks' averaged gradients equal one process's on the whole batch."""
    values, bipolar = soft_parameters(images)
    f = _log_values(values, targets.parameters, targets.r_floor)  # (N, k)
    mu, chol, scale = (t.to(f.device) for t in (targets.mu, targets.chol, targets.scale))
    wanted = mu + codes.float() @ chol.T  # (N, k)
    error = F.huber_loss(f / scale, wanted / scale, reduction="none")  # (N, k)
    weight = torch.ones_like(error)
    if "psep" in targets.parameters:  # PSEP is undefined on a unipolar image
        weight[:, targets.parameters.index("psep")] = bipolar.float()
    total = weight.sum().detach()
    if weight_total is not None:
        total = weight_total(total)
    return (error * weight).sum() / total.clamp(min=1.0)
