"""How the picture re-ranking's setting was chosen (docs/search.md, "Picture re-ranking"):
cache each GAN's candidates once, then score every setting on them.

    # once per GAN (about 10 min each on 2 cores): seed blocks of 1,000 queries each
    SHARPSEEK_HOME=<home> SHARPSEEK_MODELS__GAN=<run> .venv/bin/python \\
        benchmarks/rerank_choice.py cache --out <dir>
    # the grid, the rule and the chosen setting's figures on the evaluation blocks
    .venv/bin/python benchmarks/rerank_choice.py choose <dir> <dir> ...

``cache`` embeds the searched frames and the generated queries of each block with the
library's own encoder, symmetric space and query map (as ``sharpseek evaluate retrieval``
does), keeps each query's 60 nearest regions (their best frames) with their embedding
distances, and the distances of both coarse pictures (:data:`sharpseek.search.picture.PICTURES`,
8 px blocks) to the query's 16 symmetric pictures. ``choose`` re-ranks those candidates for
each (picture, candidates, weight) with :func:`sharpseek.search.picture.rerank_order` and
scores the first as the evaluation does (Pearson of query and match). The rule: on the
selection blocks (seeds 10^6+1000.., outside the evaluation blocks and the query map's
seeds), the largest smallest margin min(PSEP - 0.50, R - 0.85) over the GANs given, among
settings that keep each GAN's TUF and GRAD within 0.01 of their value without re-ranking.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

SELECTION = {"sel": 1_001_000, "sel2": 1_002_000}
EVALUATION = {"b0": 0, "b1": 100_000}
CANDIDATES = 60
POOL_PX = 8
TARGETS = {"psep": 0.50, "r": 0.85, "tuf": 0.90, "grad": 0.85}


def cache(out: Path, queries: int) -> None:
    from sharpseek.config import get_settings
    from sharpseek.data.dataset import latest_version, load_dataset
    from sharpseek.data.store import open_store
    from sharpseek.search.evaluate_retrieval import (
        _generated_queries,
        frame_vectors,
        region_best_frames,
    )
    from sharpseek.search.picture import (
        PICTURES,
        coarse_pictures,
        orbit_pictures,
        picture_distances,
    )
    from sharpseek.search.query_map import load_query_map
    from sharpseek.serving.backends import open_backend

    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    backend, store = open_backend(settings), open_store(settings)
    name = "synthetic"
    ds = load_dataset(store, name, latest_version(store, name))
    rows = np.arange(len(ds.manifest))
    frames = ds.manifest.reset_index(drop=True)
    regions = frames["harpnum"].to_numpy()
    query_map = load_query_map(settings, backend, store)
    base = frame_vectors(ds, backend, rows, (query_map.space,), progress=True)[query_map.space]
    base = base.astype(np.float64)
    norms = (base**2).sum(1)
    images = np.concatenate([ds.images(part) for part in np.array_split(rows, 16)])
    frame_pictures = {p: coarse_pictures(images, POOL_PX, p) for p in PICTURES}
    arrays = {}
    for block, first in {**SELECTION, **EVALUATION}.items():
        q_images, q_params, q_vectors = _generated_queries(
            backend, first, queries, query_map, query_map.space
        )
        q_params.to_parquet(out / f"{block}.parquet")
        q = q_vectors.astype(np.float64)
        d2 = np.maximum(norms[None] - 2 * q @ base.T + (q**2).sum(1)[:, None], 0)
        order = np.argsort(d2, axis=1, kind="stable")
        cand = np.stack([region_best_frames(row, regions, CANDIDATES) for row in order])
        arrays[f"{block}_cand"] = cand
        arrays[f"{block}_embedding"] = np.sqrt(np.take_along_axis(d2, cand, 1))
        for p in PICTURES:
            arrays[f"{block}_{p}"] = np.stack(
                [
                    picture_distances(
                        orbit_pictures(q_images[j], POOL_PX, p), frame_pictures[p][cand[j]]
                    )
                    for j in range(queries)
                ]
            )
        print(block, flush=True)
    frames.to_parquet(out / "frames.parquet")
    np.savez(out / "candidates.npz", **arrays)
    (out / "versions.json").write_text(json.dumps(backend.versions()))


@functools.cache
def _load(run: Path, blocks: tuple[str, ...]):
    arrays = dict(np.load(run / "candidates.npz"))
    frames = pd.read_parquet(run / "frames.parquet")
    queries = pd.concat([pd.read_parquet(run / f"{b}.parquet") for b in blocks], ignore_index=True)

    def joined(key: str) -> np.ndarray:
        return np.concatenate([arrays[f"{b}_{key}"] for b in blocks])

    return frames, queries, joined


def figures(run: Path, blocks: list[str], picture: str, candidates: int, weight: float) -> dict:
    """Distinct nearest frames, top-5 share and Pearson of the four target parameters of the
    queries of ``blocks`` and their re-ranked first match."""
    from sharpseek.search.evaluate_retrieval import correlations
    from sharpseek.search.picture import rerank_order

    frames, queries, joined = _load(run, tuple(blocks))
    cand = joined("cand")[:, :candidates]
    embedding = joined("embedding")[:, :candidates]
    picture_d = joined(picture)[:, :candidates]
    first = [rerank_order(e, p, weight)[0] for e, p in zip(embedding, picture_d, strict=True)]
    match = cand[np.arange(len(cand)), first]
    out = {
        "distinct": len(np.unique(match)),
        "top5": float(np.sort(np.bincount(match))[::-1][:5].sum() / len(match)),
    }
    for row in correlations(queries, frames.iloc[match].reset_index(drop=True), list(TARGETS)):
        out[row["parameter"]] = row["pearson"]
    return out


def choose(runs: list[Path]) -> None:
    selection = list(SELECTION)
    settings = [("signed", 20, 0.0)] + [
        (p, k, w)
        for p, k, w in itertools.product(
            ("gradient", "signed"), (10, 15, 20, 30, 40, 60), (0.5, 1, 1.5, 2, 3, 4, 6)
        )
    ]
    none = {run: figures(run, selection, "signed", 10, 0.0) for run in runs}
    rows = []
    for picture, k, w in settings:
        got = {run: figures(run, selection, picture, k, w) for run in runs}
        keeps = all(got[run][p] >= none[run][p] - 0.01 for run in runs for p in ("tuf", "grad"))
        margin = min(min(g["psep"] - 0.50, g["r"] - 0.85) for g in got.values())
        rows.append(
            {"picture": picture, "candidates": k, "weight": w, "rule": margin if keeps else np.nan}
            | {f"{run.name} PSEP / R": f"{g['psep']:.3f} / {g['r']:.3f}" for run, g in got.items()}
        )
    table = pd.DataFrame(rows).sort_values("rule", ascending=False)
    print(table.head(12).to_string(index=False))
    best = table.iloc[0]
    print(f"\nchosen: {best.picture}, {best.candidates} candidates, weight {best.weight}")
    for run in runs:
        for label, (p, k, w) in {
            "none": ("signed", 10, 0.0),
            "chosen": (best.picture, int(best.candidates), float(best.weight)),
        }.items():
            per_block = [figures(run, [b], p, k, w) for b in EVALUATION]
            print(
                f"{run.name} {label}: "
                + ", ".join(
                    f"{name.upper()} " + " / ".join(f"{f[name]:.3f}" for f in per_block)
                    for name in TARGETS
                )
                + ", distinct nearest "
                + " / ".join(str(f["distinct"]) for f in per_block)
                + ", top-5 "
                + " / ".join(f"{f['top5']:.1%}" for f in per_block)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cache_cmd = commands.add_parser("cache", help="candidates of the configured GAN")
    cache_cmd.add_argument("--out", type=Path, required=True)
    cache_cmd.add_argument("--queries", type=int, default=1000, help="queries per seed block")
    choose_cmd = commands.add_parser("choose", help="the grid and the rule on cached runs")
    choose_cmd.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "cache":
        cache(args.out, args.queries)
    else:
        choose(args.runs)


if __name__ == "__main__":
    main()
