"""Differentiable surrogates of TUF, PSEP and R, for gradients through a generator: the
physical codes of GAN training (:mod:`sharpseek.training.codes`) and the measured hold of a
latent shift (:mod:`sharpseek.science.directions.hold`) follow them.

The surrogates (of the definitions in
:func:`sharpseek.physics.parameters.compute_parameters`, b the model-space image, th = 0.15; the
masks P, N of b > th, b < -th are soft, a sigmoid of width ``SOFTNESS``, and the 7 x 7 dilation a
max-pool)::

    tuf  = mean |b|                                                       (TUF / (1000 G 128^2))
    psep = | centroid(b+ P) - centroid(b- N) |                            model px
    r    = mean |b| * dil7(P) * dil7(N)                                   (R / (1000 G 128^2))

and, for the flux balance of GAN training (``balance_weight``), the signed imbalance of the
fluxes over P and N (SCIENCE.md's TPF and TNF), unitless in [-1, 1]::

    imbalance = (sum b+ P - sum b- N) / (sum b+ P + sum b- N)

They are approximations for gradients only: every value sharpseek reports comes from
:func:`~sharpseek.physics.parameters.compute_parameters`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sharpseek.physics.definitions import MODEL_SIZE, POLARITY_THRESHOLD, R_DILATION_SIZE

__all__ = [
    "MIN_POLARITY_MASS",
    "SOFTNESS",
    "SURROGATE_PARAMETERS",
    "soft_flux_imbalance",
    "soft_parameters",
]

#: The parameters with a differentiable surrogate.
SURROGATE_PARAMETERS = ("tuf", "psep", "r")
#: Width [b] of the sigmoid that softens the polarity masks (b > 0.15): 20 G.
SOFTNESS = 0.02
#: A polarity of less total |b| than this [b px] counts as absent (PSEP undefined): 10^4 G px.
MIN_POLARITY_MASS = 10.0
_TH = float(POLARITY_THRESHOLD.to_value("G")) / 1000.0  # 0.15, in units of b


def soft_parameters(images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Differentiable surrogates of TUF, PSEP and R (module docstring) of images
    (N, 1, 128, 128) in b; returns ({name: (N,)}, bipolar (N,) bool)."""
    b = images[:, 0].float()  # (N, 128, 128)
    pos, neg, w_pos, w_neg = _soft_polarities(b)
    axis = torch.arange(MODEL_SIZE, dtype=b.dtype, device=b.device)
    m_pos, m_neg = w_pos.sum((1, 2)), w_neg.sum((1, 2))  # (N,)

    def centroid(w: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:  # (N, 2): y, x
        y = (w.sum(2) * axis).sum(1) / mass.clamp(min=1e-6)
        x = (w.sum(1) * axis).sum(1) / mass.clamp(min=1e-6)
        return torch.stack([y, x], 1)

    gap = centroid(w_pos, m_pos) - centroid(w_neg, m_neg)
    psep = torch.sqrt(gap.pow(2).sum(1) + 1e-6)
    pad = R_DILATION_SIZE // 2
    dilate = lambda m: F.max_pool2d(m[:, None], R_DILATION_SIZE, 1, pad)[:, 0]  # noqa: E731
    r = (b.abs() * dilate(pos) * dilate(neg)).mean((1, 2))
    bipolar = (m_pos > MIN_POLARITY_MASS) & (m_neg > MIN_POLARITY_MASS)
    return {"tuf": b.abs().mean((1, 2)), "psep": psep, "r": r}, bipolar


def soft_flux_imbalance(images: torch.Tensor) -> torch.Tensor:
    """Differentiable signed flux imbalance (module docstring) of images (N, 1, 128, 128)
    in b: (N,) in [-1, 1]; 0 for an image with no flux beyond the threshold."""
    _, _, w_pos, w_neg = _soft_polarities(images[:, 0].float())
    m_pos, m_neg = w_pos.sum((1, 2)), w_neg.sum((1, 2))  # (N,) [b px]
    return (m_pos - m_neg) / (m_pos + m_neg).clamp(min=1e-6)


def _soft_polarities(b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Soft masks P, N of b (N, 128, 128) and their |b|-weights b+ P, b- N, each (N, 128, 128)."""
    pos = torch.sigmoid((b - _TH) / SOFTNESS)
    neg = torch.sigmoid((-b - _TH) / SOFTNESS)
    return pos, neg, b.clamp(min=0) * pos, (-b).clamp(min=0) * neg
