"""Samples of several GAN checkpoints side by side, each titled with its flux imbalance: what
the flux balance option (``balance_weight``, docs/training.md "Flux balance") does to the
pictures.

    .venv/bin/python benchmarks/gan_balance_figure.py --out docs/images/gan-balance.png \\
        --generator "demo=<home>/models/gan/tiny-seed0/last.pt" \\
        --generator "balance 0.3=<checkpoint>" ...

One row per checkpoint (its label over the first panel), seeds 0..5 (the same latent vectors
in every row), magnetograms in gauss with the polarity centroids (cyan: circle positive,
square negative) and u = (TPF - TNF) / (TPF + TNF) in each title.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gan_texture import generated
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.science.realism import flux_balance

SEEDS = list(range(6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", action="append", required=True, help="LABEL=CHECKPOINT")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    images, titles, centroids = [], [], []
    for spec in args.generator:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--generator {spec!r}: expected LABEL=CHECKPOINT")
        drawn = generated(Path(path), SEEDS)  # (6, 128, 128)
        p = compute_parameters(drawn)
        u = flux_balance(p["tpf"], p["tnf"])
        images.append(drawn)
        centroids.append(np.stack([p["pos_x"], p["pos_y"], p["neg_x"], p["neg_y"]], 1))
        titles += [
            f"{label if s == SEEDS[0] else f'seed {s}'}: u = {v:+.2f}"
            for s, v in zip(SEEDS, u, strict=True)
        ]
    magnetogram_grid(
        np.concatenate(images),
        args.out,
        titles=titles,
        centroids=np.concatenate(centroids),
        ncols=len(SEEDS),
        suptitle="GAN samples (seeds 0-5) and their flux imbalance u = (TPF - TNF) / (TPF + TNF)",
    )
    print(args.out)


if __name__ == "__main__":
    main()
