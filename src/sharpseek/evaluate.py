"""Quality measures of the trained models (issue 4), on HARPs held out from training.

GAN
    :func:`parameter_distances`: for each physical parameter (SCIENCE.md, the paper's eight:
    TUF, TPF, TNF, PSEP, R, SIGMA, ALPHA, GRAD), the 1-Wasserstein distance between the
    generated and real distributions divided by the real standard deviation (so parameters
    with different units can be compared and averaged; 0 = identical), and the two-sample
    Kolmogorov-Smirnov statistic (0..1). :func:`frechet_distance`: the Frechet distance
    between Gaussians fitted to generated and real features in the SimSiam space.

Encoder
    :func:`same_region_retrieval`: for each frame, the share of its k = 10 nearest neighbours
    (Euclidean, itself excluded) that are frames of the same HARP within 24 hours; averaged
    over frames. The same measure is computed on two baselines: :func:`pca_features` (PCA of
    the pixels, fitted on training frames) and :func:`physics_features` (standardised
    physical parameters). :func:`augmentation_robustness`: the mean distance from a frame's
    vector to that of its own augmentation, divided by the mean distance to frames of other
    regions (0 = fully invariant; 1 = an augmentation moves a frame as far as another region).

All measures here are deterministic given their seeds. They are pure functions of arrays
and models, below training (which logs them every epoch); the reports of whole checkpoints
are :mod:`sharpseek.evaluate_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import linalg, stats

__all__ = [
    "QUALITY_PARAMETERS",
    "parameter_distances",
    "frechet_distance",
    "same_region_retrieval",
    "frame_hours",
    "pca_features",
    "physics_features",
    "augmentation_robustness",
    "RetrievalScores",
    "retrieval_scores",
]

#: The paper's eight parameters, compared between generated and real distributions.
QUALITY_PARAMETERS = ("tuf", "tpf", "tnf", "psep", "r", "sigma", "alpha", "grad")


# ---------------------------------------------------------------------------------------------
# GAN: distributions


def parameter_distances(
    generated: dict[str, np.ndarray] | pd.DataFrame,
    real: dict[str, np.ndarray] | pd.DataFrame,
    names: Sequence[str] = QUALITY_PARAMETERS,
) -> dict[str, float]:
    """Per-parameter distances between generated and real distributions.

    Returns ``w1_<name>`` (Wasserstein-1 / std of the real values), ``ks_<name>`` (KS
    statistic) for each name, and their means ``w1_mean`` and ``ks_mean``. NaN values (e.g.
    PSEP of a unipolar patch) are left out; a parameter with fewer than two finite values on
    either side gives NaN (and is left out of the means).
    """
    out: dict[str, float] = {}
    for name in names:
        g = np.asarray(generated[name], dtype=np.float64)
        r = np.asarray(real[name], dtype=np.float64)
        g, r = g[np.isfinite(g)], r[np.isfinite(r)]
        if len(g) < 2 or len(r) < 2:
            out[f"w1_{name}"] = out[f"ks_{name}"] = float("nan")
            continue
        scale = r.std() or 1.0
        out[f"w1_{name}"] = float(stats.wasserstein_distance(g, r) / scale)
        out[f"ks_{name}"] = float(stats.ks_2samp(g, r).statistic)
    for prefix in ("w1", "ks"):
        values = [out[f"{prefix}_{n}"] for n in names if np.isfinite(out[f"{prefix}_{n}"])]
        out[f"{prefix}_mean"] = float(np.mean(values)) if values else float("nan")
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (n, d) and b (m, d):
    |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"frechet_distance needs two (n >= 2, d) feature arrays of the same d, got "
            f"{a.shape} and {b.shape}"
        )
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb)
    if not np.all(np.isfinite(covmean)):  # nearly singular: regularise as pytorch-fid does
        eps = 1e-6 * np.eye(a.shape[1])
        covmean = linalg.sqrtm((ca + eps) @ (cb + eps))
    covmean = covmean.real
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))


# ---------------------------------------------------------------------------------------------
# Encoder: retrieval


def same_region_retrieval(
    features: np.ndarray | torch.Tensor,
    harpnum: Sequence[int] | np.ndarray,
    t_rec: Sequence[Any] | np.ndarray,
    *,
    k: int = 10,
    window_hours: float = 24.0,
    chunk: int = 1024,
) -> float:
    """Mean over frames of the share of the k nearest neighbours (Euclidean, itself
    excluded) that are frames of the same HARP within ``window_hours``.

    Parameters
    ----------
    features : (n, d)
        One vector per frame.
    harpnum, t_rec : (n,)
        Region number and time of each frame (anything ``pandas.to_datetime`` reads).
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    n = x.shape[0]
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n, d), got {tuple(x.shape)}")
    if len(harpnum) != n or len(t_rec) != n:
        raise ValueError(
            f"features ({n}), harpnum ({len(harpnum)}) and t_rec ({len(t_rec)}) differ in length"
        )
    if n <= k:
        raise ValueError(f"same-region retrieval with k={k} needs more than {k} frames, got {n}")
    harp = torch.as_tensor(np.array(harpnum, dtype=np.int64))
    hours = torch.as_tensor(frame_hours(t_rec), dtype=torch.float64)
    shares = []
    for start in range(0, n, chunk):
        q = x[start : start + chunk]  # (c, d)
        d = torch.cdist(q, x)  # (c, n)
        idx = torch.arange(start, start + len(q))
        d[torch.arange(len(q)), idx] = float("inf")  # itself excluded
        nn_idx = d.topk(k, dim=1, largest=False).indices  # (c, k)
        same = (harp[nn_idx] == harp[idx, None]) & (
            (hours[nn_idx] - hours[idx, None]).abs() <= window_hours + 1e-9
        )
        shares.append(same.double().mean(dim=1))
    return float(torch.cat(shares).mean())


def frame_hours(t_rec) -> np.ndarray:
    """Times as float hours since 1970 (any resolution pandas reads)."""
    seconds = pd.to_datetime(pd.Series(np.asarray(t_rec))).to_numpy().astype("datetime64[s]")
    return seconds.astype(np.int64) / 3600.0


def pca_features(
    images: np.ndarray, fit_images: np.ndarray | None = None, n_components: int = 100
) -> np.ndarray:
    """Project images (n, 128, 128) on the leading principal components of ``fit_images``
    (default: the images themselves); (n, n_components), float64."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(len(images), -1)
    fit = (
        x
        if fit_images is None
        else torch.as_tensor(np.asarray(fit_images, np.float32)).reshape(len(fit_images), -1)
    )  # (m, 16384)
    mean = fit.mean(0)
    centred = (fit - mean).double()
    # principal axes from the (m, m) Gram matrix: cheap when m << 16384 pixels
    evals, evecs = torch.linalg.eigh(centred @ centred.T)  # ascending
    order = evals.flip(0)[:n_components].clamp_min(1e-12)
    axes = (centred.T @ evecs.flip(1)[:, :n_components]) / order.sqrt()  # (16384, c) unit
    return ((x - mean).double() @ axes).numpy()


def physics_features(
    table: pd.DataFrame | dict[str, np.ndarray],
    names: Sequence[str] = QUALITY_PARAMETERS,
    reference: pd.DataFrame | dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Standardised physical parameters (n, len(names)): (value - mean) / std, with the mean
    and std of ``reference`` (default: the table itself); undefined values (NaN) become 0,
    the mean."""
    ref = table if reference is None else reference
    cols = []
    for name in names:
        v = np.asarray(table[name], dtype=np.float64)
        r = np.asarray(ref[name], dtype=np.float64)
        r = r[np.isfinite(r)]
        mean, std = (r.mean(), r.std()) if len(r) else (0.0, 1.0)
        z = (v - mean) / (std or 1.0)
        cols.append(np.where(np.isfinite(z), z, 0.0))
    return np.stack(cols, axis=1)


def augmentation_robustness(
    encoder, images: torch.Tensor, harpnum: np.ndarray, augment_config, *, seed: int = 0
) -> float:
    """Mean |f(x) - f(aug(x))| over frames divided by the mean distance from f(x) to the
    vectors of frames of other regions (lower is more invariant)."""
    from sharpseek.models.augment import augment

    g = torch.Generator().manual_seed(seed)
    x = images if images.ndim == 4 else images.unsqueeze(1)
    f = encoder.encode(x)
    fa = encoder.encode(augment(x, augment_config, g))
    own = (f - fa).norm(dim=1).mean()
    d = torch.cdist(f.double(), f.double())  # (n, n)
    harp = torch.as_tensor(np.array(harpnum, dtype=np.int64))
    other = harp[:, None] != harp[None, :]
    if not other.any():
        raise ValueError("augmentation robustness needs frames of at least two regions")
    return float(own / d[other].mean())


@dataclass
class RetrievalScores:
    """Same-region retrieval of the encoder beside the two baselines (higher is better)."""

    encoder: float
    pca: float
    physics: float
    n_frames: int
    n_regions: int
    k: int = 10
    window_hours: float = 24.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {
            "retrieval_encoder": self.encoder,
            "retrieval_pca": self.pca,
            "retrieval_physics": self.physics,
            **self.extra,
        }


def retrieval_scores(
    encoder_features: np.ndarray,
    images: np.ndarray,
    table: pd.DataFrame,
    *,
    fit_images: np.ndarray | None = None,
    reference_table: pd.DataFrame | None = None,
    k: int = 10,
    window_hours: float = 24.0,
) -> RetrievalScores:
    """Same-region retrieval for the encoder's vectors and for both baselines.

    ``table`` holds harpnum, t_rec and the physical parameters of the evaluated frames;
    ``fit_images`` / ``reference_table`` are training frames (PCA fit, standardisation).
    """
    harp, t = table["harpnum"].to_numpy(), table["t_rec"].to_numpy()
    pca = pca_features(images, fit_images, n_components=encoder_features.shape[1])
    phys = physics_features(table, reference=reference_table)
    return RetrievalScores(
        encoder=same_region_retrieval(encoder_features, harp, t, k=k, window_hours=window_hours),
        pca=same_region_retrieval(pca, harp, t, k=k, window_hours=window_hours),
        physics=same_region_retrieval(phys, harp, t, k=k, window_hours=window_hours),
        n_frames=len(table),
        n_regions=int(table["harpnum"].nunique()),
        k=k,
        window_hours=window_hours,
    )
