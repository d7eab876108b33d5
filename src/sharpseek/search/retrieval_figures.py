"""The retrieval evaluation's figures (the paper's Figs. 7-9 and the hubness histogram).

:func:`joint_figure` draws 2-D histograms of a query's parameter against its SimSiam match's,
with marginals (Figs. 7 and 9); :func:`examples_figure` a grid of queries beside their nearest
frame by each method (Fig. 8); :func:`k_occurrence_figure` the 10-occurrence histograms of
every seed block (issue 16). Each takes a
:class:`sharpseek.search.evaluate_retrieval.RetrievalEvaluation` and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from sharpseek.science.plotting import magnetogram_grid
from sharpseek.search.evaluate_retrieval import METHOD_LABELS, METHODS, RetrievalEvaluation

__all__ = ["examples_figure", "joint_figure", "k_occurrence_figure"]

_LABELS = {
    "tuf": "TUF [G px]",
    "tpf": "TPF [G px]",
    "tnf": "TNF [G px]",
    "psep": "PSEP [model px]",
    "r": "R [G px]",
    "sigma": "SIGMA",
    "alpha": "ALPHA",
    "grad": "GRAD [b / px]",
}


_LOG = ("tuf", "tpf", "tnf", "r")


def _joint_panel(fig, spec, q: np.ndarray, m: np.ndarray, everything: np.ndarray, name: str):
    """2-D histogram of query vs match with marginals (the paper's Figs. 7 and 9)."""
    ok = np.isfinite(q) & np.isfinite(m)
    q, m = q[ok], m[ok]
    everything = everything[np.isfinite(everything)]
    r_rho = None
    if len(q) >= 3 and np.ptp(q) > 0 and np.ptp(m) > 0:  # on the values, before any log
        r_rho = (stats.pearsonr(q, m).statistic, stats.spearmanr(q, m).statistic, len(q))
    label = _LABELS[name]
    if name in _LOG:  # fluxes span decades: draw log10 (frames with 0 flux left out)
        q, m = np.log10(np.where(q > 0, q, np.nan)), np.log10(np.where(m > 0, m, np.nan))
        keep = np.isfinite(q) & np.isfinite(m)
        q, m = q[keep], m[keep]
        everything = np.log10(everything[everything > 0])
        label = f"log10 {label}"
    grid = spec.subgridspec(
        2, 2, width_ratios=(4, 1), height_ratios=(1, 4), wspace=0.05, hspace=0.05
    )
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    lo = np.nanpercentile(np.concatenate([q, m, everything]), 0.5)
    hi = np.nanpercentile(np.concatenate([q, m, everything]), 99.5)
    if not hi > lo:
        hi = lo + 1.0
    bins = np.linspace(lo, hi, 40)
    ax.hist2d(q, m, bins=[bins, bins], cmap="Blues", cmin=1)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
    ax.set_xlabel(f"query {label}", fontsize=8)
    ax.set_ylabel(f"match {label}", fontsize=8)
    ax.tick_params(labelsize=7)
    top.hist(q, bins=bins, density=True, color="lightblue", alpha=0.9, label="generated")
    top.hist(m, bins=bins, density=True, color="lightpink", alpha=0.7, label="matched real")
    top.hist(everything, bins=bins, density=True, histtype="step", color="k", label="all real")
    right.hist(m, bins=bins, density=True, color="lightpink", alpha=0.9, orientation="horizontal")
    right.hist(q, bins=bins, density=True, color="lightblue", alpha=0.7, orientation="horizontal")
    right.hist(
        everything, bins=bins, density=True, histtype="step", color="k", orientation="horizontal"
    )
    for a in (top, right):
        a.tick_params(labelbottom=False, labelleft=False, bottom=False, left=False)
    if r_rho is not None:
        ax.text(
            0.03, 0.97, f"Pearson {r_rho[0]:.2f}\nSpearman {r_rho[1]:.2f}\nn = {r_rho[2]}",
            transform=ax.transAxes, va="top", fontsize=7,
        )  # fmt: skip
    return top


def joint_figure(result: RetrievalEvaluation, names: Sequence[str], path: Path, title: str):
    """One query-vs-match panel per parameter in ``names`` (SimSiam matches), saved to
    ``path`` (PNG); returns ``path``."""
    idx = result.matches["simsiam"]
    fig = plt.figure(figsize=(3.6 * len(names), 4.0))
    outer = fig.add_gridspec(1, len(names), wspace=0.35)
    tops = []
    for i, name in enumerate(names):
        q = result.queries[name].to_numpy(np.float64)
        m = result.real[name].to_numpy(np.float64)[idx]
        tops.append(_joint_panel(fig, outer[i], q, m, result.real[name].to_numpy(np.float64), name))
    tops[0].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def examples_figure(result: RetrievalEvaluation, dataset, path: Path, n: int = 5) -> Path:
    """``n`` queries (the strongest by TUF, then spread over its range), each beside its
    nearest frame by every method (read from ``dataset``), saved to ``path`` (PNG)."""
    order = np.argsort(-result.queries["tuf"].to_numpy())  # strong queries first, then spread
    pick = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    images, titles = [], []
    for qi in pick:
        images.append(result.query_images[qi])
        titles.append(f"query (seed {int(result.queries['seed'].iloc[qi])})")
        for method in METHODS:
            row = result.real.iloc[int(result.matches[method][qi])]
            rid = str(row["record_id"])
            ds_row = np.flatnonzero(dataset.manifest["record_id"].to_numpy() == rid)[0]
            images.append(dataset.images([ds_row])[0])
            titles.append(f"{METHOD_LABELS[method]}\nHARP {int(row['harpnum'])}")
    return magnetogram_grid(
        np.stack(images),
        path,
        titles=titles,
        ncols=4,
        suptitle="Query and nearest frame by SimSiam, Euclidean and Mahalanobis (TUF, R, PSEP)",
    )


def k_occurrence_figure(results: Sequence[RetrievalEvaluation], path: Path) -> Path:
    """Histogram of the 10-occurrence N_10 of the real frames (how many queries hold a
    frame among their 10 nearest), per method, one line per seed block: hubness is the
    long right tail and the spike at 0."""
    fig, axes = plt.subplots(1, len(METHODS), figsize=(4.2 * len(METHODS), 3.2), sharey=True)
    for ax, method in zip(axes, METHODS, strict=True):
        for result, style in zip(results, ("-", "--", ":", "-."), strict=False):
            nk = result.k_occurrence[method]
            hi = max(int(nk.max()), 1)
            bins = np.unique(np.geomspace(1, hi + 1, 30).astype(int))
            counts, edges = np.histogram(nk[nk > 0], bins=bins)
            h = result.hubness[method]
            ax.step(
                edges[:-1], np.maximum(counts, 0.8), where="post", ls=style,
                label=f"seeds {result.meta['seed']}..: skew {h['k_occurrence_skewness']:.1f}, "
                f"{h['zero_k_occurrence_share']:.0%} never found",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(METHOD_LABELS[method], fontsize=9)
        ax.set_xlabel("N_10: queries holding a frame among their 10 nearest", fontsize=8)
        ax.legend(fontsize=6, frameon=False)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("real frames (N_10 > 0)", fontsize=8)
    fig.suptitle("Hubness: how often each real frame is found (log-log)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
