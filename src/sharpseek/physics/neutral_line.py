"""Polarity masks and the neutral-line region behind Schrijver's R, batched in torch.

P = {b > 0.15}, N = {b < -0.15} and M = dil7(P) & dil7(N), where R sums |B| (SCIENCE.md,
"Physical parameters"; Schrijver 2007, ApJ 655, L117). Internal to :mod:`sharpseek.physics`.
"""

import astropy.units as u
import torch

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE, POLARITY_THRESHOLD
from sharpseek.physics.workspace import _Workspace

_TH = POLARITY_THRESHOLD.to_value(u.G) / FIELD_SCALE.to_value(u.G)  # 0.15, in units of b


def _polarity_masks(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P = {b > th}, N = {b < -th} (strict), bool (n, 128, 128)."""
    return b > _TH, b < -_TH


def _inversion_region(pos: torch.Tensor, neg: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """M = dilate(P) & dilate(N) with a 7 x 7 square, zero outside the image; bool (m, 128, 128).

    Same result as ``scipy.ndimage.binary_dilation(P, structure=np.ones((7, 7)))`` (border value
    0) and likewise for N. Both masks are dilated at once: one byte per pixel holds P in bit 0
    and N in bit 1, and the dilation is a bitwise OR over the 7 x 7 window, done separably by
    log-doubling on zero-padded stacks: OR with the neighbour 1 away (window 2), then 2 away
    (window 4), then 3 away (window 7), along y and then along x. M is where both bits are set.
    The result is a view of a workspace buffer, valid until the next block.
    """
    m, size, u8 = pos.shape[0], MODEL_SIZE, torch.uint8
    image = (size, size)
    rows = ws("dil_rows", (size + 6, size), u8, m)  # 3 zero rows above and below the image
    torch.bitwise_left_shift(neg.view(u8), 1, out=rows[:, 3:-3]).bitwise_or_(pos.view(u8))
    w2 = torch.bitwise_or(rows[:, 1:], rows[:, :-1], out=ws("dil_y2", (size + 5, size), u8, m))
    w4 = torch.bitwise_or(w2[:, 2:], w2[:, :-2], out=ws("dil_y4", (size + 3, size), u8, m))
    cols = ws("dil_cols", (size, size + 6), u8, m)  # 3 zero columns left and right
    torch.bitwise_or(w4[:, 3:], w4[:, :-3], out=cols[:, :, 3:-3])  # rows i-3..i+3
    w2 = torch.bitwise_or(cols[..., 1:], cols[..., :-1], out=ws("dil_x2", (size, size + 5), u8, m))
    w4 = torch.bitwise_or(w2[..., 2:], w2[..., :-2], out=ws("dil_x4", (size, size + 3), u8, m))
    w7 = torch.bitwise_or(w4[..., 3:], w4[..., :-3], out=ws("dil_x7", image, u8, m))
    return torch.eq(w7, 3, out=ws("dil_m", image, torch.bool, m))
