"""The evaluation measures of issue 16 (sharpseek.science.evaluate) against slow, obvious
implementations on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sharpseek.science.evaluate import (
    bootstrap_correlation_ci,
    distinct_count,
    hubness,
    k_occurrence,
    memorisation,
    nearest_distances,
    realism_summary,
    shift_effects,
    skewness,
    spectral_high_share,
    top_k_share,
)


def _slow_counts(values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(5))
def test_distinct_count_and_top5_share_match_a_dictionary_count(seed):
    rng = np.random.default_rng(seed)
    matches = rng.zipf(1.6, size=200) % 37  # a few hubs, a long tail
    counts = _slow_counts(matches.tolist())
    assert distinct_count(matches) == len(counts)
    top = sorted(counts.values(), reverse=True)[:5]
    assert top_k_share(matches, 5) == pytest.approx(sum(top) / 200)


def test_top5_share_of_all_distinct_and_all_equal():
    assert top_k_share(np.arange(100), 5) == pytest.approx(0.05)
    assert top_k_share(np.zeros(100, int), 5) == 1.0
    assert distinct_count(np.zeros(100, int)) == 1


def _slow_skewness(x):
    n = len(x)
    mean = sum(x) / n
    m2 = sum((v - mean) ** 2 for v in x) / n
    m3 = sum((v - mean) ** 3 for v in x) / n
    return m3 / m2**1.5


@pytest.mark.parametrize("seed", range(3))
def test_k_occurrence_and_its_skewness_match_loops(seed):
    rng = np.random.default_rng(seed)
    n_base, n_q, k = 40, 30, 10
    # each query's 10 distinct neighbours, biased toward low rows (hubs)
    neighbours = np.stack(
        [
            rng.choice(n_base, k, replace=False, p=np.linspace(2, 0.1, n_base) / 42.0)
            for _ in range(n_q)
        ]
    )
    slow = [0] * n_base
    for row in neighbours:
        for item in row:
            slow[item] += 1
    nk = k_occurrence(neighbours, n_base)
    assert nk.tolist() == slow and nk.sum() == n_q * k
    assert skewness(nk) == pytest.approx(_slow_skewness(slow))
    h = hubness(neighbours, n_base)
    assert h["distinct_nearest"] == len(set(neighbours[:, 0].tolist()))
    assert h["k_occurrence_skewness"] == pytest.approx(_slow_skewness(slow))
    assert h["zero_k_occurrence_share"] == pytest.approx(slow.count(0) / n_base)


def test_skewness_sign_and_constant():
    assert skewness(np.array([0, 0, 0, 0, 10.0])) > 0  # one hub: a right tail
    assert skewness(np.array([10, 10, 10, 10, 0.0])) < 0
    assert math.isnan(skewness(np.ones(5)))


def _slow_pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb)


def test_bootstrap_interval_is_the_percentile_interval_of_resampled_correlations():
    rng = np.random.default_rng(1)
    a = rng.normal(size=25)
    b = a + rng.normal(size=25)
    lo, hi = bootstrap_correlation_ci(a, b, n_boot=200, seed=3)
    idx = np.random.default_rng(3).integers(0, 25, size=(200, 25))
    rs = sorted(_slow_pearson(a[i].tolist(), b[i].tolist()) for i in idx)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(rs, [0.025, 0.975])), abs=1e-12)
    assert lo < _slow_pearson(a.tolist(), b.tolist()) < hi


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_intervals_cover_a_known_correlation_about_95_percent(method):
    """Bivariate normal with rho = 0.5: Pearson is rho, Spearman 6/pi asin(rho/2). The
    percentile interval of n = 100 pairs should hold the truth in ~95 % of 300 samples."""
    rho = 0.5
    truth = rho if method == "pearson" else 6 / np.pi * np.arcsin(rho / 2)
    rng = np.random.default_rng(0)
    cov = [[1, rho], [rho, 1]]
    hits = 0
    trials = 300
    for t in range(trials):
        x = rng.multivariate_normal([0, 0], cov, size=100)
        lo, hi = bootstrap_correlation_ci(x[:, 0], x[:, 1], method=method, n_boot=300, seed=t)
        hits += lo <= truth <= hi
    # binomial sd at 0.95 over 300 trials is 1.3 %: 0.90..0.99 is far outside chance
    assert 0.90 <= hits / trials <= 0.99


def test_bootstrap_drops_non_finite_pairs_and_needs_three():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    b = np.array([1.0, 2.5, 3.0, np.inf, 5.5, 6.0])
    assert bootstrap_correlation_ci(a, b, seed=0) == bootstrap_correlation_ci(
        a[[0, 1, 4, 5]], b[[0, 1, 4, 5]], seed=0
    )
    assert all(math.isnan(v) for v in bootstrap_correlation_ci(a[:2], b[:2]))


def _slow_spectral_share(image, radius):
    n = image.shape[0]
    total = beyond = 0.0
    f = np.fft.fft2(image)  # unshifted: frequency (u, v) with u, v in -n/2..n/2-1
    for i in range(n):
        for j in range(n):
            u = i if i < n // 2 else i - n
            v = j if j < n // 2 else j - n
            p = abs(f[i, j]) ** 2
            total += p
            if math.hypot(u, v) > radius:
                beyond += p
    return beyond / total


def test_spectral_share_of_checkerboards_smooth_images_and_noise():
    n = 128
    y, x = np.mgrid[0:n, 0:n]
    checker = np.where((x + y) % 2 == 0, 1.0, -1.0)
    smooth = np.exp(-((x - 64) ** 2 + (y - 50) ** 2) / (2 * 12.0**2))
    stripes = np.cos(2 * np.pi * 40 * x / n)  # one frequency at radius 40: all beyond 32
    shares = spectral_high_share(np.stack([checker, smooth, stripes]))
    assert shares[0] == pytest.approx(1.0) and shares[2] == pytest.approx(1.0)
    assert shares[1] < 1e-6
    noise = np.random.default_rng(0).normal(size=(n, n))
    # white noise: the share is the area beyond radius 32, 1 - pi 32^2 / 128^2 ~ 0.80
    assert spectral_high_share(noise)[0] == pytest.approx(_slow_spectral_share(noise, 32.0))
    assert spectral_high_share(noise)[0] == pytest.approx(1 - np.pi * 32**2 / n**2, abs=0.02)


def test_spectral_share_of_a_small_image_matches_the_loop():
    img = np.random.default_rng(2).normal(size=(16, 16)) + np.linspace(0, 3, 16)[None]
    assert spectral_high_share(img, radius=4.0)[0] == pytest.approx(_slow_spectral_share(img, 4.0))


def test_nearest_distances_match_a_double_loop():
    rng = np.random.default_rng(0)
    q, b = rng.normal(size=(7, 3, 4)), rng.normal(size=(11, 3, 4))
    slow = [min(np.sqrt(((qi - bj) ** 2).sum()) for bj in b) for qi in q]
    assert nearest_distances(q, b, chunk=3) == pytest.approx(slow)
    own = [min(np.sqrt(((b[i] - b[j]) ** 2).sum()) for j in range(11) if j != i) for i in range(11)]
    assert nearest_distances(b, b, exclude_self=True, chunk=4) == pytest.approx(own)
    assert nearest_distances(b, b).max() == pytest.approx(0.0, abs=1e-6)


def test_realism_summary_ratios():
    gen = {
        name: np.arange(1.0, 5.0) for name in ("tuf", "tpf", "tnf", "r", "sigma", "alpha", "grad")
    }
    real = dict(gen)
    gen["psep"] = np.array([10.0, 20.0, np.nan, np.nan])
    real["psep"] = np.array([5.0, 5.0, 5.0, np.nan])
    n = 32
    y, x = np.mgrid[0:n, 0:n]
    checker = np.where((x + y) % 2 == 0, 1.0, -1.0)[None]
    smooth = np.exp(-((x - 16.0) ** 2 + (y - 16.0) ** 2) / 50.0)[None]
    out = realism_summary(gen, real, np.concatenate([checker, smooth]), smooth, radius=8)
    assert out["psep_median_ratio"] == pytest.approx(3.0)
    assert (out["bipolar_share_generated"], out["bipolar_share_real"]) == (0.5, 0.75)
    assert out["spectral_high_ratio"] > 1e3  # the checkerboard's power is all beyond
    assert out["ks_tuf"] == 0.0


def test_shift_effects_against_loops():
    before = {"tuf": np.array([1.0, 2.0, 4.0, np.nan]), "r": np.array([0.0, 1.0, 2.0, 3.0])}
    after = {"tuf": np.array([2.0, 1.0, 6.0, 5.0]), "r": np.array([1.0, 1.0, 6.0, np.nan])}
    out = shift_effects(before, after, "tuf", ["r"], {"r": 2.0})
    assert out["rises"] == pytest.approx(2 / 4)  # the NaN pair does not count as a rise
    assert out["median_relative_change"] == pytest.approx(np.median([1.0, -0.5, 0.5]))
    assert out["r_median_change_iqr"] == pytest.approx(np.median([0.5, 0.0, 2.0]))
    assert out["r_median_abs_change_iqr"] == pytest.approx(0.5)


def test_memorisation_of_a_copying_generator_is_below_one():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8))
    held = rng.normal(size=(20, 8))
    copies = train[:30] + 0.01 * rng.normal(size=(30, 8))
    m = memorisation(copies, held, train)
    assert m["generated_median"] < 0.1 < m["held_out_median"] and m["ratio"] < 0.1
    slow = np.median([min(np.linalg.norm(h - t) for t in train) for h in held])
    assert m["held_out_median"] == pytest.approx(slow)


class _LinearBackend:
    """A backend of known physics: z = latent_from_seeds + sum eps e_p along the first
    three axes (TUF, PSEP, R); TUF = exp(z0), PSEP = 10 + exp(z1) where z3 > 0 (else not
    bipolar), R = z2 where > 0 else 0. Holding does nothing: the axes are orthogonal."""

    axes = {"tuf": 0, "psep": 1, "r": 2}

    def versions(self):
        return {"gan": "linear", "directions": "axes"}

    def load_directions(self):
        from types import SimpleNamespace

        return SimpleNamespace(method=SimpleNamespace(describe=lambda: "the known axes"))

    def generate(self, z=None, *, seeds=None, shifts=None, hold=(), parameters=True):
        from types import SimpleNamespace

        from sharpseek.models.inference import latent_from_seeds

        z = latent_from_seeds(seeds, 8).astype(np.float64)
        for name, eps in (shifts or {}).items():
            z[:, self.axes[name]] += eps
        params = {
            "tuf": np.exp(z[:, 0]),
            "psep": np.where(z[:, 3] > 0, 10 + np.exp(z[:, 1]), np.nan),
            "r": np.clip(z[:, 2], 0, None),
        }
        return SimpleNamespace(parameters=params)


def test_directions_check_on_a_backend_of_known_physics():
    from sharpseek.models.inference import latent_from_seeds
    from sharpseek.science.evaluate_directions import evaluate_directions

    rng = np.random.default_rng(0)
    reference = {
        "tuf": rng.uniform(0, 4, 400),
        "psep": rng.uniform(0, 2, 400),
        "r": np.arange(400.0),
    }
    out = evaluate_directions(_LinearBackend(), reference, n=200, seed_blocks=(0, 100000))
    assert list(out["blocks"]) == ["0", "100000"] and out["method"] == "the known axes"
    z = latent_from_seeds(range(200), 8)
    chosen = (z[:, 3] > 0) & (z[:, 2] > 0)
    block = out["blocks"]["0"]
    assert block["selected"] == int(chosen.sum()) and block["seeds"] == [0, 199]
    tuf = block["tuf"]["alone"]
    assert tuf["rises"] == 1.0 and tuf["median_relative_change"] == pytest.approx(np.exp(1.5) - 1)
    assert tuf["r_median_abs_change_iqr"] == 0.0 and tuf["psep_median_change_iqr"] == 0.0
    r = block["r"]["held"]
    assert r["median_relative_change"] == pytest.approx(np.median(1.5 / z[chosen, 2]))
    assert out["iqr"]["r"] == pytest.approx(199.5)


def test_docs_show_the_committed_evaluation():
    """The figures of docs/evaluation.md and docs/training.md are those of the committed
    benchmarks/results/evaluation.json (written by benchmarks/write_evaluation_docs.py)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "benchmarks/write_evaluation_docs.py", "--check"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
