"""The paper's retrieval analysis on any dataset (issue 6; the paper's Figs. 7-9).

1. Generate ``n`` queries (default 1,000) from random latent vectors.
2. For each, find its nearest real frame (one best frame per region; the nearest frame is
   its region's best) by three methods: SimSiam (Euclidean distance between embeddings),
   and the paper's baselines, nearest neighbour in the (TUF, R, PSEP) space by normalised
   Euclidean and by Mahalanobis distance (:class:`sharpseek.search.baselines.PhysicsBaseline`).
3. Pearson and Spearman correlation between query and match, over the queries, for TUF, R,
   PSEP, TPF, TNF, SIGMA, ALPHA and GRAD (pairs where both values are finite; PSEP is
   undefined for a patch that is not bipolar).
4. The same-region measure for real queries
   (:func:`sharpseek.science.evaluate.same_region_retrieval`: the share of a frame's 10 nearest
   neighbours that are frames of its own HARP within 24 h) for the embeddings and both baselines,
   over all frames and (:func:`held_out_same_region`) over the frames of the regions the encoder
   never trained on only, with PCA of the pixels beside them.
5. Hubness (issue 16): distinct nearest frames, the share of the 5 most frequent, the
   skewness of the 10-occurrence (:func:`sharpseek.science.evaluate.hubness`); bootstrap 95 %
   intervals of every correlation. :func:`evaluate_retrieval_blocks` repeats 1-3 and 5 for
   disjoint seed blocks (0.. and 100000..), sharing the real side.

:func:`write_report` draws the 2-D histograms with marginals (Figs. 7 and 9), a grid of
examples side by side (Fig. 8) and writes a markdown report that sets the paper's numbers
(SCIENCE.md; real SHARPs, the reference code's definitions) beside these, saying which data
they come from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from sharpseek.physics.definitions import PAPER_PARAMETERS
from sharpseek.science.evaluate import (
    SEED_BLOCKS,
    bootstrap_correlation_ci,
    hubness,
    k_occurrence,
    pca_features,
    same_region_retrieval,
)
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.search.baselines import PhysicsBaseline, baseline_features
from sharpseek.search.index.build import embedded_batches
from sharpseek.search.query_map import generated_vectors

__all__ = [
    "METHODS",
    "PAPER_CORRELATIONS",
    "RetrievalEvaluation",
    "correlations",
    "evaluate_retrieval",
    "evaluate_retrieval_blocks",
    "held_out_same_region",
    "write_report",
]

METHODS = ("simsiam", "euclidean", "mahalanobis")
METHOD_LABELS = {
    "simsiam": "SimSiam",
    "euclidean": "(TUF, R, PSEP) Euclidean",
    "mahalanobis": "(TUF, R, PSEP) Mahalanobis",
}
#: The paper's Pearson (Spearman) for SimSiam, 1,000 generated queries against real SHARPs.
#: The paper gives no numbers for the baselines (only that Mahalanobis is slightly better
#: than Euclidean and both are visually worse, Fig. 8).
PAPER_CORRELATIONS: dict[str, tuple[float, float]] = {
    "tuf": (0.78, 0.79),
    "r": (0.73, 0.76),
    "psep": (0.28, 0.31),
    "tpf": (0.69, 0.70),
    "tnf": (0.72, 0.72),
    "sigma": (0.57, 0.56),
    "alpha": (0.47, 0.47),
    "grad": (0.79, 0.78),
}


@dataclass
class RetrievalEvaluation:
    """Everything the report shows.

    Attributes
    ----------
    correlations : DataFrame
        One row per (method, parameter): ``pearson``, ``spearman``, ``n`` (finite pairs).
    queries : DataFrame
        The queries' parameters (model space), one row per query.
    matches : dict method -> ndarray (n_queries,)
        Row position in ``real`` of each query's nearest real frame.
    real : DataFrame
        The real frames' manifest rows (the search space).
    same_region : dict
        Same-region retrieval (k = 10, 24 h) of real queries for each method, all frames.
    hubness : dict method -> dict
        :func:`sharpseek.science.evaluate.hubness` of each method's 10 nearest frames.
    k_occurrence : dict method -> ndarray (n_real,)
        N_10 of each real frame (:func:`sharpseek.science.evaluate.k_occurrence`).
    same_region_held_out : dict
        :func:`held_out_same_region` (empty when not measured).
    meta : dict
        Data and models: dataset name/version, synthetic or real, frames, regions, versions.
    """

    correlations: pd.DataFrame
    queries: pd.DataFrame
    matches: dict[str, np.ndarray]
    real: pd.DataFrame
    same_region: dict[str, float]
    meta: dict[str, Any]
    query_images: np.ndarray | None = field(default=None, repr=False)
    hubness: dict[str, dict[str, Any]] = field(default_factory=dict)
    k_occurrence: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    same_region_held_out: dict[str, Any] = field(default_factory=dict)
    vectors: np.ndarray | None = field(default=None, repr=False)


def correlations(
    query: pd.DataFrame,
    match: pd.DataFrame,
    names: Sequence[str] = PAPER_PARAMETERS,
    *,
    n_boot: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Pearson and Spearman of each parameter between query and match rows (aligned),
    over the pairs where both are finite (NaN where fewer than 3 pairs or no variance).
    With ``n_boot`` > 0, also their percentile bootstrap 95 % intervals
    (``pearson_lo``/``_hi``, ``spearman_lo``/``_hi``; resampled pairs, seeded)."""
    out = []
    for name in names:
        a = np.asarray(query[name], np.float64)
        b = np.asarray(match[name], np.float64)
        ok = np.isfinite(a) & np.isfinite(b)
        n = int(ok.sum())
        if n < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            pearson = spearman = float("nan")
        else:
            pearson = float(stats.pearsonr(a[ok], b[ok]).statistic)
            spearman = float(stats.spearmanr(a[ok], b[ok]).statistic)
        row = {"parameter": name, "pearson": pearson, "spearman": spearman, "n": n}
        if n_boot > 0:
            for method in ("pearson", "spearman"):
                lo, hi = bootstrap_correlation_ci(a, b, method=method, n_boot=n_boot, seed=seed)
                row[f"{method}_lo"], row[f"{method}_hi"] = lo, hi
        out.append(row)
    return out


def _nearest(query: np.ndarray, base: np.ndarray, k: int = 1, chunk: int = 512) -> np.ndarray:
    """Rows (n, k) of ``base`` nearest (Euclidean) to each row of ``query``, nearest first;
    (n,) when k = 1."""
    base = np.asarray(base, np.float64)
    norms = (base**2).sum(1)
    k_eff = min(k, len(base))
    out = np.empty((len(query), k_eff), dtype=int)
    for start in range(0, len(query), chunk):
        q = np.asarray(query[start : start + chunk], np.float64)
        d2 = norms[None, :] - 2 * q @ base.T  # + |q|^2, constant per row
        part = np.argpartition(d2, k_eff - 1, axis=1)[:, :k_eff]
        order = np.argsort(np.take_along_axis(d2, part, 1), axis=1, kind="stable")
        out[start : start + len(q)] = np.take_along_axis(part, order, 1)
    return out[:, 0] if k == 1 else out


def held_out_same_region(
    vectors: np.ndarray,
    baseline,
    real: pd.DataFrame,
    images,
    holdout_harpnums: Sequence[int],
    *,
    pca_fit_frames: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Same-region retrieval over the frames of held-out regions only (neighbours among
    them): SimSiam, both (TUF, R, PSEP) baselines and PCA of the pixels (as many components
    as the embedding has, fitted on up to ``pca_fit_frames`` frames of the other regions).

    ``vectors`` (n, d) and ``baseline`` (a fitted PhysicsBaseline) are of the rows of
    ``real``; ``images(rows)`` returns model-space images of those rows.
    Returns ``{}`` when fewer than 11 held-out frames.
    """
    held = real["harpnum"].isin(list(holdout_harpnums)).to_numpy()
    rows = np.flatnonzero(held)
    if len(rows) < 11:
        return {}
    train = np.flatnonzero(~held)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(train, min(pca_fit_frames, len(train)), replace=False))
    harp, t_rec = real["harpnum"].to_numpy()[rows], real["t_rec"].to_numpy()[rows]
    pca = pca_features(images(rows), images(fit), n_components=vectors.shape[1])
    out: dict[str, Any] = {
        "simsiam": same_region_retrieval(vectors[rows], harp, t_rec),
        "pca": same_region_retrieval(pca, harp, t_rec),
    }
    for metric in ("euclidean", "mahalanobis"):
        feats = baseline.transform(baseline.features, metric)[rows]
        out[metric] = same_region_retrieval(feats, harp, t_rec)
    out["frames"] = len(rows)
    out["regions"] = int(len(np.unique(harp)))
    out["pca_fit_frames"] = len(fit)
    return out


def evaluate_retrieval(
    backend,
    dataset,
    *,
    n_queries: int = 1000,
    seed: int = 0,
    max_real: int | None = None,
    progress: bool = False,
    n_boot: int = 1000,
    real_vectors: np.ndarray | None = None,
    same_region: dict[str, float] | None = None,
    query_map=None,
) -> RetrievalEvaluation:
    """The paper's retrieval analysis of the generator + encoder of ``backend`` on ``dataset``.

    Parameters
    ----------
    backend : :class:`sharpseek.serving.backends.ModelBackend`
        The models (``open_backend(settings)``: in-process or TorchServe).
    dataset : :class:`sharpseek.data.dataset.Dataset`
        The "real" frames searched (real SHARPs, or the synthetic demo data: the report says
        which).
    n_queries : int
        Generated queries (seeds ``seed .. seed + n - 1`` of :func:`latent_from_seeds`).
    max_real : int, optional
        Use a random subset of this many frames (whole regions are not kept together; for
        quick runs only).
    n_boot : int
        Bootstrap resamples of each correlation's 95 % interval (0: none).
    real_vectors, same_region : optional
        The real frames' embeddings and same-region scores of an earlier call on the same
        frames (another seed block), reused.
    query_map : :class:`sharpseek.search.query_map.GeneratedQueryMap`, optional
        Moves the generated queries' embeddings onto the frames' distribution, as search
        does (:func:`sharpseek.search.query_map.generated_vectors`); None: the raw embeddings.
    """
    if n_queries < 3:
        raise ValueError(f"n_queries must be at least 3 for correlations, got {n_queries}")
    manifest = dataset.manifest
    rows = np.arange(len(manifest))
    if max_real is not None and max_real < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_real, replace=False))
    if len(rows) < 11:
        raise ValueError(
            f"dataset {dataset.name}/{dataset.version} has too few frames ({len(rows)})"
        )
    real = manifest.iloc[rows].reset_index(drop=True)

    # real embeddings
    vectors = real_vectors
    if vectors is None:
        vectors = np.concatenate(
            [v for _, v in embedded_batches(dataset, backend, rows, progress=progress)]
        )
    # generated queries: images and their parameters in one backend call
    generated = backend.generate(seeds=list(range(seed, seed + n_queries)))
    images, params = generated.images, generated.parameters
    q_vectors = generated_vectors(backend, images, query_map)
    versions = backend.versions()
    queries = pd.DataFrame({k: np.asarray(v) for k, v in params.items()})
    queries.insert(0, "seed", np.arange(seed, seed + n_queries))

    baseline = PhysicsBaseline.fit(real)
    q_features = baseline_features(queries)
    neighbours = {"simsiam": _nearest(q_vectors, vectors, k=10)}
    for metric in ("euclidean", "mahalanobis"):
        neighbours[metric] = _nearest(
            baseline.transform(q_features, metric),
            baseline.transform(baseline.features, metric),
            k=10,
        )
    matches = {method: nb[:, 0] for method, nb in neighbours.items()}
    hub = {method: hubness(nb, len(real)) for method, nb in neighbours.items()}
    table = []
    for method, idx in matches.items():
        match = real.iloc[idx].reset_index(drop=True)
        for row in correlations(queries, match, n_boot=n_boot, seed=seed):
            table.append({"method": method, **row})

    harp, t_rec = real["harpnum"].to_numpy(), real["t_rec"].to_numpy()
    same = same_region or {
        "simsiam": same_region_retrieval(vectors, harp, t_rec),
        "euclidean": same_region_retrieval(
            baseline.transform(baseline.features, "euclidean"), harp, t_rec
        ),
        "mahalanobis": same_region_retrieval(
            baseline.transform(baseline.features, "mahalanobis"), harp, t_rec
        ),
    }
    series = sorted(map(str, real["series"].unique()))
    meta = {
        "dataset": f"{dataset.name}/{dataset.version}",
        "data_kind": "synthetic" if series == ["synthetic"] else "real",
        "series": series,
        "real_frames": len(real),
        "real_regions": int(real["harpnum"].nunique()),
        "queries": n_queries,
        "seed": seed,
        "generator": versions["gan"],
        "encoder": versions["encoder"],
        "query_map": None if query_map is None else _query_map_meta(query_map),
    }
    return RetrievalEvaluation(
        correlations=pd.DataFrame(table),
        queries=queries,
        matches=matches,
        real=real,
        same_region=same,
        meta=meta,
        query_images=images,
        hubness=hub,
        k_occurrence={m: k_occurrence(nb, len(real)) for m, nb in neighbours.items()},
        vectors=vectors,
    )


def _query_map_line(meta: dict[str, Any] | None) -> str:
    if meta is None:
        return "- Generated queries searched as embedded (no query map)."
    last = meta["first_seed"] + meta["generated"] - 1
    return (
        "- Generated queries moved onto the frames' embedding distribution "
        "(`sharpseek.search.query_map`, the hubness cure): fitted on "
        f"{meta['frames']['count']} frames of `{meta['frames']['dataset']}` and the "
        f"generated images of seeds {meta['first_seed']}..{last}."
    )


def _query_map_meta(query_map) -> dict[str, Any]:
    """What the report says of the generated-query map: its frames and seeds."""
    return {
        "frames": query_map.frames,
        "first_seed": query_map.first_seed,
        "generated": query_map.generated,
    }


def evaluate_retrieval_blocks(
    backend,
    dataset,
    *,
    n_queries: int = 1000,
    seed_blocks: Sequence[int] = SEED_BLOCKS,
    holdout_harpnums: Sequence[int] | None = None,
    max_real: int | None = None,
    progress: bool = False,
    n_boot: int = 1000,
    query_map=None,
) -> list[RetrievalEvaluation]:
    """:func:`evaluate_retrieval` for each seed block (queries ``b .. b + n - 1``), the
    real side (embeddings, same-region scores) computed once; with ``holdout_harpnums``
    (the regions the encoder never trained on) also :func:`held_out_same_region`, attached
    to every block's result."""
    if not seed_blocks:
        raise ValueError("give at least one seed block")
    ends = sorted((b, b + n_queries) for b in seed_blocks)
    if any(a[1] > b[0] for a, b in zip(ends, ends[1:], strict=False)):
        raise ValueError(f"seed blocks {list(seed_blocks)} of {n_queries} queries overlap")
    if max_real is not None and len(seed_blocks) > 1:  # subsets would differ per block
        raise ValueError("max_real is for single quick runs, not several seed blocks")
    results: list[RetrievalEvaluation] = []
    for block in seed_blocks:
        first = results[0] if results else None
        results.append(
            evaluate_retrieval(
                backend,
                dataset,
                n_queries=n_queries,
                seed=block,
                max_real=max_real,
                progress=progress and first is None,
                n_boot=n_boot,
                real_vectors=None if first is None else first.vectors,
                same_region=None if first is None else first.same_region,
                query_map=query_map,
            )
        )
    if holdout_harpnums is not None:
        first = results[0]
        manifest_rows = pd.Series(
            np.arange(len(dataset.manifest)), index=dataset.manifest["record_id"].to_numpy()
        )

        def images(rows):
            ids = first.real["record_id"].to_numpy()[rows]
            return dataset.images(manifest_rows.loc[ids].to_numpy())

        held = held_out_same_region(
            first.vectors,
            PhysicsBaseline.fit(first.real),
            first.real,
            images,
            holdout_harpnums,
        )
        for result in results:
            result.same_region_held_out = held
    return results


# ---------------------------------------------------------------------------------------------
# figures and report

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


def _joint_figure(result: RetrievalEvaluation, names: Sequence[str], path: Path, title: str):
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


def _examples_figure(result: RetrievalEvaluation, dataset, path: Path, n: int = 5) -> Path:
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


def _fmt(value: float) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _k_occurrence_figure(results: Sequence[RetrievalEvaluation], path: Path) -> Path:
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


def _ci(row: pd.Series, method: str) -> str:
    lo, hi = row.get(f"{method}_lo"), row.get(f"{method}_hi")
    if lo is None or not np.isfinite(lo):
        return _fmt(row[method])
    return f"{_fmt(row[method])} [{_fmt(lo)}, {_fmt(hi)}]"


def _block_lines(result: RetrievalEvaluation, label: str) -> list[str]:
    meta = result.meta
    corr = result.correlations.set_index(["method", "parameter"])
    first, last = meta["seed"], meta["seed"] + meta["queries"] - 1
    lines = [
        f"## Seeds {first}..{last}: Pearson (Spearman) between a query's parameter and its match's",
        "",
        "| method | " + " | ".join(p.upper() for p in PAPER_PARAMETERS) + " |",
        "|---|" + "---|" * len(PAPER_PARAMETERS),
        "| paper: SimSiam, real SHARPs (1,839 HARPs) | "
        + " | ".join(
            f"{a:.2f} ({b:.2f})" for a, b in (PAPER_CORRELATIONS[p] for p in PAPER_PARAMETERS)
        )
        + " |",
    ]
    for method in METHODS:
        cells = []
        for p in PAPER_PARAMETERS:
            row = corr.loc[(method, p)]
            cells.append(f"{_fmt(row['pearson'])} ({_fmt(row['spearman'])})")
        lines.append(f"| this run ({label}): {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    n_psep = int(corr.loc[("simsiam", "psep"), "n"])
    lines += [
        "",
        f"Pairs: {meta['queries']} per parameter, except PSEP ({n_psep} pairs where query and "
        "match are both bipolar). The paper reports no figures for its baselines.",
        "",
        "Bootstrap 95 % intervals (1,000 resamples of the query-match pairs), Pearson; Spearman:",
        "",
        "| method | " + " | ".join(p.upper() for p in PAPER_PARAMETERS) + " |",
        "|---|" + "---|" * len(PAPER_PARAMETERS),
    ]
    for method in METHODS:
        for kind in ("pearson", "spearman"):
            cells = [_ci(corr.loc[(method, p)], kind) for p in PAPER_PARAMETERS]
            lines.append(f"| {METHOD_LABELS[method]}, {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Hubness: of {meta['real_frames']} frames, how many the {meta['queries']} queries "
        "find as their nearest, the share of queries taken by the 5 most frequent, and the "
        "skewness of the 10-occurrence N_10 (0 for an even spread; large and positive when a "
        "few frames are everyone's neighbours):",
        "",
        "| method | distinct nearest frames | top-5 share | N_10 skewness | max N_10 | frames "
        "never in a top 10 |",
        "|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        h = result.hubness[method]
        lines.append(
            f"| {METHOD_LABELS[method]} | {h['distinct_nearest']} | {h['top5_share']:.1%} | "
            f"{h['k_occurrence_skewness']:.2f} | {h['max_k_occurrence']} | "
            f"{h['zero_k_occurrence_share']:.1%} |"
        )
    return lines + [""]


def write_report(
    results: RetrievalEvaluation | Sequence[RetrievalEvaluation], dataset, out_dir: str | Path
) -> Path:
    """Write ``retrieval.md``, ``retrieval.json`` and the PNGs into ``out_dir``, for one
    result or one per seed block (figures of the first block; the k-occurrence histogram of
    every block)."""
    if isinstance(results, RetrievalEvaluation):
        results = [results]
    result = results[0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = result.meta
    label = meta["data_kind"]
    fig7 = _joint_figure(
        result,
        ("tuf", "psep", "tpf", "tnf"),
        out / "eval-fig7.png",
        f"SimSiam retrieval: generated query vs nearest frame ({label} data, "
        f"{meta['real_regions']} regions), as the paper's Fig. 7",
    )
    fig9 = _joint_figure(
        result,
        ("sigma", "alpha", "grad"),
        out / "eval-fig9.png",
        f"SimSiam retrieval: image statistics ({label} data), as the paper's Fig. 9",
    )
    fig8 = _examples_figure(result, dataset, out / "eval-fig8.png")
    hub_fig = _k_occurrence_figure(results, out / "eval-hubness.png")

    blocks = ", ".join(
        f"{r.meta['seed']}..{r.meta['seed'] + r.meta['queries'] - 1}" for r in results
    )
    lines = [
        "# Retrieval evaluation",
        "",
        f"- Data searched: **{label}** — dataset `{meta['dataset']}` "
        f"(series {', '.join(meta['series'])}), {meta['real_frames']} frames of "
        f"{meta['real_regions']} regions.",
        f"- Queries: {meta['queries']} per seed block generated by `{meta['generator']}` "
        f"(seed blocks {blocks}); embeddings by `{meta['encoder']}`.",
        _query_map_line(meta.get("query_map")),
        "- Match: the nearest frame (one best frame per region: the nearest frame is its "
        "region's best). Baselines: nearest frame in (TUF, R, PSEP), normalised by the real "
        "frames' mean and std (Euclidean) or by Mahalanobis distance with their covariance; "
        "PSEP of a non-bipolar frame taken as 0 px.",
        "- Definitions: this project's (SCIENCE.md): TPF/TNF are sums, PSEP in model px, "
        "ALPHA over k = 1..25. The paper's numbers come from **real SHARPs** and the reference "
        "code's definitions.",
    ]
    if label == "synthetic":
        lines.append(
            "- **These figures come from synthetic data and small demo models; they are not "
            "comparable to the paper's and are shown beside them only for orientation.**"
        )
    lines.append("")
    for r in results:
        lines += _block_lines(r, label)
    lines += [
        "## Same-region retrieval of real queries",
        "",
        "Share of a frame's 10 nearest neighbours (itself excluded) that are frames of its own "
        "region within 24 h, averaged over the frames (higher is better). All frames: most "
        "of their regions trained the encoder on exactly this pairing. Held-out regions: "
        "only the frames of regions the encoder never saw, neighbours among them; PCA of the "
        "pixels fitted on frames of the other regions.",
        "",
        "| method | all frames | held-out regions only |",
        "|---|---|---|",
    ]
    held = result.same_region_held_out
    for method in (*METHODS, "pca"):
        all_frames = result.same_region.get(method)
        lines.append(
            f"| {METHOD_LABELS.get(method, 'PCA of the pixels')} | "
            f"{'—' if all_frames is None else f'{all_frames:.3f}'} | "
            f"{f'{held[method]:.3f}' if method in held else '—'} |"
        )
    if held:
        lines += [
            "",
            f"Held out: {held['frames']} frames of {held['regions']} regions (PCA fitted on "
            f"{held['pca_fit_frames']} frames of the other regions).",
        ]
    lines += [
        "",
        "## Figures",
        "",
        f"![Fig. 7 analogue]({fig7.name})",
        "",
        f"![Fig. 9 analogue]({fig9.name})",
        "",
        f"![Fig. 8 analogue]({fig8.name})",
        "",
        f"![hubness: k-occurrence histograms]({hub_fig.name})",
        "",
    ]
    report = out / "retrieval.md"
    report.write_text("\n".join(lines))
    payload = {
        "meta": {k: v for k, v in meta.items() if k != "seed"},
        "blocks": {str(r.meta["seed"]): _block_payload(r) for r in results},
        "same_region": result.same_region,
        "same_region_held_out": result.same_region_held_out,
        "paper": {p: {"pearson": a, "spearman": b} for p, (a, b) in PAPER_CORRELATIONS.items()},
    }
    (out / "retrieval.json").write_text(json.dumps(payload, indent=1))
    return report


def _block_payload(result: RetrievalEvaluation) -> dict[str, Any]:
    """One seed block: its correlations (with intervals), hubness and each query's matched
    record id per method."""
    ids = result.real["record_id"].astype(str).to_numpy()
    return {
        "seeds": [result.meta["seed"], result.meta["seed"] + result.meta["queries"] - 1],
        "correlations": result.correlations.replace({np.nan: None}).to_dict(orient="records"),
        "hubness": result.hubness,
        "matches": [
            {"seed": int(seed), **{m: str(ids[result.matches[m][i]]) for m in METHODS}}
            for i, seed in enumerate(result.queries["seed"].to_numpy())
        ],
    }
