"""From a SHARP Br patch at original resolution to the model's 128 x 128 image.

The steps are the contract of SCIENCE.md ("Data: Model input"), in this order:

1. NaN pixels (off-disk, bad) become 0 G;
2. the patch is resized to ``MODEL_SIZE x MODEL_SIZE`` on both axes (the aspect ratio is
   *not* kept) with antialiased bilinear interpolation, ``torch.nn.functional.interpolate(
   mode="bilinear", antialias=True, align_corners=False)``: along an axis that shrinks it
   averages like an area (triangle) filter, along one that grows it interpolates;
3. b = clip(Br / FIELD_SCALE, -1, 1) with FIELD_SCALE = 1000 G.

Resizing happens *before* clipping (the public reference code clips first; see SCIENCE.md
"Differences"). The per-axis scale (original px per model px) is kept so distances measured
in model space can be brought back to original pixels, and from there to Mm.

Array convention (as in a CEA SHARP): ``br[y, x]`` with x growing westward and y northward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE

__all__ = [
    "MIN_PATCH_SIDE",
    "ModelBatch",
    "small_patch_problem",
    "ModelPatch",
    "clip_field",
    "heliocentric_mu",
    "to_model_space",
    "to_model_space_batch",
]


#: Patches smaller than this on a side carry no usable structure at 128x128 [px]: ingest
#: quarantines them and a query of one is refused.
MIN_PATCH_SIDE = 8


def small_patch_problem(shape: tuple[int, ...]) -> str | None:
    """Why a Br patch of ``shape`` (ny, nx) is too small to use, or None (the one rule of
    ingest's quarantine and of query files and uploads)."""
    ny, nx = shape[-2:]
    if min(nx, ny) < MIN_PATCH_SIDE:
        return f"patch is {nx}x{ny} px, under {MIN_PATCH_SIDE} px on a side"
    return None


@dataclass(frozen=True)
class ModelPatch:
    """One patch in model space.

    Attributes
    ----------
    image : np.ndarray
        (MODEL_SIZE, MODEL_SIZE) float32, b = clip(Br / 1000 G, -1, 1), dimensionless.
    scale_x, scale_y : float
        Original pixels per model pixel along x (NAXIS1 / 128) and y (NAXIS2 / 128).
    nan_fraction : float
        Fraction of the original pixels that were NaN (set to 0 G before resizing).
    """

    image: np.ndarray
    scale_x: float
    scale_y: float
    nan_fraction: float


@dataclass(frozen=True)
class ModelBatch:
    """Many patches in model space, stacked in input order.

    Attributes
    ----------
    images : np.ndarray
        (N, MODEL_SIZE, MODEL_SIZE) float32 model-space images.
    scale_x, scale_y : np.ndarray
        (N,) float64, original pixels per model pixel along x and y.
    nan_fraction : np.ndarray
        (N,) float64, fraction of NaN pixels in each original patch.
    """

    images: np.ndarray
    scale_x: np.ndarray
    scale_y: np.ndarray
    nan_fraction: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> ModelPatch:
        return ModelPatch(
            image=self.images[i],
            scale_x=float(self.scale_x[i]),
            scale_y=float(self.scale_y[i]),
            nan_fraction=float(self.nan_fraction[i]),
        )


def _field_scale_gauss() -> float:
    return float(FIELD_SCALE.to_value(u.G))


def _as_gauss_2d(br, index: int | None = None) -> tuple[np.ndarray, float]:
    """Check one patch and return (Br in G as a float32 array with NaN -> 0, NaN fraction)."""
    where = "" if index is None else f" (patch {index})"
    if isinstance(br, u.Quantity):
        br = br.to_value(u.G)  # units stripped here, once
    arr = np.asarray(br)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D Br array (ny, nx){where}; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"empty Br array{where}: shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"Br must be a real numeric array{where}; got dtype {arr.dtype}")
    finite = np.isfinite(arr)
    n_bad = arr.size - int(finite.sum())
    if n_bad == arr.size:
        raise ValueError(f"all-NaN Br patch{where}: nothing to resize (shape {arr.shape})")
    out = np.where(finite, arr, 0.0).astype(np.float32)  # NaN (and +-inf) -> 0 G
    return out, n_bad / arr.size


def _resize_clip(stack: np.ndarray) -> np.ndarray:
    """(N, ny, nx) float32 Br [G] -> (N, MODEL_SIZE, MODEL_SIZE) float32 b in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(stack))[:, None]  # (N, 1, ny, nx)
    with torch.no_grad():
        y = F.interpolate(
            x,
            size=(MODEL_SIZE, MODEL_SIZE),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )  # (N, 1, 128, 128)
    b = y[:, 0].numpy() / np.float32(_field_scale_gauss())  # (N, 128, 128)
    return np.clip(b, -1.0, 1.0).astype(np.float32, copy=False)


def to_model_space(br) -> ModelPatch:
    """Resize one Br patch to the model's 128 x 128 image, as SCIENCE.md prescribes.

    Parameters
    ----------
    br : array_like or astropy.units.Quantity
        (ny, nx) radial field Br. Plain numbers are in gauss (the SHARP ``BUNIT`` Mx/cm^2);
        a Quantity is converted to G. May contain NaN (off-disk or bad pixels).

    Returns
    -------
    ModelPatch
        ``image`` (128, 128) float32 with b = clip(Br / 1000 G, -1, 1) after NaN -> 0 and an
        antialiased bilinear resize of both axes; ``scale_x = nx / 128``,
        ``scale_y = ny / 128`` (original px per model px); ``nan_fraction``.

    Raises
    ------
    ValueError
        For input that is not 2-D, is empty, or is NaN everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> p = to_model_space(np.full((64, 256), 500.0))
    >>> p.image.shape, p.scale_x, p.scale_y, round(float(p.image[0, 0]), 6)
    ((128, 128), 2.0, 0.5, 0.5)
    """
    arr, nan_fraction = _as_gauss_2d(br)
    ny, nx = arr.shape
    image = _resize_clip(arr[None])[0]  # (128, 128)
    return ModelPatch(
        image=image,
        scale_x=nx / MODEL_SIZE,
        scale_y=ny / MODEL_SIZE,
        nan_fraction=float(nan_fraction),
    )


def to_model_space_batch(brs: Sequence, *, chunk_size: int = 256) -> ModelBatch:
    """Resize many Br patches of any sizes; same result as :func:`to_model_space` on each.

    Patches of equal shape are grouped and resized in one ``interpolate`` call per chunk of
    at most ``chunk_size`` patches (bounding memory for any N).

    Parameters
    ----------
    brs : sequence of array_like or Quantity
        N patches, each (ny_i, nx_i) Br in G (or a Quantity), NaN allowed.
    chunk_size : int
        Most patches resized in one call.

    Returns
    -------
    ModelBatch
        ``images`` (N, 128, 128) float32 in input order; ``scale_x``, ``scale_y``,
        ``nan_fraction`` (N,).

    Raises
    ------
    ValueError
        For an empty sequence, ``chunk_size < 1``, or any patch that is not 2-D, is empty
        or is all NaN (the message names the patch index).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    n = len(brs)
    if n == 0:
        raise ValueError("no patches given: brs is empty")
    images = np.empty((n, MODEL_SIZE, MODEL_SIZE), dtype=np.float32)
    scale_x = np.empty(n)
    scale_y = np.empty(n)
    nan_fraction = np.empty(n)

    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i, br in enumerate(brs):
        arr, nan_fraction[i] = _as_gauss_2d(br, index=i)
        ny, nx = arr.shape
        scale_x[i] = nx / MODEL_SIZE
        scale_y[i] = ny / MODEL_SIZE
        groups.setdefault((ny, nx), []).append((i, arr))

    for members in groups.values():
        for start in range(0, len(members), chunk_size):
            chunk = members[start : start + chunk_size]
            idx = [i for i, _ in chunk]
            images[idx] = _resize_clip(np.stack([a for _, a in chunk]))  # (n_chunk, 128, 128)
    return ModelBatch(images=images, scale_x=scale_x, scale_y=scale_y, nan_fraction=nan_fraction)


def _degrees(value) -> np.ndarray:
    if isinstance(value, u.Quantity):
        return np.asarray(value.to_value(u.deg), dtype=float)
    return np.asarray(value, dtype=float)


def heliocentric_mu(lat, lon, b0):
    """Cosine of the heliocentric angle of a point on the disk, mu = cos(rho).

    Parameters
    ----------
    lat, lon : float, array_like or Quantity
        Stonyhurst heliographic latitude and longitude (longitude from the central meridian,
        positive west). Plain numbers are degrees. Broadcast together with ``b0``.
    b0 : float, array_like or Quantity
        Heliographic latitude of the disk centre seen by the observer (CRLT_OBS), degrees.

    Returns
    -------
    float or np.ndarray
        mu = sin(B0) sin(lat) + cos(B0) cos(lat) cos(lon); 1 at disk centre, 0 on the limb,
        negative on the far side.

    Notes
    -----
    The scalar product of the unit vector to the point with the unit vector to the
    observer, both in heliographic coordinates (SCIENCE.md "Data"). For SHARPs take
    lat = LAT_FWT, lon = LON_FWT, B0 = CRLT_OBS.

    Examples
    --------
    >>> round(float(heliocentric_mu(0.0, 60.0, 0.0)), 6)
    0.5
    """
    lat_r = np.deg2rad(_degrees(lat))
    lon_r = np.deg2rad(_degrees(lon))
    b0_r = np.deg2rad(_degrees(b0))
    mu = np.sin(b0_r) * np.sin(lat_r) + np.cos(b0_r) * np.cos(lat_r) * np.cos(lon_r)
    return float(mu) if np.ndim(mu) == 0 else mu


def clip_field(images: np.ndarray, field_clip_gauss: float) -> np.ndarray:
    """Model-space images kept within +-``field_clip_gauss`` (the setting
    ``quality.field_clip_gauss``, at most 1000 G): b = clip(b, -c / 1000 G, c / 1000 G).

    :func:`to_model_space` clips at +-1000 G, the models' range; a lower clip applied after
    it is the same as applied instead of it. The one rule for ingested frames and for real
    patches given as queries (files, arrays in gauss, UI uploads), so both saturate alike.

    Parameters
    ----------
    images : ndarray (..., 128, 128), model space
    field_clip_gauss : float, in (0, 1000] G

    Returns
    -------
    ndarray, float32, same shape
    """
    if not 0 < field_clip_gauss <= FIELD_SCALE.to_value(u.G):
        raise ValueError(f"field_clip_gauss must be in (0, 1000] G, got {field_clip_gauss!r}")
    clip = field_clip_gauss / FIELD_SCALE.to_value(u.G)
    return np.clip(np.asarray(images, dtype=np.float32), -clip, clip)
