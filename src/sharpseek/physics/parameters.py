"""Physical parameters of SHARP-like radial-field patches — the contract of SCIENCE.md.

Two kinds of entry points (the second in :mod:`sharpseek.physics.native`):

- :func:`compute_parameters` and :func:`polarity_maps` work on model-space images
  b = clip(Br / 1000 G, -1, 1) of shape (N, 128, 128) — generated or resized real patches —
  batched in torch on the images' device. Their values are in *model units* (below); they are
  dimensionless arrays, not Quantities, because a model pixel has no fixed physical size.
- :mod:`sharpseek.physics.native` gives physical quantities of real patches at their original
  resolution and measures them on their native CEA grid (``psep_mm``, ``tilt_cea``, ``r_jsoc``).

Model units (``PARAMETER_UNITS``): B = 1000 G * b; "G px" is a sum of |B| [G] over model pixels
(a flux in units of 1000 G x one model pixel's area, divided by 1000); "model px" is a length in
model pixels; SIGMA is in units of b (1 b = 1000 G); GRAD in b per model px.

The definitions follow SCIENCE.md ("Physical parameters") exactly; each is written once in this
package: the constants and lists in :mod:`~sharpseek.physics.definitions`, polarity and R in
:mod:`~sharpseek.physics.neutral_line`, ALPHA and GRAD in :mod:`~sharpseek.physics.alpha_grad`,
SIGMA's fit in :mod:`~sharpseek.physics.sigma_fit`.
Compared with the paper's public reference code, TPF/TNF are sums (not means), PSEP is in model
pixels (not divided by 128 sqrt 2), tilt follows leading/following polarity, and ALPHA fits
k = 1..25 about the exact zero frequency (see SCIENCE.md, "Differences").

References
----------
.. [1] Schrijver, C. J. 2007, "A characteristic magnetic field pattern associated with all
   major solar flares and its use in flare forecasting", ApJ 655, L117, doi:10.1086/511857.
.. [2] Chatterjee, S., Munoz-Jaramillo, A., & Malanushenko, A., "Deep Generative model that
   uses physical quantities to generate and retrieve solar magnetic active regions" (the
   reference paper; its code: doi:10.5281/zenodo.17613896).
"""

import math
from typing import Any

import astropy.units as u
import numpy as np
import torch
from tqdm.auto import tqdm

from sharpseek.physics.alpha_grad import _alpha_operators, _gradient_sum, _ring_power
from sharpseek.physics.definitions import (
    ALPHA_MAX_RING,
    FIELD_SCALE,
    MODEL_SIZE,
    SIGMA_BINS,
)
from sharpseek.physics.neutral_line import _TH, _inversion_region, _polarity_masks
from sharpseek.physics.sigma_fit import _fit_sigma, _histogram_counts
from sharpseek.physics.workspace import _Workspace

__all__ = ["compute_parameters", "polarity_maps"]

_G_PER_B = FIELD_SCALE.to_value(u.G)  # 1000 G per unit of b
_SIGMA_GROUP = 2048  # histograms fitted together: the fit's per-step overhead is per group
_CPU_BLOCK = 64  # images processed at once on a CPU (measured fastest on a 2-core EPYC)


# ----------------------------------------------------------------------------------------------
# public API: model space
# ----------------------------------------------------------------------------------------------
def compute_parameters(
    images: Any,
    *,
    latitude: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    r"""Physical parameters of model-space images, batched (SCIENCE.md, "Physical parameters").

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, shape (N, 128, 128)
        Model-space images b = clip(Br / 1000 G, -1, 1) (dimensionless; any real dtype, cast
        to float64). CPU or CUDA tensors are processed where they are.
    latitude : array-like (N,) [deg] or astropy Quantity (angle), optional
        Latitude of each patch (e.g. LAT_FWT); adds ``joy_tilt``.
    chunk_size : int, optional
        Images processed at once; memory stays bounded for any N. On a CPU each chunk is worked
        through in cache-sized blocks of 64 images; on a GPU, use thousands. The SIGMA fit,
        which works on 256-bin histograms rather than images, runs on groups of
        max(chunk_size, 2048).
    device : str or torch.device, optional
        Where to compute (default: where the images are). Results return to the input's
        device (torch) or to numpy.
    progress : bool, optional
        Show a tqdm bar over chunks.

    Returns
    -------
    dict of str to array, each shape (N,)
        numpy arrays for numpy input, torch tensors on the input's device for torch input;
        float64, except ``bipolar`` (bool). Keys and units (model units, see module doc):

        ============  =================  =====================================================
        key           unit               definition (th = 0.15 = 150 G; B = 1000 G * b)
        ============  =================  =====================================================
        tuf           G px               :math:`\sum |B|` over all pixels
        tpf           G px               :math:`\sum B` over P = {b > th}
        tnf           G px               :math:`\sum |B|` over N = {b < -th} (positive)
        psep          model px           distance between the |B|-weighted centroids of P, N
        r             G px               :math:`\sum |B|` over M = dil7(P) & dil7(N) [1]_
        tilt          deg, (-90, 90]     angle of following -> leading (larger x) centroid
        orientation   +1 / -1            +1 if the positive centroid has the larger x
        sigma         b                  sigma of a zero-mean Gaussian fitted to the histogram
        alpha         dimensionless      -slope of log10 P(k) vs log10 k, k = 1..25
        grad          b / model px       mean of sqrt(gx^2 + gy^2) (numpy.gradient)
        bipolar       bool               P and N both non-empty
        pos_x, pos_y  model px           |B|-weighted centroid of P (x = column, y = row)
        neg_x, neg_y  model px           |B|-weighted centroid of N
        joy_tilt      deg                :math:`-\mathrm{sign}(lat)\,` tilt (with latitude)
        ============  =================  =====================================================

    Raises
    ------
    ValueError
        If ``images`` is not (N, 128, 128), holds NaN or inf, is complex or a Quantity with
        units, or if ``latitude`` is not (N,), or ``chunk_size`` < 1.

    Notes
    -----
    NaN marks what is undefined: centroids of an empty polarity; PSEP, tilt and orientation
    when not bipolar; orientation when both centroids share x (tilt is then 90); ``joy_tilt``
    where latitude is exactly 0 (hemisphere undefined) or NaN; ALPHA when a ring k = 1..25
    holds no power (a constant image); SIGMA where ``curve_fit`` would fail.

    - R: dilation with a 7 x 7 square, zero outside the image (scipy.ndimage.binary_dilation
      defaults); R = 0 when M is empty (e.g. a unipolar patch).
    - SIGMA: ``numpy.histogram(b, bins=256, density=True)`` over the image's own min..max (for
      a constant image numpy's range (min - 0.5, max + 0.5)), then the least-squares fit of
      :math:`e^{-x^2 / 2s^2} / (\sqrt{2\pi}\, s)` to (bin centres, density) from s0 = std(b)
      (ddof 0), computed as ``scipy.optimize.curve_fit`` (method 'lm', MINPACK ``lmdif``)
      computes it, step for step; the result is |s|. For a constant image the fit cannot move
      and returns its start, std(b) = 0 up to rounding.
    - ALPHA: F = fftshift(fft2(b)), zero frequency at (64, 64); P(k) is the mean of |F|^2
      over the pixels whose distance from (64, 64) floors to k; least-squares line through
      (log10 k, log10 P(k)), k = 1..25.
    - GRAD: central differences inside, one-sided at the edges (numpy.gradient).

    Everything is computed in float64 except GRAD, accumulated in float32 (relative error
    ~1e-7). For float32 input (a generator's output) the sums behind TPF, TNF and the centroids
    are exact, so symmetric configurations give exactly equal centroids (tilt 90, orientation
    NaN) as the definitions intend. The result agrees with the per-image numpy/scipy
    transcription of these definitions (``tests/oracle_physics.py``) to 1e-4 relative or
    better (SIGMA: ~1e-6 at worst, where the least-squares problem is ill-conditioned).

    References
    ----------
    .. [1] Schrijver, C. J. 2007, ApJ 655, L117, doi:10.1086/511857 (R).
    .. [2] Chatterjee, Munoz-Jaramillo & Malanushenko, the reference paper (sections 3-4 and
       "distributed image features" for SIGMA, ALPHA, GRAD).

    Examples
    --------
    >>> import numpy as np
    >>> b = np.zeros((1, 128, 128)); b[0, 60:68, 40:48] = 0.5; b[0, 60:68, 80:88] = -0.5
    >>> p = compute_parameters(b)
    >>> float(p["tpf"][0]), float(p["psep"][0]), float(p["tilt"][0]), float(p["orientation"][0])
    (32000.0, 40.0, 0.0, -1.0)
    """
    batch, as_numpy = _as_image_batch(images)
    n = batch.shape[0]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    lat = _as_latitude(latitude, n)
    dev = torch.device(device) if device is not None else batch.device
    f64 = torch.float64
    # per-image sums and spectra, filled block by block and turned into parameters at the end
    sums = {
        "moments": torch.zeros(n, 2, 3, dtype=f64, device=dev),  # P, N: sum w, sum w x, sum w y
        "abs_sum": torch.zeros(n, dtype=f64, device=dev),  # sum |b|
        "r_sum": torch.zeros(n, dtype=f64, device=dev),  # sum |b| over M
        "grad_sum": torch.zeros(n, dtype=f64, device=dev),  # sum of 2 |grad b|
        "ring_power": torch.zeros(n, ALPHA_MAX_RING, dtype=f64, device=dev),  # P(k)
        "sigma": torch.full((n,), math.nan, dtype=f64, device=dev),
    }
    # on a CPU a chunk is processed in blocks of _CPU_BLOCK images, which suit its caches
    block = chunk_size if dev.type != "cpu" else min(chunk_size, _CPU_BLOCK)
    ws = _Workspace(min(block, n), dev)
    group = min(max(chunk_size, _SIGMA_GROUP), n)  # histograms fitted together
    fit_ws = _Workspace(group, dev)
    pending: list[tuple[torch.Tensor, ...]] = []
    pending_start = pending_n = 0
    starts = range(0, n, chunk_size)
    if progress:
        starts = tqdm(starts, desc="physical parameters", unit="chunk")
    with torch.no_grad():
        for chunk_start in starts:
            chunk_stop = min(chunk_start + chunk_size, n)
            for start in range(chunk_start, chunk_stop, block):
                stop = min(start + block, chunk_stop)
                counts = fit_ws("counts", (SIGMA_BINS,), f64, group)
                block_sums = {key: value[start:stop] for key, value in sums.items()}
                pending.append(
                    _block_sums(
                        batch[start:stop].to(dev),
                        ws,
                        block_sums,
                        counts[pending_n : pending_n + stop - start],
                        batch,
                    )
                )
                pending_n += stop - start
                if pending_n + block > group or stop == n:  # the next block would not fit
                    first, last, std = (torch.cat(part) for part in zip(*pending, strict=True))
                    sigma = _fit_sigma(counts[:pending_n], first, last, std, fit_ws)
                    sums["sigma"][pending_start:stop] = sigma
                    pending, pending_start, pending_n = [], stop, 0
        out = _parameters_from_sums(sums)
        if lat is not None:
            lat = lat.to(dev)
            undefined = (lat == 0) | lat.isnan()  # (torch.sign(NaN) is 0, not NaN)
            out["joy_tilt"] = torch.where(undefined, math.nan, -torch.sign(lat) * out["tilt"])
    if as_numpy:
        return {key: value.cpu().numpy() for key, value in out.items()}
    return {key: value.to(batch.device) for key, value in out.items()}


def polarity_maps(images: Any) -> tuple[Any, Any, Any]:
    """Polarity masks P = {b > 0.15}, N = {b < -0.15} and R's region M = dil7(P) & dil7(N).

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, shape (N, 128, 128)
        Model-space images (as for :func:`compute_parameters`).

    Returns
    -------
    (P, N, M) : bool arrays of shape (N, 128, 128)
        numpy for numpy input, torch on the input's device for torch input. M is where Schrijver's
        R sums |B| (see :func:`compute_parameters`); the same helpers compute both.
    """
    batch, as_numpy = _as_image_batch(images)
    block = 256
    ws = _Workspace(min(block, batch.shape[0]), batch.device)
    with torch.no_grad():
        masks = [torch.empty(batch.shape, dtype=torch.bool, device=batch.device) for _ in range(3)]
        for start in range(0, batch.shape[0], block):
            b = batch[start : start + block].to(torch.float64)
            _check_finite(b.amin((1, 2)), b.amax((1, 2)), batch)
            pos, neg = _polarity_masks(b)
            region = _inversion_region(pos, neg, ws)
            for mask, value in zip(masks, (pos, neg, region), strict=True):
                mask[start : start + block] = value
    if as_numpy:
        return tuple(mask.cpu().numpy() for mask in masks)
    return tuple(masks)


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------
def _as_image_batch(images: Any) -> tuple[torch.Tensor, bool]:
    """(N, 128, 128) real tensor (no copy where possible) and whether the input was numpy."""
    if isinstance(images, u.Quantity):
        if images.unit.physical_type != "dimensionless":
            raise ValueError(
                f"images must be model-space values b = Br / {FIELD_SCALE} (dimensionless); got"
                f" a Quantity in {images.unit}: divide by "
                "sharpseek.physics.definitions.FIELD_SCALE first"
            )
        images = images.to_value(u.dimensionless_unscaled)
    as_numpy = not isinstance(images, torch.Tensor)
    batch = torch.as_tensor(np.asarray(images)) if as_numpy else images.detach()
    if batch.is_complex():
        raise ValueError(f"images must be real; got dtype {batch.dtype}")
    expected = (MODEL_SIZE, MODEL_SIZE)
    if batch.ndim != 3 or tuple(batch.shape[1:]) != expected:
        raise ValueError(
            f"images must have shape (N, {MODEL_SIZE}, {MODEL_SIZE}); got {tuple(batch.shape)}"
            + (" (add a batch axis: images[None])" if tuple(batch.shape) == expected else "")
        )
    return batch, as_numpy


def _check_finite(first: torch.Tensor, last: torch.Tensor, batch: torch.Tensor) -> None:
    """Raise if a chunk's min or max is NaN or inf (so some pixel is), counting them all."""
    if not bool(torch.isfinite(first).all() & torch.isfinite(last).all()):
        bad = int((~torch.isfinite(batch)).sum())
        raise ValueError(
            f"images contain {bad} non-finite values (NaN or inf); replace them first"
            " (SHARP preprocessing sets NaN pixels to 0)"
        )


def _as_latitude(latitude: Any, n: int) -> torch.Tensor | None:
    if latitude is None:
        return None
    if isinstance(latitude, u.Quantity):
        latitude = latitude.to_value(u.deg)
    elif isinstance(latitude, torch.Tensor):
        latitude = latitude.detach().cpu().numpy()
    lat = np.asarray(latitude, dtype=np.float64)
    if lat.shape != (n,):
        raise ValueError(f"latitude must have shape ({n},), one per image; got {lat.shape}")
    return torch.from_numpy(lat)


# ----------------------------------------------------------------------------------------------
# all parameters of one block of images
# ----------------------------------------------------------------------------------------------
def _block_sums(
    chunk: torch.Tensor,
    ws: _Workspace,
    sums: dict[str, torch.Tensor],
    counts: torch.Tensor,
    batch: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The per-image sums behind every parameter, for a block (m, 128, 128) of images.

    Writes into ``sums`` (views of the call's (n, ...) tensors, keys as in
    :func:`compute_parameters`) and SIGMA's histogram into ``counts`` (m, 256); returns (first
    edge, last edge, std) for the fit. ``batch`` only serves the error message for non-finite
    input.
    """
    m, size, f64 = chunk.shape[0], MODEL_SIZE, torch.float64
    image = (size, size)
    b = ws("b", image, f64, m).copy_(chunk)  # (m, 128, 128) float64
    flat = b.view(m, -1)  # (m, 16384)
    first, last = flat.amin(1), flat.amax(1)
    _check_finite(first, last, batch)
    # (steps are ordered so that each array is reused while it is still in cache)
    # SIGMA's inputs: std (ddof 0) from sum b and sum b^2 (agrees with numpy.std to ~1e-14
    # here; 0 for a constant image) and the histogram
    n_pix = flat.shape[1]
    mean = flat.sum(1) / n_pix
    var = (torch.linalg.vecdot(flat, flat) / n_pix - mean * mean).clamp_(min=0.0)
    std = torch.where(first == last, 0.0, var.sqrt())
    edges = _histogram_counts(flat, first, last, ws, counts)
    sums["ring_power"].copy_(_ring_power(b, ws))
    # strong field over P and N: signed s = b and unsigned |s| = |b| where |b| > th, else 0
    s = torch.hardshrink(b, _TH, out=ws("s", image, f64, m))
    s_x, s_y = s.sum(1), s.sum(2)  # (m, 128): profiles along x (summed over rows) and y
    pos = torch.gt(s, 0.0, out=ws("pos", image, torch.bool, m))
    neg = torch.lt(s, 0.0, out=ws("neg", image, torch.bool, m))
    region = _inversion_region(pos, neg, ws)
    absb = torch.abs(b, out=ws("absb", image, f64, m))
    in_region = torch.mul(absb, region.view(torch.uint8), out=ws("t", image, f64, m))
    torch.sum(in_region, (1, 2), out=sums["r_sum"])
    torch.sum(absb, (1, 2), out=sums["abs_sum"])
    abs_s = torch.threshold(absb, _TH, 0.0, out=absb)
    # |b|-weighted moments; w_P = (|s| + s) / 2 and w_N = (|s| - s) / 2. For float32 input every
    # sum here is exact in float64, whatever the order of summation.
    prof_x = torch.stack((abs_s.sum(1), s_x), 1)  # (m, 2, 128): sum |s|, sum s per column
    prof_y = torch.stack((abs_s.sum(2), s_y), 1)  # (m, 2, 128): per row
    coord = torch.arange(size, dtype=f64, device=b.device)
    moments = torch.stack((prof_x.sum(2), prof_x @ coord, prof_y @ coord), 2)  # (m, 2, 3)
    half = torch.tensor([[0.5, 0.5], [0.5, -0.5]], dtype=f64, device=b.device)
    torch.matmul(half, moments, out=sums["moments"])  # rows P, N; sum w, sum w x, sum w y
    sums["grad_sum"].copy_(_gradient_sum(chunk if chunk.dtype == torch.float32 else b, ws))
    return edges + (std,)


def _parameters_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every parameter, (n,) each, from the per-image sums :func:`_block_sums` collects."""
    moments = sums["moments"]  # (n, 2, 3)
    total = moments[:, :, 0]  # (n, 2): sum of |b| over P and over N
    cx = moments[:, :, 1] / total  # (n, 2); 0 / 0 = NaN for an empty polarity
    cy = moments[:, :, 2] / total
    bipolar = (total > 0).all(1)
    dx = cx[:, 0] - cx[:, 1]
    dy = cy[:, 0] - cy[:, 1]
    orientation = torch.where(dx > 0, 1.0, torch.where(dx < 0, -1.0, math.nan))
    tilt = torch.rad2deg(torch.atan2(orientation * dy, orientation * dx))  # following -> leading
    tilt = torch.where(tilt <= -90.0, 90.0, tilt)  # (-90, 90]
    tilt = torch.where(bipolar & (dx == 0), 90.0, tilt) + 0.0  # + 0.0: no -0.0
    p_k = sums["ring_power"]
    alpha = -(torch.log10(p_k) @ _alpha_operators(p_k.device)[2])
    return {
        "tuf": _G_PER_B * sums["abs_sum"],
        "tpf": _G_PER_B * total[:, 0],
        "tnf": _G_PER_B * total[:, 1],
        "psep": torch.hypot(dx, dy),
        "r": _G_PER_B * sums["r_sum"],
        "tilt": tilt,
        "orientation": orientation,
        "sigma": sums["sigma"],
        "alpha": torch.where((p_k > 0).all(1), alpha, math.nan),
        "grad": sums["grad_sum"] / (2.0 * MODEL_SIZE * MODEL_SIZE),
        "bipolar": bipolar,
        "pos_x": cx[:, 0],
        "pos_y": cy[:, 0],
        "neg_x": cx[:, 1],
        "neg_y": cy[:, 1],
    }
