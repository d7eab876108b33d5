"""Independent, per-image reference for :mod:`sharpseek.physics.parameters` (slow and obvious on
purpose).

Written straight from ``SCIENCE.md`` ("Physical parameters") with numpy and scipy, one image at a
time, sharing no code with ``sharpseek.physics.parameters``: the batched implementation is tested
against it (``tests/test_physics.py``) and timed against it (``benchmarks/bench_physics.py``).

Edge cases the contract leaves open are settled here exactly as ``sharpseek.physics.parameters``
documents them:

- centroids, PSEP, tilt, orientation are NaN where a polarity is empty (tilt 90 and orientation
  NaN when both centroids share the same x; a tilt of exactly -90 is reported as 90);
- SIGMA is NaN when ``curve_fit`` gives up (``RuntimeError``), and whatever ``curve_fit``
  returns otherwise (for a constant image that is its initial guess, the std, ~0);
- ALPHA is NaN when a ring k = 1..25 holds no power (e.g. an all-zero image).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage, optimize

SIZE = 128
THRESHOLD = 0.15  # 150 G in model units
GAUSS_PER_UNIT = 1000.0  # B = 1000 G * b
DILATION = np.ones((7, 7), dtype=bool)
N_BINS = 256
RINGS = np.arange(1, 26)


def _gaussian(x: np.ndarray, s: float) -> np.ndarray:
    """Zero-mean normal density with standard deviation ``s``."""
    return np.exp(-(x**2) / (2.0 * s**2)) / (np.sqrt(2.0 * np.pi) * s)


def _centroid(weights: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """|B|-weighted centroid (x = column, y = row) of the pixels in ``mask``; NaN if empty."""
    if not mask.any():
        return np.nan, np.nan
    rows, cols = np.nonzero(mask)
    w = weights[rows, cols]
    return float(np.sum(w * cols) / np.sum(w)), float(np.sum(w * rows) / np.sum(w))


def _sigma(b: np.ndarray) -> float:
    density, edges = np.histogram(b, bins=N_BINS, density=True)
    centres = (edges[:-1] + edges[1:]) / 2.0
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            popt, _ = optimize.curve_fit(_gaussian, centres, density, p0=[np.std(b)])
    except RuntimeError:
        return np.nan
    return float(abs(popt[0]))


def _alpha(b: np.ndarray) -> float:
    spectrum = np.fft.fftshift(np.fft.fft2(b))
    power = np.abs(spectrum) ** 2
    rows, cols = np.indices(b.shape)
    ring = np.floor(np.hypot(rows - SIZE // 2, cols - SIZE // 2)).astype(int)
    p_k = np.array([power[ring == k].mean() for k in RINGS])
    if not np.all(p_k > 0):
        return np.nan
    slope, _ = np.polyfit(np.log10(RINGS), np.log10(p_k), 1)
    return float(-slope)


def _grad(b: np.ndarray) -> float:
    gy, gx = np.gradient(b)
    return float(np.mean(np.sqrt(gx**2 + gy**2)))


def oracle_parameters(image: np.ndarray) -> dict[str, float]:
    """All parameters of one (128, 128) model-space image, per SCIENCE.md, in model units."""
    b = np.asarray(image, dtype=np.float64)
    if b.shape != (SIZE, SIZE):
        raise ValueError(f"expected a ({SIZE}, {SIZE}) image, got {b.shape}")
    field = GAUSS_PER_UNIT * b  # B [G]
    absf = np.abs(field)
    pos = b > THRESHOLD
    neg = b < -THRESHOLD
    bipolar = bool(pos.any() and neg.any())

    pos_x, pos_y = _centroid(absf, pos)
    neg_x, neg_y = _centroid(absf, neg)
    if bipolar:
        psep = float(np.hypot(pos_x - neg_x, pos_y - neg_y))
        if pos_x > neg_x:
            orientation = 1.0
            lead, follow = (pos_x, pos_y), (neg_x, neg_y)
        elif neg_x > pos_x:
            orientation = -1.0
            lead, follow = (neg_x, neg_y), (pos_x, pos_y)
        else:
            orientation, lead, follow = np.nan, None, None
        if lead is None:
            tilt = 90.0
        else:
            tilt = float(np.degrees(np.arctan2(lead[1] - follow[1], lead[0] - follow[0])))
            if tilt <= -90.0:
                tilt = 90.0
    else:
        psep = tilt = orientation = np.nan

    pil = ndimage.binary_dilation(pos, structure=DILATION) & ndimage.binary_dilation(
        neg, structure=DILATION
    )
    return {
        "tuf": float(absf.sum()),
        "tpf": float(field[pos].sum()),
        "tnf": float(absf[neg].sum()),
        "psep": psep,
        "r": float(absf[pil].sum()),
        "tilt": tilt,
        "orientation": orientation,
        "sigma": _sigma(b),
        "alpha": _alpha(b),
        "grad": _grad(b),
        "bipolar": bipolar,
        "pos_x": pos_x,
        "pos_y": pos_y,
        "neg_x": neg_x,
        "neg_y": neg_y,
    }


def oracle_batch(images: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`oracle_parameters` looped over an (N, 128, 128) stack; arrays of shape (N,)."""
    rows = [oracle_parameters(image) for image in np.asarray(images)]
    keys = rows[0].keys() if rows else []
    return {
        key: np.array([row[key] for row in rows], dtype=bool if key == "bipolar" else np.float64)
        for key in keys
    }


# ----------------------------------------------------------------------------------------------
# JSOC's R (SCIENCE.md, "JSOC's R"), one native patch, pixel by pixel
# ----------------------------------------------------------------------------------------------
R_JSOC_THRESHOLD = 150.0  # G
R_JSOC_SIGMA = 10.0 / 2.3548  # binned px


def _gaussian_kernel_1d(sigma: float) -> np.ndarray:
    """Normalised samples of exp(-x^2 / 2 sigma^2), |x| <= int(4 sigma + 0.5) (scipy's reach)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * x * x / (sigma * sigma))
    return kernel / kernel.sum()


def oracle_r_jsoc(field: np.ndarray, scale: int) -> float:
    """JSOC's R of a (ny, nx) field [G] binned by ``scale``: a slow transcription of computeR.

    Written from the recipe, loop by loop: block means (the trailing partial block padded with
    0 G; a block holding NaN is NaN), the +-150 G masks, a centred 3 x 3 dilation (outside the
    patch is out), their overlap, a separable Gaussian blur with mirror-reflected edges (numpy
    'symmetric' padding), and log10 of the blur-weighted sum of |binned field| (0 below 1).
    """
    field = np.asarray(field, dtype=np.float64)
    if field.ndim != 2:
        raise ValueError(f"expected a 2-D field; got shape {field.shape}")
    ny, nx = field.shape
    ny1, nx1 = -(-ny // scale), -(-nx // scale)
    binned = np.zeros((ny1, nx1))
    for j in range(ny1):
        for i in range(nx1):
            total = 0.0
            for jj in range(j * scale, (j + 1) * scale):
                for ii in range(i * scale, (i + 1) * scale):
                    if jj < ny and ii < nx:  # outside the patch: padded with 0 G
                        total += field[jj, ii]
            binned[j, i] = total / (scale * scale)
    pos = np.zeros((ny1, nx1), dtype=bool)
    neg = np.zeros((ny1, nx1), dtype=bool)
    for j in range(ny1):
        for i in range(nx1):
            for dj in (-1, 0, 1):
                for di in (-1, 0, 1):
                    jj, ii = j + dj, i + di
                    if 0 <= jj < ny1 and 0 <= ii < nx1:
                        pos[j, i] |= bool(binned[jj, ii] > R_JSOC_THRESHOLD)
                        neg[j, i] |= bool(binned[jj, ii] < -R_JSOC_THRESHOLD)
    inversion = (pos & neg).astype(np.float64)
    kernel = _gaussian_kernel_1d(R_JSOC_SIGMA)
    radius = len(kernel) // 2
    blurred = inversion
    for axis in (0, 1):
        padded = np.pad(blurred, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="symmetric")  # fmt: skip
        out = np.zeros_like(blurred)
        for k, weight in enumerate(kernel):
            window = [slice(None), slice(None)]
            window[axis] = slice(k, k + blurred.shape[axis])
            out += weight * padded[tuple(window)]
        blurred = out
    total = 0.0
    for j in range(ny1):
        for i in range(nx1):
            if not np.isnan(binned[j, i]):
                total += blurred[j, i] * abs(binned[j, i])
    return float(np.log10(total)) if total >= 1.0 else 0.0
