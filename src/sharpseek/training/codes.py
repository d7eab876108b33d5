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

``marginals = "empirical"`` keeps the dependence but not the bell: the log parameters are
not Gaussian (log PSEP is skewed to the left, bounded by the patch: its mean-and-sd
Gaussian asks for a median PSEP of 27 px where the frames have 32), so a code instead asks
for the data's own quantiles through a Gaussian copula::

    f_p = Q_p(Phi((L' c)_p))      Q_p the quantile function of f_p over the frames,
                                  L' L'^T the correlation of their normal scores

The flux balance (option ``balance_weight``) reads one more quantity back from every
generated image: the signed imbalance u = (F+ - F-) / (F+ + F-) of the fluxes over P and N
(:func:`sharpseek.physics.surrogates.soft_flux_imbalance`). An active region's two
polarities carry nearly equal flux (the demo data: median |u| 0.03), but the codes' PSEP can
be met by a strong spot and weak, far-away flux of the other sign (the demo GAN of 16
epochs: median |u| 0.28). With s the root mean square of u over the training frames::

    L_balance = mean over images of huber(u(G(z)) / s)

and the generator's loss gains ``balance_weight`` * L_balance.

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

from sharpseek.physics.surrogates import (
    SURROGATE_PARAMETERS,
    soft_flux_imbalance,
    soft_parameters,
)

__all__ = [
    "CODE_MARGINALS",
    "CODE_PARAMETERS",
    "CodeTargets",
    "balance_loss",
    "balance_scale",
    "code_loss",
]

#: The parameters a code may carry (the order of the latent coordinates is the config's).
CODE_PARAMETERS = SURROGATE_PARAMETERS
#: What each code's parameter is drawn from: a Gaussian of the data's mean and covariance of
#: the logs, or the data's own quantiles (module docstring).
CODE_MARGINALS = ("gaussian", "empirical")
#: Quantile levels 0, 1/200, ..., 1 that hold the empirical marginals.
QUANTILE_LEVELS = 201


@dataclass(frozen=True)
class CodeTargets:
    """The dataset's joint distribution of the log surrogates ``f`` of ``parameters``: mean
    ``mu`` (k,), standard deviations ``scale`` (k,), ``r_floor`` [b], and either (Gaussian
    marginals) ``chol`` (k, k) the Cholesky factor of the covariance, or (empirical) ``chol``
    that of the normal scores' correlation and ``quantiles`` (k, QUANTILE_LEVELS) of each f_p
    (module docstring)."""

    parameters: tuple[str, ...]
    mu: torch.Tensor
    chol: torch.Tensor
    scale: torch.Tensor
    r_floor: float
    quantiles: torch.Tensor | None = None  # None: Gaussian marginals

    @classmethod
    def from_images(
        cls, images: np.ndarray, parameters: tuple[str, ...], marginals: str = "gaussian"
    ) -> CodeTargets:
        """From real frames (n, 128, 128) in b; only bipolar frames count."""
        unknown = [p for p in parameters if p not in CODE_PARAMETERS]
        if unknown:
            raise ValueError(f"code_parameters: {unknown} unknown; choose from {CODE_PARAMETERS}")
        parts = _over_frames(images, soft_parameters)  # [(values, bipolar)] per chunk
        values = {p: torch.cat([v[p] for v, _ in parts]).double() for p in parameters}
        bipolar = torch.cat([flags for _, flags in parts])
        if int(bipolar.sum()) < 2 * len(parameters) + 2:
            raise ValueError(
                f"code targets need bipolar training frames; found {int(bipolar.sum())}"
            )
        r = values.get("r", torch.ones(1))
        positive = r[r > 0]
        r_floor = float(np.percentile(positive.numpy(), 5)) if len(positive) else 1e-6
        f = _log_values({p: v[bipolar] for p, v in values.items()}, parameters, r_floor)
        return cls.from_log_values(f, parameters, r_floor, marginals)

    @classmethod
    def from_log_values(
        cls, f: torch.Tensor, parameters: tuple[str, ...], r_floor: float, marginals: str
    ) -> CodeTargets:
        """From the log values f (n, k) of n frames (module docstring)."""
        if marginals not in CODE_MARGINALS:
            raise ValueError(f"code marginals must be one of {CODE_MARGINALS}, got {marginals!r}")
        f = f.double()
        mu = f.mean(0)
        k = len(parameters)
        cov = torch.cov(f.T).reshape(k, k)
        quantiles = None
        if marginals == "empirical":
            levels = torch.linspace(0, 1, QUANTILE_LEVELS, dtype=f.dtype)
            quantiles = torch.quantile(f, levels, dim=0).T.contiguous().float()  # (k, Q)
            ranks = f.argsort(0).argsort(0).double() + 1  # 1..n per parameter
            scores = torch.special.ndtri(ranks / (len(f) + 1))
            joint = torch.corrcoef(scores.T).reshape(k, k)
        else:
            joint = cov
        chol = torch.linalg.cholesky(joint + 1e-9 * torch.eye(k, dtype=joint.dtype))
        scale = cov.diag().sqrt().float()
        return cls(tuple(parameters), mu.float(), chol.float(), scale, r_floor, quantiles)

    def wanted(self, codes: torch.Tensor) -> torch.Tensor:
        """The log values f (N, k) that codes (N, k) ask for."""
        g = codes.float() @ self.chol.to(codes.device).T  # (N, k)
        if self.quantiles is None:
            return self.mu.to(codes.device) + g
        quantiles = self.quantiles.to(codes.device)  # (k, Q)
        position = torch.special.ndtr(g) * (quantiles.shape[1] - 1)  # (N, k) in [0, Q - 1]
        low = position.floor().clamp(max=quantiles.shape[1] - 2).long()
        part = position - low
        rows = torch.arange(quantiles.shape[0], device=codes.device)
        below, above = quantiles[rows, low], quantiles[rows, low + 1]  # (N, k) each
        return below + part * (above - below)


def _over_frames(images: np.ndarray, reader: Callable) -> list:
    """``reader`` (a surrogate of :mod:`sharpseek.physics.surrogates`) applied without
    gradients to frames (n, 128, 128) in b, 256 at a time; its outputs, one per chunk."""
    with torch.no_grad():
        return [
            reader(torch.from_numpy(chunk).float()[:, None])
            for chunk in np.array_split(images, max(1, len(images) // 256))
        ]


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
    scale = targets.scale.to(f.device)
    error = F.huber_loss(f / scale, targets.wanted(codes) / scale, reduction="none")  # (N, k)
    weight = torch.ones_like(error)
    if "psep" in targets.parameters:  # PSEP is undefined on a unipolar image
        weight[:, targets.parameters.index("psep")] = bipolar.float()
    total = weight.sum().detach()
    if weight_total is not None:
        total = weight_total(total)
    return (error * weight).sum() / total.clamp(min=1.0)


def balance_scale(images: np.ndarray) -> float:
    """s of L_balance: the root mean square of the soft flux imbalance over frames
    (n, 128, 128) in b (module docstring); at least 0.01 (a dataset of exactly balanced
    frames would otherwise make any imbalance infinitely costly)."""
    u = torch.cat(_over_frames(images, soft_flux_imbalance)).double()
    return max(0.01, float(u.pow(2).mean().sqrt()))


def balance_loss(images: torch.Tensor, scale: float) -> torch.Tensor:
    """L_balance (module docstring) of generated images (N, 1, 128, 128); a scalar. A mean
    over this rank's images: every image counts, so under DDP the ranks' averaged gradients
    equal one process's on the whole batch."""
    u = soft_flux_imbalance(images)  # (N,)
    return F.huber_loss(u / scale, torch.zeros_like(u), reduction="mean")
