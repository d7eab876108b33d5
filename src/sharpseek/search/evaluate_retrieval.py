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

:func:`sharpseek.search.retrieval_report.write_report` writes the report and draws the
figures (:mod:`sharpseek.search.retrieval_figures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

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
from sharpseek.search.baselines import PhysicsBaseline, baseline_features
from sharpseek.search.index.build import embedded_batches
from sharpseek.search.picture import PictureRerank
from sharpseek.search.query_map import generated_vectors
from sharpseek.search.spaces import SpaceEmbedder, check_space

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "RetrievalEvaluation",
    "correlations",
    "evaluate_retrieval",
    "evaluate_retrieval_blocks",
    "held_out_same_region",
]

METHODS = ("simsiam", "euclidean", "mahalanobis")
METHOD_LABELS = {
    "simsiam": "SimSiam",
    "euclidean": "(TUF, R, PSEP) Euclidean",
    "mahalanobis": "(TUF, R, PSEP) Mahalanobis",
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
    vectors: dict[str, np.ndarray] | None = field(default=None, repr=False)
    frame_pictures: np.ndarray | None = field(default=None, repr=False)


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
    real_vectors: dict[str, np.ndarray] | None = None,
    same_region: dict[str, float] | None = None,
    query_map=None,
    space: str = "region",
    rerank: PictureRerank | None = None,
    frame_pictures: np.ndarray | None = None,
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
        The real frames' vectors (``{space: (n_real, dim)}``) and same-region scores of an
        earlier call on the same frames (another seed block), reused.
    query_map : :class:`sharpseek.search.query_map.GeneratedQueryMap`, optional
        Moves the generated queries' embeddings onto the frames' distribution, as search
        does (:func:`sharpseek.search.query_map.generated_vectors`); None: the raw embeddings.
    space : str
        The embedding space generated queries search (:mod:`sharpseek.search.spaces`) when
        there is no ``query_map`` (a map carries its own). Real queries (same-region
        retrieval) search the ``region`` space, as the search does.
    rerank : :class:`sharpseek.search.picture.PictureRerank`, optional
        Re-ranks each generated query's nearest regions by their picture, as the search
        does (``PictureRerank.from_settings``): a query's SimSiam match and its 10 nearest
        frames are then the first 10 of its ``rerank.candidates`` nearest regions' best
        frames, re-ranked. None: the nearest frames by embedding distance.
    frame_pictures : optional
        The searched frames' coarse pictures of an earlier call (another seed block), reused.
    """
    if n_queries < 3:
        raise ValueError(f"n_queries must be at least 3 for correlations, got {n_queries}")
    rows = _searched_rows(dataset, max_real, seed)
    real = dataset.manifest.iloc[rows].reset_index(drop=True)
    space = check_space(query_map.space if query_map is not None else space)
    vectors = real_vectors
    if vectors is None or space not in vectors:
        vectors = frame_vectors(dataset, backend, rows, ("region", space), progress=progress)
    images, queries, q_vectors = _generated_queries(backend, seed, n_queries, query_map, space)
    versions = backend.versions()
    baseline = PhysicsBaseline.fit(real)
    neighbours = _ten_nearest(q_vectors, vectors[space], queries, baseline)
    if rerank is not None:
        if frame_pictures is None:
            frame_pictures = np.concatenate(
                [rerank.pictures(dataset.images(part)) for part in np.array_split(rows, 16)]
            )
        neighbours["simsiam"] = _reranked_nearest(
            q_vectors, vectors[space], images, frame_pictures, real["harpnum"].to_numpy(), rerank
        )
    matches = {method: nb[:, 0] for method, nb in neighbours.items()}
    return RetrievalEvaluation(
        correlations=_correlation_table(queries, real, matches, n_boot=n_boot, seed=seed),
        queries=queries,
        matches=matches,
        real=real,
        same_region=same_region or _same_region_scores(vectors["region"], baseline, real),
        meta=_evaluation_meta(dataset, real, n_queries, seed, versions, query_map)
        | {"space": space, "rerank": None if rerank is None else asdict(rerank)},
        query_images=images,
        hubness={method: hubness(nb, len(real)) for method, nb in neighbours.items()},
        k_occurrence={m: k_occurrence(nb, len(real)) for m, nb in neighbours.items()},
        vectors=vectors,
        frame_pictures=frame_pictures,
    )


def frame_vectors(
    dataset, backend, rows: np.ndarray, spaces: Sequence[str], *, progress: bool = False
) -> dict[str, np.ndarray]:
    """The vectors ``{space: (len(rows), dim)}`` of the dataset frames at ``rows`` in each of
    ``spaces`` (one pass over the frames; :func:`sharpseek.search.spaces.space_vectors`)."""
    names = tuple(dict.fromkeys(spaces))
    embedder = SpaceEmbedder(backend, names)
    parts = [v for _, v in embedded_batches(dataset, embedder, rows, progress=progress)]
    return {name: np.concatenate([p[name] for p in parts]) for name in names}


def _searched_rows(dataset, max_real: int | None, seed: int) -> np.ndarray:
    """Manifest rows of the frames searched (n_real,): all, or a sorted random subset of
    ``max_real`` (seeded); at least 11 (a frame and its 10 nearest)."""
    rows = np.arange(len(dataset.manifest))
    if max_real is not None and max_real < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_real, replace=False))
    if len(rows) < 11:
        raise ValueError(
            f"dataset {dataset.name}/{dataset.version} has too few frames ({len(rows)})"
        )
    return rows


def _generated_queries(
    backend, seed: int, n_queries: int, query_map, space: str
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """The generated queries of seeds ``seed .. seed + n_queries - 1``: their model-space
    images (n, H, W), their parameters (one row per query, a ``seed`` column first) and
    their vectors (n, d) in ``space``, mapped by ``query_map`` when given."""
    generated = backend.generate(seeds=list(range(seed, seed + n_queries)))
    images, params = generated.images, generated.parameters
    q_vectors = generated_vectors(backend, images, query_map, space=space)
    queries = pd.DataFrame({k: np.asarray(v) for k, v in params.items()})
    queries.insert(0, "seed", np.arange(seed, seed + n_queries))
    return images, queries, q_vectors


def _ten_nearest(
    q_vectors: np.ndarray, vectors: np.ndarray, queries: pd.DataFrame, baseline
) -> dict[str, np.ndarray]:
    """Each query's 10 nearest real frames (rows of the fitted ``baseline``'s frames and of
    ``vectors``), nearest first, per method: (n_queries, 10) each."""
    q_features = baseline_features(queries)
    neighbours = {"simsiam": _nearest(q_vectors, vectors, k=10)}
    for metric in ("euclidean", "mahalanobis"):
        neighbours[metric] = _nearest(
            baseline.transform(q_features, metric),
            baseline.transform(baseline.features, metric),
            k=10,
        )
    return neighbours


def _reranked_nearest(
    q_vectors: np.ndarray,
    vectors: np.ndarray,
    query_images: np.ndarray,
    frame_pictures: np.ndarray,
    regions: np.ndarray,
    rerank: PictureRerank,
    k: int = 10,
    chunk: int = 256,
) -> np.ndarray:
    """Each query's ``rerank.candidates`` nearest regions (the nearest frame of each, as the
    search groups them) re-ranked by :meth:`PictureRerank.order`; the first ``k`` frames
    (n_queries, k) (fewer columns when there are fewer regions), best first."""
    base = np.asarray(vectors, np.float64)
    norms = (base**2).sum(1)
    n_cols = min(k, len(np.unique(regions)))
    out = np.empty((len(q_vectors), n_cols), dtype=int)
    for start in range(0, len(q_vectors), chunk):
        q = np.asarray(q_vectors[start : start + chunk], np.float64)
        d2 = np.maximum(norms[None, :] - 2 * q @ base.T + (q**2).sum(1)[:, None], 0)
        for j, row in enumerate(np.argsort(d2, axis=1, kind="stable")):
            best = region_best_frames(row, regions, rerank.candidates)
            order = rerank.order(
                query_images[start + j], frame_pictures[best], np.sqrt(d2[j, best])
            )
            out[start + j] = best[order][:n_cols]
    return out


def region_best_frames(order: np.ndarray, regions: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` regions' best frames (k,) of frame rows ``order`` (nearest first), as
    the search groups them: each region's first row in ``order``, regions in order of it.
    ``regions`` (n_frames,) gives each frame row's region."""
    _, first = np.unique(regions[order], return_index=True)
    return order[np.sort(first)[:k]]


def _correlation_table(
    queries: pd.DataFrame,
    real: pd.DataFrame,
    matches: dict[str, np.ndarray],
    *,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """:func:`correlations` of the queries with their matched frames, one row per
    (method, parameter)."""
    table = []
    for method, idx in matches.items():
        match = real.iloc[idx].reset_index(drop=True)
        for row in correlations(queries, match, n_boot=n_boot, seed=seed):
            table.append({"method": method, **row})
    return pd.DataFrame(table)


def _same_region_scores(vectors: np.ndarray, baseline, real: pd.DataFrame) -> dict[str, float]:
    """Same-region retrieval of the real frames as queries, per method (all frames)."""
    harp, t_rec = real["harpnum"].to_numpy(), real["t_rec"].to_numpy()
    return {
        "simsiam": same_region_retrieval(vectors, harp, t_rec),
        "euclidean": same_region_retrieval(
            baseline.transform(baseline.features, "euclidean"), harp, t_rec
        ),
        "mahalanobis": same_region_retrieval(
            baseline.transform(baseline.features, "mahalanobis"), harp, t_rec
        ),
    }


def _evaluation_meta(
    dataset, real: pd.DataFrame, n_queries: int, seed: int, versions: dict, query_map
) -> dict[str, Any]:
    """Data and models of one evaluation: dataset, synthetic or real, frames, regions,
    queries, model versions, the query map."""
    series = sorted(map(str, real["series"].unique()))
    return {
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
    space: str = "region",
    rerank: PictureRerank | None = None,
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
                space=space,
                rerank=rerank,
                frame_pictures=None if first is None else first.frame_pictures,
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
            first.vectors["region"],
            PhysicsBaseline.fit(first.real),
            first.real,
            images,
            holdout_harpnums,
        )
        searched = first.meta["space"]
        if held and searched != "region":  # what real queries would find in that space
            rows = np.flatnonzero(first.real["harpnum"].isin(list(holdout_harpnums)).to_numpy())
            held[f"simsiam_{searched}"] = same_region_retrieval(
                first.vectors[searched][rows],
                first.real["harpnum"].to_numpy()[rows],
                first.real["t_rec"].to_numpy()[rows],
            )
        for result in results:
            result.same_region_held_out = held
    return results
