"""How much the look-alike flare outlook is worth (``sharpseek evaluate outlook``, issue 23).

Every indexed frame of one kind (synthetic or real) with a known outcome becomes a record
query; its outlook is computed by the product's own rule
(:func:`sharpseek.search.outlook.look_alike_outlook`: only neighbours whose outcome had closed
before the query's T_REC, never its region, one frame per region) over the frames of the
same kind, from the stored embeddings. Two splits:

* **chronological**: queries before the median T_REC choose k (the lowest Brier score);
  the later queries test it;
* **held-out regions**: half the regions (seeded) are queries only and never neighbours; k
  is chosen on the other half's queries (their neighbours: that half, own region excluded).

Against the same test queries: **climatology** (the training queries' base rate, a constant:
its true skill statistic is 0 by construction) and a **threshold rule on R** (``r_jsoc`` for
real frames, model-space ``r`` for synthetic ones; the threshold maximising TSS on the
training queries; its probabilities are the training base rates above and below it). The
outlook's yes/no forecast for TSS is share >= the training base rate. 95 % intervals:
percentiles of a bootstrap over test *regions* (frames of one region are not independent).
On the demo the synthetic flares follow R by construction (docs/synthetic.md): the figures
check the plumbing, they are not a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sharpseek.data.flares import class_threshold
from sharpseek.search.outlook import look_alike_outlook

__all__ = ["evaluate_outlook", "outlook_frames", "plot_reliability"]

METHODS = ("outlook", "climatology", "r_rule")


def outlook_frames(
    index: Any, *, kind: str, hours: int, extra: Sequence[str] = ()
) -> tuple[pd.DataFrame, np.ndarray]:
    """The live index's frames of ``kind`` (``synthetic`` or ``real``) with flare outcomes:
    a table (``record_id``, ``region``, ``t_rec``, ``outcome_<h>h_status``,
    ``outcome_<h>h_max_flux``, ``rule_r``, and the payload fields ``extra``) and their
    embeddings (n, dim)."""
    name = f"outcome_{int(hours)}h"
    keys = ["series", "region", "t_rec", f"{name}_status", f"{name}_max_flux", "r", "r_jsoc"]
    keys += [k for k in extra if k not in keys]
    rows = [
        r
        for r in index.scan(keys)
        if r.get(f"{name}_status") in ("known", "unknown")
        and (str(r.get("series")) == "synthetic") == (kind == "synthetic")
    ]
    if not rows:
        raise ValueError(
            f"no {kind} frame of the index has a {hours} h outcome: load flares first "
            "(sharpseek flares load FILE, or sharpseek flares synthetic)"
        )
    table = pd.DataFrame(rows)
    table["t_rec"] = pd.to_datetime(table["t_rec"].astype(str).str.rstrip("Z"))
    rule = "r" if kind == "synthetic" else "r_jsoc"
    table["rule_r"] = pd.to_numeric(table[rule], errors="coerce")
    vectors = []
    ids = table["record_id"].tolist()
    for start in range(0, len(ids), 1000):
        got = {
            r.record_id: r.vector for r in index.get(ids[start : start + 1000], with_vector=True)
        }
        vectors.extend(got[i] for i in ids[start : start + 1000])
    return table.reset_index(drop=True), np.asarray(vectors, np.float32)


def _outlooks(
    table: pd.DataFrame,
    vectors: np.ndarray,
    queries: np.ndarray,
    pool: np.ndarray,
    ks: Sequence[int],
    threshold: str,
    hours: int,
) -> dict[int, np.ndarray]:
    """Per k, the outlook share of each query (NaN when no neighbour's outcome is known)."""
    candidates = table.iloc[pool][
        ["record_id", "region", "t_rec", f"outcome_{hours}h_status", f"outcome_{hours}h_max_flux"]
    ].reset_index(drop=True)
    pool_vectors = vectors[pool]
    shares = {k: np.full(len(queries), np.nan) for k in ks}
    for j, q in enumerate(queries):
        distance = np.linalg.norm(pool_vectors - vectors[q], axis=1)
        out = look_alike_outlook(
            candidates.assign(distance=distance),
            k=max(ks),
            threshold=threshold,
            hours=hours,
            query_t_rec=table["t_rec"].iloc[q],
            query_region=str(table["region"].iloc[q]),
        )
        flags = [n["flared"] for n in out.neighbours]  # nearest first; None when unknown
        for k in ks:
            known = [f for f in flags[:k] if f is not None]
            if known:
                shares[k][j] = float(np.mean(known))
    return shares


def _scores(p: np.ndarray, yes: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(TSS, Brier) of probabilities ``p``, yes/no forecasts ``yes`` and events ``y``."""
    pos, neg = y.sum(), (~y).sum()
    tss = (yes & y).sum() / pos - (yes & ~y).sum() / neg if pos and neg else np.nan
    return float(tss), float(np.mean((p - y) ** 2))


def _bootstrap(
    regions: np.ndarray, p: np.ndarray, yes: np.ndarray, y: np.ndarray, n: int, seed: int
) -> dict[str, list[float]]:
    """95 % percentile intervals of TSS and Brier over test regions resampled with
    replacement (counts per region, weighted)."""
    codes, region_of = np.unique(regions, return_inverse=True)
    per = {
        name: np.bincount(region_of, weights=values.astype(float), minlength=len(codes))
        for name, values in {
            "tp": yes & y,
            "fp": yes & ~y,
            "pos": y,
            "neg": ~y,
            "se": (p - y) ** 2,
            "n": np.ones_like(p),
        }.items()
    }
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(n, len(codes)))
    weights = np.stack([np.bincount(d, minlength=len(codes)) for d in draws]).astype(float)
    s = {name: weights @ v for name, v in per.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        tss = s["tp"] / s["pos"] - s["fp"] / s["neg"]
    brier = s["se"] / s["n"]
    return {
        "tss_ci": [float(x) for x in np.nanpercentile(tss, [2.5, 97.5])],
        "brier_ci": [float(x) for x in np.percentile(brier, [2.5, 97.5])],
    }


def _r_rule(r: np.ndarray, y: np.ndarray) -> float:
    """The R threshold maximising TSS on (r, y)."""
    finite = np.isfinite(r)
    candidates = np.unique(np.quantile(r[finite], np.linspace(0.02, 0.98, 49)))
    best, best_tss = float(candidates[0]), -np.inf
    for c in candidates:
        tss, _ = _scores(np.zeros(len(y)), finite & (r >= c), y)
        if np.isfinite(tss) and tss > best_tss:
            best, best_tss = float(c), tss
    return best


def _split(
    table: pd.DataFrame,
    vectors: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    pool_train: np.ndarray,
    pool_test: np.ndarray,
    *,
    ks: Sequence[int],
    threshold: str,
    hours: int,
    y: np.ndarray,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    share_train = _outlooks(table, vectors, train, pool_train, ks, threshold, hours)
    share_test = _outlooks(table, vectors, test, pool_test, ks, threshold, hours)
    y_train, y_test = y[train], y[test]
    base = float(y_train.mean())
    brier_by_k = {
        k: float(np.mean((np.where(np.isnan(s), base, s) - y_train) ** 2))
        for k, s in share_train.items()
    }
    k = min(brier_by_k, key=lambda kk: (brier_by_k[kk], kk))
    p_outlook = np.where(np.isnan(share_test[k]), base, share_test[k])
    r = table["rule_r"].to_numpy(float)
    cut = _r_rule(r[train], y_train)
    above_train = np.isfinite(r[train]) & (r[train] >= cut)
    above_test = np.isfinite(r[test]) & (r[test] >= cut)
    rate_above = float(y_train[above_train].mean()) if above_train.any() else base
    rate_below = float(y_train[~above_train].mean()) if (~above_train).any() else base
    forecasts = {
        "outlook": (p_outlook, p_outlook >= base),
        "climatology": (np.full(len(test), base), np.zeros(len(test), bool)),
        "r_rule": (np.where(above_test, rate_above, rate_below), above_test),
    }
    regions = table["region"].to_numpy(str)[test]
    methods = {}
    for name, (p, yes) in forecasts.items():
        tss, brier = _scores(p, yes, y_test)
        methods[name] = {"tss": tss, "brier": brier} | _bootstrap(
            regions, p, yes, y_test, n_boot, seed
        )
    bins = np.linspace(0, 1, 6)
    which = np.clip(np.digitize(p_outlook, bins) - 1, 0, len(bins) - 2)
    reliability = [
        {
            "from": float(bins[b]),
            "to": float(bins[b + 1]),
            "n": int((which == b).sum()),
            "mean_forecast": float(p_outlook[which == b].mean()) if (which == b).any() else None,
            "observed": float(y_test[which == b].mean()) if (which == b).any() else None,
        }
        for b in range(len(bins) - 1)
    ]
    return {
        "k": int(k),
        "train_brier_by_k": {str(kk): v for kk, v in brier_by_k.items()},
        "train_queries": int(len(train)),
        "test_queries": int(len(test)),
        "test_regions": int(len(np.unique(regions))),
        "train_base_rate": base,
        "test_base_rate": float(y_test.mean()),
        "r_threshold": cut,
        "no_known_neighbour": int(np.isnan(share_test[k]).sum()),
        "methods": methods,
        "reliability": reliability,
    }


def evaluate_outlook(
    table: pd.DataFrame,
    vectors: np.ndarray,
    *,
    ks: Sequence[int] = (5, 10, 20, 40),
    threshold: str = "M",
    hours: int = 24,
    max_queries: int | None = 2000,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The outlook's skill on a chronological split and on held-out regions, beside
    climatology and the R rule (module notes). ``table`` and ``vectors`` as
    :func:`outlook_frames` gives them; ``max_queries`` caps the queries of each split
    (a seeded random subset) to bound the time."""
    name = f"outcome_{int(hours)}h"
    floor = class_threshold(threshold) * (1 - 1e-9)
    known = (table[f"{name}_status"] == "known").to_numpy()
    flux = pd.to_numeric(table[f"{name}_max_flux"], errors="coerce").to_numpy(float)
    y = known & (np.nan_to_num(flux) >= floor)
    rng = np.random.default_rng(seed)
    every = np.arange(len(table))

    def cap(idx: np.ndarray) -> np.ndarray:
        if max_queries is None or len(idx) <= max_queries // 2:
            return idx
        return np.sort(rng.choice(idx, size=max_queries // 2, replace=False))

    queries = every[known]
    if len(queries) < 10:
        raise ValueError(f"{len(queries)} frames with a known outcome: too few to evaluate")
    t = table["t_rec"].to_numpy("datetime64[s]")
    middle = np.sort(t[queries])[len(queries) // 2]
    chrono = _split(
        table,
        vectors,
        cap(queries[t[queries] < middle]),
        cap(queries[t[queries] >= middle]),
        every,
        every,
        ks=ks,
        threshold=threshold,
        hours=hours,
        y=y,
        n_boot=n_boot,
        seed=seed,
    ) | {"split_t_rec": str(middle)}
    regions = np.unique(table["region"].astype(str))
    held = set(rng.choice(regions, size=len(regions) // 2, replace=False).tolist())
    is_held = table["region"].astype(str).isin(held).to_numpy()
    held_out = _split(
        table,
        vectors,
        cap(queries[~is_held[queries]]),
        cap(queries[is_held[queries]]),
        every[~is_held],
        every[~is_held],
        ks=ks,
        threshold=threshold,
        hours=hours,
        y=y,
        n_boot=n_boot,
        seed=seed,
    ) | {"held_out_regions": len(held)}
    return {
        "frames": int(len(table)),
        "regions": int(len(regions)),
        "known": int(known.sum()),
        "events": int(y.sum()),
        "threshold": threshold,
        "hours": int(hours),
        "ks": [int(k) for k in ks],
        "bootstrap": n_boot,
        "chronological": chrono,
        "held_out": held_out,
    }


def plot_reliability(result: dict[str, Any], path: Any) -> None:
    """Reliability diagram of the outlook on both test sets, with the base rate."""
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(5, 4.4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect reliability")
    for key, colour in (("chronological", "tab:blue"), ("held_out", "tab:orange")):
        split = result[key]
        bins = [b for b in split["reliability"] if b["n"]]
        ax.plot(
            [b["mean_forecast"] for b in bins],
            [b["observed"] for b in bins],
            "o-",
            color=colour,
            label=f"{key.replace('_', ' ')} (k={split['k']}, {split['test_queries']} queries)",
        )
        for b in bins:
            ax.annotate(str(b["n"]), (b["mean_forecast"], b["observed"]), fontsize=7,
                        xytext=(3, -9), textcoords="offset points", color=colour)  # fmt: skip
        ax.axhline(split["test_base_rate"], color=colour, lw=0.8, ls=":")
    ax.set_xlabel(f"outlook: share of look-alikes with a flare >= {result['threshold']}")
    ax.set_ylabel(f"observed frequency (>= {result['threshold']} in {result['hours']} h)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Look-alike outlook reliability (dotted: test base rate)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
