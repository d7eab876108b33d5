"""Figures of the physical directions of the settings' GAN (the issue's closing figures).

Run from the repository root, with a home holding a trained GAN (the tiny demo:
``SHARPSEEK_HOME=<copy of the demo home> SHARPSEEK_MODELS__GAN_CHECKPOINT=last``)::

    .venv/bin/python benchmarks/bench_directions.py --out benchmarks/results/directions.json

It uses the directions stored for that GAN (``sharpseek directions fit``) or, with ``--fit``
or when none are stored, fits them on ``--n`` images (default 10,000) with calibration.
Measured:

- validation accuracy of every parameter's SVM (30 % held out);
- for TUF, PSEP and R: Spearman of each against eps along its own direction (pooled over
  ``--n-z`` latent vectors), and how much a conditioned-away parameter moves along the plain
  and the conditioned direction (median |change| from eps = -2 to +2, in units of that
  parameter's 16-84 % spread over the generator);
- targets: median relative error of achieved against requested over ``--requests`` random
  requests (a random seed, one of TUF/PSEP/R, a factor in 0.7..1.5, the others free);
- inversion error (RMS in G, the settings' method; benchmarks/bench_inversion.py compares
  it with the older Adam path) against the heliocentric angle mu of the real Br samples in
  ``settings.samples_dir`` (five: an illustration, too few for a trend).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sharpseek import __version__
from sharpseek.config import get_settings
from sharpseek.data.store import open_store
from sharpseek.models.inference import GeneratorModel
from sharpseek.science.directions import (
    DirectionSet,
    Target,
    calibrate,
    fit_directions,
    held_changes,
    solve_targets,
)

PAIRS = (("tuf", "psep"), ("psep", "tuf"), ("r", "tuf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/directions.json"))
    parser.add_argument("--fit", action="store_true", help="refit even if directions exist")
    parser.add_argument("--n", type=int, default=10_000, help="images to fit on")
    parser.add_argument("--n-z", type=int, default=60, help="latent vectors per diagnostic")
    parser.add_argument("--requests", type=int, default=100, help="random target requests")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    settings = get_settings()
    store = open_store(settings)
    model = GeneratorModel.from_settings(settings, store=store)
    started = time.perf_counter()
    try:
        if args.fit:
            raise FileNotFoundError
        directions = DirectionSet.load(store, model.version)
        fitted_here = False
    except FileNotFoundError:
        directions = fit_directions(
            model.generate, gan_version=model.version, n=args.n, progress=True
        )
        cfg = settings.directions
        calibrate(
            model.generate,
            directions,
            eps=np.linspace(-cfg.calibration_eps_max, cfg.calibration_eps_max, 13),
            n_z=cfg.calibration_n_z,
            progress=True,
        )
        directions.save(store)
        fitted_here = True
    fit_s = time.perf_counter() - started

    accuracy = {k: round(b.accuracy, 4) for k, b in directions.boundaries.items()}
    print("validation accuracy:", accuracy)

    conditioning = {}
    for parameter, held in PAIRS:
        r = held_changes(model.generate, directions, parameter, [held], n_z=args.n_z)
        conditioning[f"{parameter}|{held}"] = {
            "spearman_own_plain": round(r["plain"][parameter]["spearman"], 4),
            "spearman_own_conditioned": round(r["conditioned"][parameter]["spearman"], 4),
            "own_change_plain": round(r["plain"][parameter]["change"], 4),
            "own_change_conditioned": round(r["conditioned"][parameter]["change"], 4),
            "held_change_plain": round(r["plain"][held]["change"], 4),
            "held_change_conditioned": round(r["conditioned"][held]["change"], 4),
            "cos_between_normals": round(r["cos_before"][held], 4),
        }
        print(parameter, "|", held, conditioning[f"{parameter}|{held}"])

    rng = np.random.default_rng(0)
    errors, converged = [], 0
    for _ in range(args.requests):
        seed = int(rng.integers(0, 2**31))
        name = str(rng.choice(["tuf", "psep", "r"]))
        factor = float(rng.uniform(0.7, 1.5))
        z0 = model.latent(seed)[0]
        result = solve_targets(model.generate, directions, z0, [Target(name, "factor", factor)])
        err = result.relative_errors()[name]
        errors.append(err if np.isfinite(err) else np.inf)
        converged += result.converged
    errors = np.asarray(errors)
    targets = {
        "requests": args.requests,
        "median_relative_error": round(float(np.median(errors)), 4),
        "p90_relative_error": round(float(np.percentile(errors, 90)), 4),
        "converged_within_3pct": converged,
    }
    print("targets:", targets)

    inversion = []
    from sharpseek.data.fits import read_sharp
    from sharpseek.data.preprocess import heliocentric_mu, to_model_space
    from sharpseek.science.inversion import invert_configured

    for path in settings.real_sample_paths:
        sharp = read_sharp(path)
        m = sharp.meta
        mu = heliocentric_mu(m["lat_fwt"], m["lon_fwt"], m["crlt_obs"])
        result = invert_configured(model, to_model_space(sharp.data).image, settings.directions)
        inversion.append(
            {"file": path.name, "mu": round(float(mu), 4), "rms_gauss": round(result.rms_gauss, 2)}
        )
        print(inversion[-1])

    out = {
        "what": "physical directions of the settings' GAN (benchmarks/bench_directions.py)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sharpseek": __version__,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "torch_threads": args.threads,
        "gan_version": model.version,
        "directions_version": directions.version,
        "n_samples": directions.n_samples,
        "fitted_in_this_run": fitted_here,
        "fit_seconds": round(fit_s, 1) if fitted_here else None,
        "validation_accuracy": accuracy,
        "conditioning": conditioning,
        "targets": targets,
        "inversion_vs_mu": inversion,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
