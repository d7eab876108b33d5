"""Real frames at their true aspect: a SHARP's CEA patch is not square, the model space is.

An uploaded FITS frame is drawn from its own data; an indexed record keeps only its 128 x 128
model-space image, so it is resampled back to its frame's aspect (``naxis1`` x ``naxis2``, or
``128 * scale_x`` x ``128 * scale_y``) with the pixel side that follows from its CEA pixel
(``cdelt1``, ``rsun_ref``). Pictures: :func:`sharpseek.science.plotting.magnetogram_panel_rgb`
with ``axis_unit="Mm"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE, RSUN_REF, SHARP_PIXEL_SCALE
from sharpseek.physics.native import cea_pixel_side

__all__ = ["TrueAspect", "cea_pixel_mm", "true_aspect"]

#: Model-space b = B_r / FIELD_SCALE [G].
_FIELD_SCALE_G = FIELD_SCALE.to_value(u.G)


def cea_pixel_mm(meta: dict[str, Any]) -> float:
    """One CEA pixel's side [Mm] of a frame whose metadata holds ``cdelt1`` [deg] and
    ``rsun_ref`` [m] (SHARP's 0.03 deg and 696 Mm where missing)."""

    def number(key: str, default: u.Quantity) -> u.Quantity:
        try:
            value = float(meta.get(key))
        except (TypeError, ValueError):
            return default
        return value * default.unit if np.isfinite(value) and value > 0 else default

    scale, radius = number("cdelt1", SHARP_PIXEL_SCALE), number("rsun_ref", RSUN_REF)
    return float(cea_pixel_side(scale, radius).to_value(u.Mm))


@dataclass(frozen=True)
class TrueAspect:
    """A real frame to draw at its true aspect.

    Attributes
    ----------
    image_gauss : ndarray (ny, nx) float32
        B_r [G], row 0 south, column 0 east.
    pixel_mm : float
        Side of one pixel of ``image_gauss`` [Mm].
    native_shape : (naxis2, naxis1)
        The frame's own size in CEA pixels.
    resampled : bool
        True when drawn from the 128 x 128 model-space image (an indexed record: its field
        is clipped at +-1000 G and its detail is the model image's), False for the frame's
        own data.
    """

    image_gauss: np.ndarray
    pixel_mm: float
    native_shape: tuple[int, int]
    resampled: bool

    def caption(self) -> str:
        """What the picture is, in words (its size in CEA pixels and Mm)."""
        ny, nx = self.native_shape
        cea = self.pixel_mm * self.image_gauss.shape[1] / nx  # one CEA pixel's side [Mm]
        size = f"{nx} x {ny} CEA px of {cea:.3f} Mm ({nx * cea:.0f} x {ny * cea:.0f} Mm)"
        if self.resampled:
            return f"true aspect, {size}: resampled from the stored 128 x 128 model image"
        return f"true aspect, {size}: the frame's own data, B_r clipped to the colour scale"


def true_aspect(
    image: np.ndarray, meta: dict[str, Any], native_gauss: np.ndarray | None = None
) -> TrueAspect | None:
    """A real frame at its true aspect, or None when ``meta`` does not say its size.

    Parameters
    ----------
    image : ndarray (128, 128)
        Its model-space image, b = B_r / 1000 G.
    meta : dict
        Its metadata or index payload: ``naxis1``/``naxis2`` (else ``scale_x``/``scale_y``),
        ``cdelt1`` [deg], ``rsun_ref`` [m].
    native_gauss : ndarray (ny, nx), optional
        The frame's own B_r [G] (an uploaded FITS): drawn as it is.
    """
    pixel = cea_pixel_mm(meta)
    if native_gauss is not None:
        native = np.asarray(native_gauss, dtype=np.float32)
        return TrueAspect(native, pixel, native.shape, resampled=False)
    nx, ny = _number(meta.get("naxis1")), _number(meta.get("naxis2"))
    if not (nx > 0 and ny > 0):
        nx = _number(meta.get("scale_x")) * MODEL_SIZE
        ny = _number(meta.get("scale_y")) * MODEL_SIZE
    if not (nx > 0 and ny > 0):
        return None
    longest = max(nx, ny)
    size = (max(1, round(MODEL_SIZE * ny / longest)), max(1, round(MODEL_SIZE * nx / longest)))
    model = torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(model, size=size, mode="bilinear", align_corners=False, antialias=True)
    return TrueAspect(
        resized[0, 0].numpy() * _FIELD_SCALE_G,
        pixel * longest / MODEL_SIZE,  # one resampled pixel spans longest / 128 CEA px
        (round(ny), round(nx)),
        resampled=True,
    )


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
