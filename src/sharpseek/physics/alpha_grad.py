"""ALPHA (the power-spectrum slope) and GRAD (the mean gradient) of model-space images, batched.

Internal to :mod:`sharpseek.physics`; the definitions are SCIENCE.md's ("Physical parameters").
"""

import numpy as np
import torch

from sharpseek.physics.definitions import ALPHA_MAX_RING, MODEL_SIZE
from sharpseek.physics.workspace import _Workspace

_ALPHA_CACHE: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _alpha_operators(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bins, inv_count, slope): the constants that turn the needed DFT block into ALPHA.

    The block holds F at ky = 0..25 then -25..-1 (rows) and kx = 0..25 (columns), as (Re, Im)
    pairs: 51 * 26 * 2 values. ``bins`` sends each to a bin: ring k = floor(distance from the
    zero frequency) for kx > 0, 26 + k for kx = 0, 52 (ignored) for rings outside 1..25. The
    full-plane ring sum of |F|^2 is then 2 bin[k] + bin[26 + k], each kx > 0 value standing
    also for its Hermitian twin F(-ky, -kx) = conj F(ky, kx); ``inv_count`` (25,) is 1 / the
    number of full-plane pixels in ring k, and ``slope`` (25,) maps log10 P(k) to the
    least-squares slope against log10 k.
    """
    key = str(device)
    if key not in _ALPHA_CACHE:
        kmax = ALPHA_MAX_RING
        ky = np.concatenate([np.arange(0, kmax + 1), np.arange(-kmax, 0)])[:, None]  # (51, 1)
        kx = np.arange(0, kmax + 1)[None, :]  # (1, 26)
        ring = np.floor(np.sqrt(ky**2 + kx**2)).astype(np.int64)  # (51, 26)
        bins = np.where(kx == 0, kmax + 1 + ring, ring)
        bins = np.where((ring >= 1) & (ring <= kmax), bins, 2 * (kmax + 1))
        full = np.arange(-MODEL_SIZE // 2, MODEL_SIZE // 2)
        full_ring = np.floor(np.sqrt(full[:, None] ** 2 + full[None, :] ** 2)).astype(int)
        rings = np.arange(1, kmax + 1)
        counts = np.array([(full_ring == k).sum() for k in rings], dtype=np.float64)
        logk = np.log10(rings)
        slope = (logk - logk.mean()) / np.sum((logk - logk.mean()) ** 2)
        _ALPHA_CACHE[key] = (
            torch.as_tensor(np.repeat(bins.ravel(), 2), device=device),  # Re and Im alike
            torch.as_tensor(1.0 / counts, device=device),
            torch.as_tensor(slope, device=device),
        )
    return _ALPHA_CACHE[key]


def _ring_power(b: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """P(k), the mean of |F|^2 over the full-plane ring k = 1..25 of F = fft2(b). (m, 25)"""
    m, kmax = b.shape[0], ALPHA_MAX_RING
    bins, inv_count, _ = _alpha_operators(b.device)
    along_x = torch.fft.rfft(b, dim=2)  # (m, 128, 65): kx = 0..64
    spec = torch.fft.fft(along_x[:, :, : kmax + 1], dim=1)  # (m, 128, 26): only kx = 0..25
    block = ws("spec_block", (2 * kmax + 1, kmax + 1), torch.complex128, m)  # (m, 51, 26)
    torch.cat((spec[:, : kmax + 1], spec[:, -kmax:]), 1, out=block)  # ky = 0..25, -25..-1
    squares = torch.view_as_real(block).square_().view(m, -1)  # (m, 2652): Re^2, Im^2
    sums = torch.zeros(m, 2 * (kmax + 1) + 1, dtype=b.dtype, device=b.device)
    sums.index_add_(1, bins, squares)
    return (2.0 * sums[:, 1 : kmax + 1] + sums[:, kmax + 2 : 2 * kmax + 2]) * inv_count


def _gradient_sum(x: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """Sum over pixels of 2 sqrt(gx^2 + gy^2), numpy.gradient semantics (unit spacing). (m,)

    Computed in float32 (relative error ~1e-7, far below the 1e-4 the oracle tests ask) on
    2 g: differences not halved inside and doubled at the edges, exact in binary floating point.
    """
    m, image, f32 = x.shape[0], (MODEL_SIZE, MODEL_SIZE), torch.float32
    if x.dtype != f32:
        x = ws("b32", image, f32, m).copy_(x)
    gx, gy = ws("gx", image, f32, m), ws("gy", image, f32, m)
    torch.sub(x[:, :, 2:], x[:, :, :-2], out=gx[:, :, 1:-1])  # f[i+1] - f[i-1]
    torch.sub(x[:, :, 1], x[:, :, 0], out=gx[:, :, 0]).mul_(2.0)  # 2 (f[1] - f[0])
    torch.sub(x[:, :, -1], x[:, :, -2], out=gx[:, :, -1]).mul_(2.0)
    torch.sub(x[:, 2:, :], x[:, :-2, :], out=gy[:, 1:-1, :])
    torch.sub(x[:, 1, :], x[:, 0, :], out=gy[:, 0, :]).mul_(2.0)
    torch.sub(x[:, -1, :], x[:, -2, :], out=gy[:, -1, :]).mul_(2.0)
    return gx.mul_(gx).addcmul_(gy, gy).sqrt_().sum((1, 2))  # sum of 2 |grad b|
