"""The flare-productive direction on a home (issue 23; docs/outlook.md, "A flare-productive
direction").

Fits the flare direction when the home lacks it (on a copy of the home, never in it: the
pipeline's flare-direction stage), then shifts many seeds along it and measures, per eps,
the look-alike outlook (the share of the k nearest regions that flared next, the search's
rule on generated queries) and the classifier's probability. Writes the classifier's
held-out-region skill, the direction's validation accuracy and strength, its cosines with the
TUF and R directions, the median rise of the outlook at +1.5, the stage's time, to
benchmarks/results/flare_direction.json, and the figure of outlook against eps to
docs/images/flare-direction-outlook.png. On the demo the synthetic flares follow R by
construction (docs/synthetic.md): a check of the plumbing, not a result.

    python benchmarks/bench_flare_direction.py --home .sharpseek --seeds 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    parser.add_argument("--out", default="benchmarks/results/flare_direction.json")
    parser.add_argument("--figure", default="docs/images/flare-direction-outlook.png")
    parser.add_argument("--seeds", type=int, default=100, help="seeds shifted")
    parser.add_argument("--eps", default="-1.5,-0.75,0,0.75,1.5,2.25", help="eps values")
    args = parser.parse_args()

    from sharpseek.config import Settings
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.physics.parameters import compute_parameters
    from sharpseek.pipeline.flare_direction_stage import flare_direction_stage
    from sharpseek.science.directions import DirectionSet, configured_strength
    from sharpseek.science.flare_direction import FLARE_DIRECTION, flare_classifier_of
    from sharpseek.search.searcher import Searcher

    settings = Settings(home=Path(args.home))
    store = open_store(settings)
    gan_version = GeneratorModel.from_settings(settings, store=store).version
    if FLARE_DIRECTION not in DirectionSet.load(store, gan_version).boundaries:
        copy = Path(tempfile.mkdtemp(prefix="sharpseek-flaredir-")) / "home"
        shutil.copytree(args.home, copy)  # the stage writes the set: never in the given home
        settings = Settings(home=copy)
        store = open_store(settings)
    started, cpu = time.perf_counter(), time.process_time()
    outcome = flare_direction_stage(settings, progress=False)
    stage_s, stage_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    directions = DirectionSet.load(store, gan_version)
    boundary = directions[FLARE_DIRECTION]
    classifier = flare_classifier_of(directions)
    strength = configured_strength(directions, FLARE_DIRECTION, settings.directions)

    eps_values = [float(e) for e in args.eps.split(",")]
    share = np.full((len(eps_values), args.seeds), np.nan)
    chance = np.full((len(eps_values), args.seeds), np.nan)
    started = time.perf_counter()
    with Searcher(settings) as searcher:
        for i, eps in enumerate(eps_values):
            for seed in range(args.seeds):
                query = searcher.latent_query(seed, shifts={FLARE_DIRECTION: eps} if eps else {})
                look = searcher.outlook(query)
                share[i, seed] = np.nan if look.share is None else look.share
                params = compute_parameters(query.image[None])
                chance[i, seed] = classifier.probability(params, query.vector[None])[0]
    measure_s = time.perf_counter() - started
    zero, plus = eps_values.index(0.0), eps_values.index(1.5)
    rise = share[plus] - share[zero]
    result = {
        "home": str(args.home),
        "gan_version": gan_version,
        "directions_version": directions.version,
        "stage": outcome.message,
        "stage_s": round(stage_s, 1),  # 0 when the home had it: the stage skipped
        "stage_cpu_s": round(stage_cpu_s, 1),
        "classifier_validation": boundary.extra["classifier"]["validation"],
        "direction_accuracy": boundary.accuracy,
        "strength": strength.summary(),
        "weak": strength.weak,
        "cosines": boundary.extra["cosines"],
        "seeds": args.seeds,
        "outlook_k": settings.flares.outlook_k,
        "eps": eps_values,
        "outlook_median": np.nanmedian(share, axis=1).tolist(),
        "outlook_p25": np.nanpercentile(share, 25, axis=1).tolist(),
        "outlook_p75": np.nanpercentile(share, 75, axis=1).tolist(),
        "outlook_mean": np.nanmean(share, axis=1).tolist(),
        "probability_median": np.nanmedian(chance, axis=1).tolist(),
        "outlook_rise_at_1_5": {
            "median": float(np.nanmedian(rise)),
            "mean": float(np.nanmean(rise)),
            "share_of_seeds_rising": float(np.mean(rise[np.isfinite(rise)] > 0)),
            "share_of_seeds_falling": float(np.mean(rise[np.isfinite(rise)] < 0)),
        },
        "measure_s": round(measure_s, 1),
        "load_average": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    plot(result, share, Path(args.figure))
    print(json.dumps({k: v for k, v in result.items() if k != "classifier_validation"}, indent=1))


def plot(result: dict, share: np.ndarray, path: Path) -> None:
    """Outlook share against eps: the seeds (faint), their median and quartiles, and the
    classifier's median probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = np.asarray(result["eps"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(eps, share, color="0.8", lw=0.5, alpha=0.3)
    ax.fill_between(eps, result["outlook_p25"], result["outlook_p75"], alpha=0.3, label="25-75 %")
    ax.plot(eps, result["outlook_median"], "o-", lw=2, label="outlook: median over seeds")
    ax.plot(eps, result["probability_median"], "s--", label="classifier: median P(>= M, 24 h)")
    cos = result["cosines"]
    ax.set_xlabel("shift eps along the flare direction")
    ax.set_ylabel("share of look-alike regions with >= M in 24 h")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"{result['seeds']} seeds, k = {result['outlook_k']}; cos(flare, TUF) = "
        f"{cos.get('tuf', float('nan')):.2f}, cos(flare, R) = {cos.get('r', float('nan')):.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
