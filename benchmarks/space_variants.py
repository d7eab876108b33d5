"""Where generated queries should search: embedding spaces side by side on a trained home
(issue 17; docs/search.md, "Two spaces").

    SHARPSEEK_HOME=<demo home> OMP_NUM_THREADS=2 .venv/bin/python benchmarks/space_variants.py \\
        --out benchmarks/results/space_variants.json

The current encoder embeds every frame of the training dataset, the generated queries of
both evaluation blocks (seeds 0.. and 100000..) and a reference block (seeds 10**6..) under
each of the 16 symmetries of :mod:`sharpseek.search.spaces` (4 rotations x reflection x
polarity sign). A space averages the embeddings over a subgroup (or mixes the averaged and
the plain embedding); each has its own generated-query map (the per-dimension moments of
:class:`~sharpseek.search.query_map.GeneratedQueryMap`, fitted on all frames and the
reference block). Per block: distinct nearest frames, the top-5 share, Pearson (Spearman)
of TUF, R, PSEP and GRAD between query and match; and same-region retrieval of the
encoder's held-out regions among themselves in that space (what real queries would get).
About 5 minutes on 2 cores for the demo (16 embeddings of 6,600 images).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hubness_variants import PARAMS, match_row, save_result, training_frames
from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.science.evaluate import SEED_BLOCKS, same_region_retrieval
from sharpseek.search.evaluate_retrieval import _nearest
from sharpseek.search.query_map import GeneratedQueryMap
from sharpseek.search.spaces import SYMMETRIES, symmetry
from sharpseek.serving.backends import open_backend

REFERENCE = 10**6

# name -> (elements averaged (indices into SYMMETRIES), weight of the plain embedding mixed in)
DIHEDRAL = tuple(i for i, (_, _, sign) in enumerate(SYMMETRIES) if sign > 0)
SPACES = {
    "region (the encoder's embedding)": ((0,), 0.0),
    "polarity flip only (2)": ((0, SYMMETRIES.index((0, False, -1))), 0.0),
    "rotations and reflections (8)": (DIHEDRAL, 0.0),
    "symmetric: rotations, reflections, polarity (16; chosen)": (tuple(range(16)), 0.0),
    "symmetric + 0.5 x region (one vector for both kinds of query)": (tuple(range(16)), 0.5),
}


def embed_orbits(backend, images: np.ndarray) -> np.ndarray:
    """Embeddings (16, n, dim) of each symmetry of ``images`` (n, 128, 128)."""
    return np.stack(
        [np.asarray(backend.embed(symmetry(images, *g)), np.float64) for g in SYMMETRIES]
    )


def space_of(orbit: np.ndarray, elements: tuple[int, ...], region_weight: float) -> np.ndarray:
    """The vectors (n, dim) of a space from the orbit embeddings (16, n, dim)."""
    mean = orbit[list(elements)].mean(0)
    return mean if region_weight == 0 else (1 - region_weight) * mean + region_weight * orbit[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="default: SHARPSEEK_HOME")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/space_variants.json"))
    args = parser.parse_args()
    home = args.home or Path(os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    settings = Settings(home=home)
    store = open_store(settings)
    t0 = time.perf_counter()
    ds, real, held = training_frames(settings, store)
    with open_backend(settings) as backend:
        images = np.concatenate(
            [ds.images(np.arange(s, min(s + 500, len(real)))) for s in range(0, len(real), 500)]
        )
        frames = embed_orbits(backend, images)
        del images
        blocks = {}
        for first in (*SEED_BLOCKS, REFERENCE):
            got = backend.generate(seeds=list(range(first, first + args.queries)))
            params = pd.DataFrame({k: np.asarray(v) for k, v in got.parameters.items()})
            blocks[first] = (embed_orbits(backend, got.images), params)
        versions = backend.versions()
    reference = blocks.pop(REFERENCE)[0]
    meta = {
        "encoder_version": versions["encoder"],
        "generator_version": versions["gan"],
        "frames": {"dataset": f"{ds.name}/{ds.version}", "count": len(real)},
    }
    harp, t_rec = real["harpnum"].to_numpy(), real["t_rec"].to_numpy()
    rows = []
    for space, (elements, weight) in SPACES.items():
        base = space_of(frames, elements, weight)
        qmap = GeneratedQueryMap.fit(
            base, space_of(reference, elements, weight), first_seed=REFERENCE, **meta
        )
        same_region = same_region_retrieval(base[held], harp[held], t_rec[held])
        for first, (orbit, params) in blocks.items():
            nb = _nearest(qmap.apply(space_of(orbit, elements, weight)), base, k=10)
            seeds = f"{first}..{first + args.queries - 1}"
            rows.append({"space": space, **match_row(nb, real, params, seeds, same_region)})
    result = {
        "what": "issue 17: embedding spaces for generated queries (benchmarks/space_variants.py)",
        "home": str(home),
        "versions": versions,
        "dataset": meta["frames"],
        "held_out_frames": int(held.sum()),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    save_result(result, args.out, markdown(result))


def markdown(result: dict) -> str:
    """The rows as the markdown table docs/search.md shows."""
    lines = [
        "| space | seeds | distinct nearest | top-5 share | TUF | R | PSEP | GRAD | "
        "same-region, held out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = [f"{r[f'pearson_{p}']:.2f} ({r[f'spearman_{p}']:.2f})" for p in PARAMS]
        lines.append(
            f"| {r['space']} | {r['seeds']} | {r['distinct_nearest']} | "
            f"{r['top5_share']:.1%} | " + " | ".join(cells) + " | "
            f"{r['same_region_held_out']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
