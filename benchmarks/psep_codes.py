"""Why the demo GAN's bipoles are more compact than the data's (issue 17's median PSEP ratio):
what the physical codes ask for, what the generator draws, and what the frames have.

For the home's GAN (its checkpoint's code parameters and marginals) and 1,000 latent vectors
(seeds 0..999, as the evaluation draws them): PSEP by the physics module and by the codes'
differentiable surrogate, on the generated images and on the frames of the HARPs the GAN held
out; and the PSEP the codes asked for, by the Gaussian and by the empirical marginals
(``sharpseek.training.codes``) fitted on the training frames as training fits them. Writes
medians and quartiles to ``--out``.

    .venv/bin/python benchmarks/psep_codes.py --home <demo home> \
        --out benchmarks/results/psep_codes.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gan_texture import samples  # benchmarks/ (run as a script)
from sharpseek import __version__
from sharpseek.data.dataset import load_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import generator_from_checkpoint, load_checkpoint
from sharpseek.models.inference import latent_from_seeds
from sharpseek.physics.parameters import compute_parameters
from sharpseek.physics.surrogates import soft_parameters
from sharpseek.training.codes import CODE_MARGINALS, CodeTargets

SEEDS = 1000


def quartiles(values: np.ndarray) -> dict[str, float]:
    """Median and quartiles [model px] of the finite values."""
    values = values[np.isfinite(values)]
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {"n": int(len(values)), "q25": float(q25), "median": float(q50), "q75": float(q75)}


def psep_both(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSEP [model px] of images (n, 128, 128) by the physics module and by the surrogate,
    NaN where either calls the image unipolar."""
    exact = np.asarray(compute_parameters(images)["psep"], dtype=float)
    with torch.no_grad():
        values, bipolar = soft_parameters(torch.from_numpy(np.ascontiguousarray(images))[:, None])
    soft = values["psep"].double().numpy()
    both = np.isfinite(exact) & bipolar.numpy()
    return np.where(both, exact, np.nan), np.where(both, soft, np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--checkpoint", default="models/gan/tiny-seed0/last.pt")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    store = LocalStore(args.home)
    ckpt = load_checkpoint(args.checkpoint, store=store, kind="gan")
    config = ckpt["config"]
    parameters = tuple(config.get("code_parameters") or ())
    if not config.get("code_weight") or "psep" not in parameters:
        raise SystemExit(f"{args.checkpoint}: trained without a PSEP code")
    G = generator_from_checkpoint(ckpt, "cpu")
    dataset = load_dataset(store, args.dataset)
    held = dataset.manifest["harpnum"].isin(set(ckpt["splits"]["holdout_harpnums"])).to_numpy()
    held_rows, train_rows = np.flatnonzero(held), np.flatnonzero(~held)

    gen_exact, gen_soft = psep_both(samples(G, list(range(SEEDS))))
    real_exact, real_soft = psep_both(dataset.images(held_rows))

    # training fits the targets on 2,000 random training frames; here on every k-th,
    # k = n // 2,000 (all 2,880 of the demo's), and measures every fourth of them
    fit_images = dataset.images(train_rows[:: max(1, len(train_rows) // 2000)])
    train_exact, _ = psep_both(fit_images[::4])
    z = latent_from_seeds(list(range(SEEDS)), G.config.latent_dim)  # what samples() drew
    codes = torch.from_numpy(z[:, : len(parameters)]).float()
    column = parameters.index("psep")
    asked = {}
    for marginals in CODE_MARGINALS:
        targets = CodeTargets.from_images(fit_images, parameters, marginals)
        asked[marginals] = quartiles(np.exp(targets.wanted(codes)[:, column].double().numpy()) - 1)
    result = {
        "what": "PSEP [model px]: what the codes ask for, what G draws, what the frames have",
        "command": "benchmarks/psep_codes.py --home <demo home>",
        "sharpseek": __version__,
        "checkpoint": args.checkpoint,
        "code_marginals_trained": config.get("code_marginals", "gaussian"),
        "generated_exact": quartiles(gen_exact),
        "generated_surrogate": quartiles(gen_soft),
        "held_out_exact": quartiles(real_exact),
        "held_out_surrogate": quartiles(real_soft),
        "training_exact": quartiles(train_exact),
        "asked_by_codes": asked,
        "surrogate_over_exact_median": {
            "generated": float(np.nanmedian(gen_soft / gen_exact)),
            "held_out": float(np.nanmedian(real_soft / real_exact)),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
