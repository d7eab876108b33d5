"""Hubness cures measured side by side on a trained home (issue 17; docs/search.md "Hubs").

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/hubness_variants.py \\
        --out benchmarks/results/hubness-variants.json

The current encoder embeds every frame of the training dataset and the generated queries of
both evaluation blocks (seeds 0.. and 100000..), and a reference block of generated images
(seeds 10**6.., outside both) for the cures that need one. Each variant then finds every
query's nearest frame; per block: distinct nearest frames, the top-5 share, SimSiam Pearson
(Spearman) of TUF, R, PSEP and GRAD between query and match, and same-region retrieval of the
held-out regions' frames in the variant's space (real queries; a variant that only moves
generated queries leaves it unchanged). Variants:

- ``raw``: Euclidean on the embeddings (before the cure);
- ``centre`` / ``standardise`` / ``whiten``: frames and queries transformed alike with the
  frames' mean, per-dimension std, covariance (fitted on the frames);
- ``centre+L2`` / ``whiten+L2``: the same, then unit length (cosine);
- ``CSLS (frames)``: cross-domain similarity local scaling, each frame's hubness measured
  among the frames (k = 10);
- ``CSLS (generated)``: the same, measured against the reference generated images (k = 50);
- ``query map``: :class:`sharpseek.search.query_map.GeneratedQueryMap` (the chosen cure).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sharpseek.config import Settings
from sharpseek.data.dataset import latest_version, load_dataset
from sharpseek.data.store import open_store
from sharpseek.models.checkpoints import load_checkpoint
from sharpseek.pipeline.stages import model_keys
from sharpseek.science.evaluate import SEED_BLOCKS, hubness, same_region_retrieval
from sharpseek.search.evaluate_retrieval import _nearest, correlations
from sharpseek.search.index.build import embedded_batches
from sharpseek.search.query_map import GeneratedQueryMap
from sharpseek.serving.backends import open_backend

PARAMS = ("tuf", "r", "psep", "grad")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _csls_nearest(q: np.ndarray, frames: np.ndarray, hub: np.ndarray, k: int = 10) -> np.ndarray:
    """The k best frames by 2 cos(q, x) - hub(x), best first."""
    score = 2 * _unit(q) @ _unit(frames).T - hub[None]
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


def _hub_among(reference: np.ndarray, frames: np.ndarray, k: int) -> np.ndarray:
    """Each frame's mean cosine to its k most similar reference vectors (itself excluded
    when the reference is the frames)."""
    sim = _unit(frames) @ _unit(reference).T
    if reference is frames:
        np.fill_diagonal(sim, -np.inf)
    return np.sort(sim, axis=1)[:, -k:].mean(1)


def variants(frames: np.ndarray, reference: np.ndarray, meta: dict) -> dict:
    """name -> (map of frames, map of queries) or ("csls", hub scores)."""
    mu, sd = frames.mean(0), frames.std(0)
    cov = np.cov((frames - mu).T)
    w, v = np.linalg.eigh(cov)
    whitening = v @ np.diag(np.maximum(w, 1e-8 * w.max()) ** -0.5) @ v.T
    qmap = GeneratedQueryMap.fit(frames, reference, first_seed=10**6, **meta)

    def same(f):
        return (f, f)

    return {
        "raw": same(lambda x: x),
        "centre": same(lambda x: x - mu),
        "standardise": same(lambda x: (x - mu) / sd),
        "whiten": same(lambda x: (x - mu) @ whitening),
        "centre+L2": same(lambda x: _unit(x - mu)),
        "whiten+L2": same(lambda x: _unit((x - mu) @ whitening)),
        "CSLS (frames)": ("csls", _hub_among(frames, frames, 10)),
        "CSLS (generated)": ("csls", _hub_among(reference, frames, 50)),
        "query map": (lambda x: x, qmap.apply),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="default: SHARPSEEK_HOME")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/hubness-variants.json")
    )
    args = parser.parse_args()
    home = args.home or Path(os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    settings = Settings(home=home)
    store = open_store(settings)
    t0 = time.perf_counter()
    ds, real, held = training_frames(settings, store)
    with open_backend(settings) as backend:
        frames = np.concatenate([v for _, v in embedded_batches(ds, backend)]).astype(np.float64)
        blocks = {}
        for first in (*SEED_BLOCKS, 10**6):
            got = backend.generate(seeds=list(range(first, first + args.queries)))
            params = pd.DataFrame({k: np.asarray(v) for k, v in got.parameters.items()})
            blocks[first] = (backend.embed(got.images).astype(np.float64), params)
        versions = backend.versions()
    reference = blocks.pop(10**6)[0]
    meta = {
        "encoder_version": versions["encoder"],
        "generator_version": versions["gan"],
        "frames": {"dataset": f"{ds.name}/{ds.version}", "count": len(real)},
    }
    harp, t_rec = real["harpnum"].to_numpy(), real["t_rec"].to_numpy()
    rows = []
    for variant, (to_frames, to_queries) in variants(frames, reference, meta).items():
        if to_frames == "csls":
            base, same_region = None, None
        else:
            base = to_frames(frames)
            same_region = same_region_retrieval(base[held], harp[held], t_rec[held])
        for first, (q, params) in blocks.items():
            if base is None:
                nb = _csls_nearest(q, frames, to_queries)
            else:
                nb = _nearest(to_queries(q), base, k=10)
            seeds = f"{first}..{first + args.queries - 1}"
            rows.append({"variant": variant, **match_row(nb, real, params, seeds, same_region)})
    result = {
        "what": "issue 17: hubness cures side by side (benchmarks/hubness_variants.py)",
        "home": str(home),
        "versions": versions,
        "dataset": meta["frames"],
        "held_out_frames": int(held.sum()),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    save_result(result, args.out, markdown(result))


def training_frames(settings: Settings, store) -> tuple:
    """The training dataset, its manifest (n rows, 0-based) and which rows (n,) bool are
    frames of the regions the settings' encoder held out."""
    name = settings.flows.training_dataset
    ds = load_dataset(store, name, latest_version(store, name))
    real = ds.manifest.reset_index(drop=True)
    ckpt = load_checkpoint(model_keys(settings)["encoder"], store=store)
    held = real["harpnum"].isin((ckpt.get("splits") or {}).get("holdout_harpnums", [])).to_numpy()
    return ds, real, held


def match_row(
    neighbours: np.ndarray, real: pd.DataFrame, params: pd.DataFrame, seeds: str, same_region
) -> dict:
    """One block's figures: hubness of the queries' ``neighbours`` (n, 10) among the frames
    ``real``, Pearson and Spearman of :data:`PARAMS` between each query (``params``) and its
    nearest frame, and the variant's held-out same-region retrieval."""
    hub = hubness(neighbours, len(real))
    match = real.iloc[neighbours[:, 0]].reset_index(drop=True)
    corr = {c["parameter"]: c for c in correlations(params, match, names=PARAMS)}
    return {
        "seeds": seeds,
        "distinct_nearest": hub["distinct_nearest"],
        "top5_share": hub["top5_share"],
        **{f"pearson_{p}": corr[p]["pearson"] for p in PARAMS},
        **{f"spearman_{p}": corr[p]["spearman"] for p in PARAMS},
        "same_region_held_out": same_region,
    }


def save_result(result: dict, out: Path, table: str) -> None:
    """Write ``result`` as JSON to ``out`` and print its markdown ``table``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table)
    print(f"wrote {out}")


def markdown(result: dict) -> str:
    """The rows as the markdown table docs/search.md shows."""
    lines = [
        "| variant | seeds | distinct nearest | top-5 share | TUF | R | PSEP | GRAD | "
        "same-region, held out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = [f"{r[f'pearson_{p}']:.2f} ({r[f'spearman_{p}']:.2f})" for p in PARAMS]
        same = r["same_region_held_out"]
        lines.append(
            f"| {r['variant']} | {r['seeds']} | {r['distinct_nearest']} | "
            f"{r['top5_share']:.0%} | " + " | ".join(cells) + " | "
            f"{'—' if same is None else f'{same:.3f}'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
