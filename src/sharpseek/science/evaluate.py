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
are :mod:`sharpseek.training.evaluate_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import linalg, stats

from sharpseek.models.augment import augment
from sharpseek.physics.definitions import PAPER_PARAMETERS
from sharpseek.science.directions import paired_change
from sharpseek.science.realism import flux_balance

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
    "SEED_BLOCKS",
    "distinct_count",
    "top_k_share",
    "k_occurrence",
    "skewness",
    "hubness",
    "bootstrap_correlation_ci",
    "spectral_high_share",
    "nearest_distances",
    "memorisation",
    "realism_summary",
    "shift_effects",
]

#: The paper's eight parameters, compared between generated and real distributions (the
#: list lives once, in :mod:`sharpseek.physics.definitions`).
QUALITY_PARAMETERS = PAPER_PARAMETERS

#: Two disjoint blocks of generator seeds: every figure is reported on both (tune on one,
#: report the other, and a reader sees whether a figure generalises).
SEED_BLOCKS = (0, 100_000)


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


# ---------------------------------------------------------------------------------------------
# Hubness of a retrieval: how many different frames the queries find


def distinct_count(matches: Sequence[int] | np.ndarray) -> int:
    """Number of distinct values among ``matches`` (n,): the distinct nearest frames."""
    return int(len(np.unique(np.asarray(matches))))


def top_k_share(matches: Sequence[int] | np.ndarray, k: int = 5) -> float:
    """Share of the queries whose match (n,) is one of the ``k`` most frequent matches."""
    m = np.asarray(matches)
    if m.size == 0:
        raise ValueError("top_k_share needs at least one match")
    _, counts = np.unique(m, return_counts=True)
    return float(np.sort(counts)[::-1][:k].sum() / m.size)


def k_occurrence(neighbours: np.ndarray, n_base: int) -> np.ndarray:
    """k-occurrence N_k (n_base,) int: how many queries hold each base item among their k
    nearest neighbours, given ``neighbours`` (n_queries, k) of base row positions."""
    nb = np.asarray(neighbours, dtype=np.int64)
    if nb.ndim != 2:
        raise ValueError(f"neighbours must have shape (n_queries, k), got {nb.shape}")
    return np.bincount(nb.ravel(), minlength=n_base)


def skewness(x: np.ndarray) -> float:
    """Sample skewness E[(x - mean)^3] / std^3 (population moments, as scipy's default);
    NaN for a constant array. Hubness is a k-occurrence with a long right tail (> 0)."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean()
    m2 = (d**2).mean()
    return float((d**3).mean() / m2**1.5) if m2 > 0 else float("nan")


def hubness(neighbours: np.ndarray, n_base: int, top: int = 5) -> dict[str, Any]:
    """Hubness of a retrieval whose queries found ``neighbours`` (n_queries, k), nearest
    first, among ``n_base`` items: ``distinct_nearest`` (distinct first neighbours),
    ``top5_share`` (share of queries whose first neighbour is one of the ``top`` most
    frequent), ``k_occurrence_skewness`` (of N_k over all base items), ``k``,
    ``max_k_occurrence`` and ``zero_k_occurrence_share`` (base items no query found)."""
    nb = np.asarray(neighbours, dtype=np.int64)
    nk = k_occurrence(nb, n_base)
    return {
        "distinct_nearest": distinct_count(nb[:, 0]),
        f"top{top}_share": top_k_share(nb[:, 0], top),
        "k_occurrence_skewness": skewness(nk),
        "k": int(nb.shape[1]),
        "max_k_occurrence": int(nk.max()),
        "zero_k_occurrence_share": float((nk == 0).mean()),
        "n_queries": int(len(nb)),
        "n_base": int(n_base),
    }


# ---------------------------------------------------------------------------------------------
# Bootstrap intervals of correlations


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of a, b (r, n)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / den


def bootstrap_correlation_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: str = "pearson",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the correlation between paired samples a, b (n,).

    Pairs are resampled with replacement ``n_boot`` times (seeded); the interval holds the
    central ``level`` of the resampled correlations (resamples without variance left out).
    ``method``: ``pearson`` or ``spearman`` (Pearson of the ranks, ties averaged). Pairs
    where either value is not finite are dropped first; fewer than 3 give (NaN, NaN).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    ra, rb = a[idx], b[idx]  # (n_boot, n)
    if method == "spearman":
        ra, rb = stats.rankdata(ra, axis=1), stats.rankdata(rb, axis=1)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    r = _pearson_rows(ra, rb)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# GAN: realism beyond the parameters, and memorisation


def spectral_high_share(images: np.ndarray, radius: float = 32.0) -> np.ndarray:
    """Share of each image's spectral power |F|^2 at a distance > ``radius`` from the zero
    frequency, F = fftshift(fft2(b)) with the zero at (n/2, n/2) as SCIENCE.md's ALPHA
    (the corner of a 128 x 128 spectrum lies at 64 sqrt(2)); the total includes the zero
    frequency. A checkerboard puts everything at the Nyquist corner (share 1); a smooth
    image almost nothing beyond radius 32.

    Parameters
    ----------
    images : (n, h, w) or (h, w)

    Returns
    -------
    ndarray (n,) float64 in [0, 1]; NaN for an all-zero image.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    h, w = x.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    beyond = np.hypot(yy - h // 2, xx - w // 2) > radius
    out = np.empty(len(x))
    for start in range(0, len(x), 256):
        f = np.fft.fftshift(np.fft.fft2(x[start : start + 256]), axes=(-2, -1))
        power = np.abs(f) ** 2
        total = power.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(f)] = power[:, beyond].sum(1) / total
    return out


def nearest_distances(
    queries: np.ndarray, base: np.ndarray, *, exclude_self: bool = False, chunk: int = 512
) -> np.ndarray:
    """Euclidean distance (n,) from each query row to its nearest ``base`` row.

    Parameters
    ----------
    queries : (n, ...) ; base : (m, ...), flattened to vectors (images become pixels).
    exclude_self : queries are the base itself (n == m): row i's own entry is skipped.
    """
    q = np.asarray(queries).reshape(len(queries), -1)
    b = np.asarray(base).reshape(len(base), -1)
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries {q.shape} and base {b.shape} differ in dimension")
    best = np.full(len(q), np.inf)
    for bs in range(0, len(b), chunk):  # float64 one block of the base at a time
        bc = b[bs : bs + chunk].astype(np.float64)
        bn = (bc * bc).sum(1)
        for qs in range(0, len(q), chunk):
            qc = q[qs : qs + chunk].astype(np.float64)
            d2 = (qc * qc).sum(1)[:, None] + bn[None, :] - 2 * qc @ bc.T
            if exclude_self:
                rows = np.arange(qs, qs + len(qc))
                own = (rows >= bs) & (rows < bs + len(bc))
                d2[np.flatnonzero(own), rows[own] - bs] = np.inf
            best[qs : qs + len(qc)] = np.minimum(best[qs : qs + len(qc)], d2.min(1))
    return np.sqrt(np.clip(best, 0, None))


def memorisation(
    generated: np.ndarray, held_out: np.ndarray, train: np.ndarray
) -> dict[str, float]:
    """Median distance of generated samples (n, ...) to their nearest training sample
    (m, ...), beside the same for held-out real samples (h, ...): a generator that copies
    its training frames sits much nearer to them than frames of unseen regions do
    (``ratio`` = generated / held-out, < 1 is suspicious)."""
    g = float(np.median(nearest_distances(generated, train)))
    h = float(np.median(nearest_distances(held_out, train)))
    return {"generated_median": g, "held_out_median": h, "ratio": g / h if h > 0 else np.nan}


def realism_summary(
    generated: pd.DataFrame | dict[str, np.ndarray],
    real: pd.DataFrame | dict[str, np.ndarray],
    generated_images: np.ndarray,
    real_images: np.ndarray,
    names: Sequence[str] = QUALITY_PARAMETERS,
    radius: float = 32.0,
) -> dict[str, float]:
    """Generated against real, beyond :func:`parameter_distances` (whose keys it holds too):

    - ``psep_median_ratio``: median PSEP of the bipolar generated images / that of the
      bipolar real ones (1 = alike);
    - ``bipolar_share_generated``, ``bipolar_share_real``: share with PSEP defined;
    - ``flux_imbalance_generated``, ``flux_imbalance_real``: median |TPF - TNF| / (TPF + TNF)
      over the images with flux beyond the threshold (where both tables have TPF and TNF): an
      active region's two polarities carry nearly equal flux, which the eight parameters'
      separate distributions do not check;
    - ``spectral_high_share_generated``, ``_real`` and ``spectral_high_ratio``: mean share of
      |F|^2 beyond ``radius`` (:func:`spectral_high_share`), and their ratio (1 = alike; a
      checkerboard texture lifts it).
    """
    out = parameter_distances(generated, real, names)
    g = np.asarray(generated["psep"], np.float64)
    r = np.asarray(real["psep"], np.float64)
    gb, rb = g[np.isfinite(g)], r[np.isfinite(r)]
    out["psep_median_ratio"] = (
        float(np.median(gb) / np.median(rb)) if len(gb) and len(rb) else float("nan")
    )
    out["bipolar_share_generated"] = float(np.isfinite(g).mean())
    out["bipolar_share_real"] = float(np.isfinite(r).mean())
    if all("tpf" in t and "tnf" in t for t in (generated, real)):
        for side, table in (("generated", generated), ("real", real)):
            u = np.abs(flux_balance(np.asarray(table["tpf"]), np.asarray(table["tnf"])))
            u = u[np.isfinite(u)]
            out[f"flux_imbalance_{side}"] = float(np.median(u)) if len(u) else float("nan")
    sg = float(np.nanmean(spectral_high_share(generated_images, radius)))
    sr = float(np.nanmean(spectral_high_share(real_images, radius)))
    out["spectral_high_share_generated"] = sg
    out["spectral_high_share_real"] = sr
    out["spectral_high_ratio"] = sg / sr if sr > 0 else float("nan")
    return out


# ---------------------------------------------------------------------------------------------
# Directions: what a shift does


def shift_effects(
    before: pd.DataFrame | dict[str, np.ndarray],
    after: pd.DataFrame | dict[str, np.ndarray],
    shifted: str,
    others: Sequence[str],
    iqr: dict[str, float],
) -> dict[str, Any]:
    """What a shift along ``shifted`` did to a set of images (one row per seed).

    Returns ``rises`` (share of seeds where ``shifted`` grew; pairs with a NaN before or
    after count as not risen), ``median_relative_change`` (median of (after - before) /
    |before| over the finite pairs with before != 0), and for each of ``others``
    ``<name>_median_change_iqr`` (median of (after - before) / IQR[name]) and
    ``<name>_median_abs_change_iqr`` (median of |after - before| / IQR[name]), over finite
    pairs; ``n`` the number of seeds.
    """
    b = np.asarray(before[shifted], np.float64)
    rises, change = paired_change(b, np.asarray(after[shifted], np.float64))
    out: dict[str, Any] = {"n": int(len(b)), "rises": rises, "median_relative_change": change}
    for name in others:
        d = np.asarray(after[name], np.float64) - np.asarray(before[name], np.float64)
        d = d[np.isfinite(d)] / (iqr[name] or 1.0)
        out[f"{name}_median_change_iqr"] = float(np.median(d)) if len(d) else float("nan")
        out[f"{name}_median_abs_change_iqr"] = (
            float(np.median(np.abs(d))) if len(d) else float("nan")
        )
    return out
