"""Issue 17: each GAN option measured against the paper's plain recipe, on the demo data.

Trains one GAN per option set on the synthetic dataset of a home (copied into a scratch
store, so the home is not touched), then measures each with ``sharpseek evaluate models``'
function (:func:`sharpseek.training.evaluate_models.evaluate_checkpoints`: 1,000 generated images
per seed block 0.. and 100000.., against the frames of the HARPs the run held out). The option
sets add one option at a time, from the paper's recipe at the tiny width to the ``tiny``
preset, then one the tiny preset leaves off; the last row is the ``paper`` preset itself
(width 1) for a few epochs, on the CPU.

Run from the repository root on the demo home (``make demo`` made it)::

    .venv/bin/python benchmarks/gan_options.py --home .sharpseek \\
        --out benchmarks/results/gan_options.json [--only NAME ...] [--paper-epochs 2]

Each set's row is merged into ``--out`` as soon as it is measured (a later ``--only`` run
adds to the file), and the table is rewritten into ``--docs`` (docs/training.md, between
``<!-- BEGIN gan_options.json -->`` and ``<!-- END gan_options.json -->``; ``--docs-only``
rewrites it from the file without training). One torch thread (steadier than two on a
shared 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gan_texture import dataset_frames, samples, texture  # benchmarks/ (run as a script)
from sharpseek import __version__
from sharpseek.data.dataset import load_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.science.evaluate import QUALITY_PARAMETERS
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.training.evaluate_models import evaluate_checkpoints
from sharpseek.training.gan import GAN_TRAIN_PRESETS, gan_train_config, train_gan

TINY = GAN_TRAIN_PRESETS["tiny"]
_UPSAMPLE = {"generator": "upsample", "internal_size": TINY.model.internal_size}
# G 2e-4 and D 1e-3: the two learning rates these rows were measured with (the tiny preset's
# until G's rate was raised to D's, the last rows)
_SN_HINGE = {"loss": "hinge", "lr": 2e-4, "lr_d": 1e-3, "betas": TINY.betas}
_TINY_MODEL = {**_UPSAMPLE, "noise": True, "spectral_norm": True}
# the physical codes of TUF, PSEP and R at weight 3, without the moving average
_CODES_3 = ({**_TINY_MODEL, "codes": 3}, {**_SN_HINGE, "ema_decay": 0.0, "code_weight": 3.0})
_G_FAST = {"lr": TINY.lr}
# the tiny preset until the second convolution and 16 epochs (``TINY_SET`` now), which the
# "tiny + ..." sets vary; every set trains for ``EPOCHS`` unless it says otherwise
EPOCHS = 10
_TINY = (
    {**_TINY_MODEL, "codes": TINY.model.codes},
    {
        **_SN_HINGE,
        **_G_FAST,
        "ema_decay": TINY.ema_decay,
        "code_weight": TINY.code_weight,
        "code_parameters": TINY.code_parameters,
    },
)

#: name -> (model overrides, training overrides) on the ``paper`` preset at the tiny width and
#: the tiny schedule; each adds one option to the one before it up to the tiny preset
#: before the second convolution, then options that preset left off (``TINY_SET`` is the
#: preset now).
OPTION_SETS: dict[str, tuple[dict, dict]] = {
    "paper recipe": ({}, {}),
    "+ upsample 64 px": (_UPSAMPLE, {}),
    "+ noise field": ({**_UPSAMPLE, "noise": True}, {}),
    "+ spectral norm, hinge, two learning rates": (_TINY_MODEL, _SN_HINGE),
    "+ EMA": (_TINY_MODEL, {**_SN_HINGE, "ema_decay": 0.99}),
    "+ codes of TUF, PSEP, R, EMA off": _CODES_3,
    "+ clip output (instead of tanh)": ({**_CODES_3[0], "output": "clip"}, _CODES_3[1]),
    "+ batch 16": (_CODES_3[0], {**_CODES_3[1], "batch_size": 16}),
    "+ G's learning rate 1e-3 (= D's)": (_CODES_3[0], {**_CODES_3[1], **_G_FAST}),
    (
        "+ G's learning rate 1e-3, codes of TUF and PSEP only "
        "(= tiny before the second convolution)"
    ): _TINY,
    "tiny + EMA 0.99": (_TINY[0], {**_TINY[1], "ema_decay": 0.99}),
    "tiny + EMA 0.98": (_TINY[0], {**_TINY[1], "ema_decay": 0.98}),
    "tiny + EMA 0.95": (_TINY[0], {**_TINY[1], "ema_decay": 0.95}),
    "tiny, seed 1": (_TINY[0], {**_TINY[1], "seed": 1}),
    "tiny + EMA 0.98, seed 1": (_TINY[0], {**_TINY[1], "ema_decay": 0.98, "seed": 1}),
    "tiny + empirical code marginals": (_TINY[0], {**_TINY[1], "code_marginals": "empirical"}),
    "tiny + empirical code marginals, seed 1": (
        _TINY[0],
        {**_TINY[1], "code_marginals": "empirical", "seed": 1},
    ),
    "tiny + translation": (_TINY[0], {**_TINY[1], "augment": "translation"}),
    "tiny + bilinear upsampling": ({**_TINY[0], "upsampling": "bilinear"}, _TINY[1]),
    "tiny + 128 px across (x) and 64 px along (y)": (
        {**_TINY[0], "internal_width": 128},
        _TINY[1],
    ),
    "tiny + bilinear upsampling, 128 px across (x) and 64 px along (y)": (
        {**_TINY[0], "upsampling": "bilinear", "internal_width": 128},
        _TINY[1],
    ),
    "tiny + bilinear upsampling at 128 px": (
        {**_TINY[0], "upsampling": "bilinear", "internal_size": 128},
        _TINY[1],
    ),
    "tiny + linear learning-rate decay": (_TINY[0], {**_TINY[1], "lr_decay": "linear"}),
    "tiny + linear learning-rate decay, seed 1": (
        _TINY[0],
        {**_TINY[1], "lr_decay": "linear", "seed": 1},
    ),
    "tiny + heavy-tailed noise of its own, blurred 1 px": (
        {**_TINY[0], "blob_blur_px": 1.0},
        _TINY[1],
    ),
    "tiny + heavy-tailed noise of its own, blurred 1 px, seed 1": (
        {**_TINY[0], "blob_blur_px": 1.0},
        {**_TINY[1], "seed": 1},
    ),
    "tiny + heavy-tailed noise of its own, blurred 2 px": (
        {**_TINY[0], "blob_blur_px": 2.0},
        _TINY[1],
    ),
    "tiny + a second convolution at 16 and 32 px": ({**_TINY[0], "refine": True}, _TINY[1]),
    "tiny + a second convolution at 16 and 32 px, seed 1": (
        {**_TINY[0], "refine": True},
        {**_TINY[1], "seed": 1},
    ),
    "tiny + a second convolution at 16 and 32 px, heavy-tailed noise blurred 1 px": (
        {**_TINY[0], "refine": True, "blob_blur_px": 1.0},
        _TINY[1],
    ),
    "tiny + a second convolution at 16 and 32 px, heavy-tailed noise blurred 1 px, seed 1": (
        {**_TINY[0], "refine": True, "blob_blur_px": 1.0},
        {**_TINY[1], "seed": 1},
    ),
    "tiny, 16 epochs": (_TINY[0], {**_TINY[1], "epochs": 16}),
    "tiny + a second convolution at 16 and 32 px, 16 epochs": (
        {**_TINY[0], "refine": True},
        {**_TINY[1], "epochs": 16},
    ),
    "tiny + code weight 6": (_TINY[0], {**_TINY[1], "code_weight": 6.0}),
    "tiny + code weight 6, empirical code marginals": (
        _TINY[0],
        {**_TINY[1], "code_weight": 6.0, "code_marginals": "empirical"},
    ),
    "tiny (16 epochs, second convolution) + bilinear upsampling": (
        {**_TINY[0], "refine": True, "upsampling": "bilinear"},
        {**_TINY[1], "epochs": 16},
    ),
    "tiny (16 epochs, second convolution) + bilinear upsampling, seed 1": (
        {**_TINY[0], "refine": True, "upsampling": "bilinear"},
        {**_TINY[1], "epochs": 16, "seed": 1},
    ),
    "tiny (16 epochs, second convolution) + flux balance 1": (
        {**_TINY[0], "refine": True},
        {**_TINY[1], "epochs": 16, "balance_weight": 1.0},
    ),
    "tiny (16 epochs, second convolution) + flux balance 0.3": (
        {**_TINY[0], "refine": True},
        {**_TINY[1], "epochs": 16, "balance_weight": 0.3},
    ),
}
PAPER_PRESET = "paper preset (width 1)"
#: The set that is the ``tiny`` preset (main() checks it).
TINY_SET = "tiny + a second convolution at 16 and 32 px, 16 epochs"
#: Images of each set (seeds 0..) and of the dataset whose texture is measured.
TEXTURE_SAMPLES = 400
#: The seeds of the samples each set draws with ``--figures`` (the demo grid's first six).
FIGURE_SEEDS = list(range(6))


def option_config(name: str, paper_epochs: int):
    """The training config of an option set (the paper preset's with ``paper_epochs``)."""
    if name == PAPER_PRESET:
        return gan_train_config("paper", epochs=paper_epochs, fixed_size=TINY.fixed_size)
    model, train = OPTION_SETS[name]
    schedule = {"epochs": EPOCHS, "fixed_size": TINY.fixed_size, "r1_gamma": TINY.r1_gamma}
    return gan_train_config(
        "paper", model={"width": TINY.model.width, **model}, **{**schedule, **train}
    )


def summary(report: dict) -> dict:
    """The issue's figures per seed block from ``evaluate_checkpoints``' GAN report."""
    out = {}
    for block, entry in report["blocks"].items():
        held = entry["held_out"]
        ks = {k: held[f"ks_{k}"] for k in QUALITY_PARAMETERS}
        out[block] = {
            "ks_mean": float(np.mean(list(ks.values()))),
            "ks_worst": max(ks.values()),
            "ks_worst_parameter": max(ks, key=ks.get),
            "ks": ks,
            "psep_median_ratio": held["psep_median_ratio"],
            "bipolar_share_generated": held["bipolar_share_generated"],
            "bipolar_share_real": held["bipolar_share_real"],
            "spectral_high_ratio": held["spectral_high_ratio"],
            "flux_imbalance_generated": held.get("flux_imbalance_generated"),
            "flux_imbalance_real": held.get("flux_imbalance_real"),
            "copy_ratio": entry["memorisation"]["pixels"]["ratio"],
        }
    return out


DOCS_PATTERN = re.compile(
    r"(<!-- BEGIN gan_options\.json -->\n)(.*?)(<!-- END gan_options\.json -->)", re.DOTALL
)


COLUMNS = (  # (header, one block's figure as text)
    ("KS mean", lambda b: f"{b['ks_mean']:.2f}"),
    ("worst KS", lambda b: f"{b['ks_worst']:.2f} {b['ks_worst_parameter'].upper()}"),
    ("median PSEP ratio", lambda b: f"{b['psep_median_ratio']:.2f}"),
    (
        "bipolar: generated - real",
        lambda b: f"{100 * (b['bipolar_share_generated'] - b['bipolar_share_real']):+.1f} pt",
    ),
    ("spectral ratio r > 32", lambda b: f"{b['spectral_high_ratio']:.2f}"),
    ("copy ratio", lambda b: f"{b['copy_ratio']:.2f}"),
    (  # the held-out frames': 0.03 on the demo data
        "median flux imbalance",
        lambda b: (
            f"{b['flux_imbalance_generated']:.2f}"
            if b.get("flux_imbalance_generated") is not None
            else "-"
        ),
    ),
)


def table(result: dict) -> str:
    """The option sets as a markdown table (each cell: seed block 0.. / 100000..)."""
    lines = [
        "| option set | epochs | train time (load) | " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|---" * (3 + len(COLUMNS)) + "|",
    ]
    for name, row in result["sets"].items():
        cells = [" / ".join(fmt(b) for b in row["blocks"].values()) for _, fmt in COLUMNS]
        when = f"{row['train_seconds']:.0f} s ({row['load_average_before']:.1f})"
        lines.append(f"| {name} | {row['epochs']} | {when} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(path: Path, result: dict) -> None:
    text = path.read_text()
    if not DOCS_PATTERN.search(text):
        raise SystemExit(f"{path}: no <!-- BEGIN gan_options.json --> section")
    path.write_text(DOCS_PATTERN.sub(lambda m: f"{m.group(1)}{table(result)}\n{m.group(3)}", text))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="default: SHARPSEEK_HOME")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gan_options.json"))
    parser.add_argument("--only", nargs="*", default=None, help="option set names to run")
    parser.add_argument("--paper-epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1000, help="generated images per block")
    parser.add_argument("--docs", type=Path, default=Path("docs/training.md"))
    parser.add_argument(
        "--figures", type=Path, default=None, help="folder for each set's samples (PNG)"
    )
    parser.add_argument("--docs-only", action="store_true", help="rewrite --docs, train nothing")
    parser.add_argument(
        "--merge", type=Path, nargs="*", default=[], help="add these runs' sets to --out"
    )
    args = parser.parse_args()
    if args.docs_only:
        result = json.loads(args.out.read_text())
        for other in args.merge:  # runs made in parallel, each with its own --out
            measured = json.loads(other.read_text())
            result["sets"].update(measured["sets"])
            if "dataset_texture" in measured:
                result["dataset_texture"] = measured["dataset_texture"]
        order = [*OPTION_SETS, PAPER_PRESET]
        result["sets"] = dict(sorted(result["sets"].items(), key=lambda kv: order.index(kv[0])))
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        write_docs(args.docs, result)
        return
    tiny = option_config(TINY_SET, 0).to_dict()
    if tiny != {**TINY.to_dict(), "preset": "paper"}:
        raise SystemExit(f"option set {TINY_SET!r} is not the tiny preset: {tiny}")
    torch.set_num_threads(1)
    home = args.home or Path(os.environ.get("SHARPSEEK_HOME", ".sharpseek"))
    names = args.only or [*OPTION_SETS, PAPER_PRESET]
    unknown = sorted(set(names) - {*OPTION_SETS, PAPER_PRESET})
    if unknown:
        raise SystemExit(f"unknown option sets {unknown}; choose from {[*OPTION_SETS]}")
    result = json.loads(args.out.read_text()) if args.out.exists() else {"sets": {}}
    result.update(
        {
            "what": "issue 17: GAN option sets on the demo's synthetic data, measured against "
            "the frames of held-out HARPs "
            "(sharpseek.training.evaluate_models.evaluate_checkpoints)",
            "command": "benchmarks/gan_options.py --home <demo home>",
            "sharpseek": __version__,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }
    )
    with tempfile.TemporaryDirectory(prefix="sharpseek-gan-options-") as tmp:
        shutil.copytree(home / "datasets" / args.dataset, Path(tmp) / "datasets" / args.dataset)
        store = LocalStore(tmp)
        ds = load_dataset(store, args.dataset)
        result["dataset_texture"] = texture(dataset_frames(ds, TEXTURE_SAMPLES))
        for name in names:
            config = option_config(name, args.paper_epochs)
            version = f"option-{names.index(name)}"
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            run = train_gan(config, ds, store, version=version, overwrite=True, progress=False)
            seconds = time.perf_counter() - t0
            images = samples(run.generator, list(range(TEXTURE_SAMPLES)))  # seeds 0..
            if args.figures:
                print(samples_figure(images, name, config.epochs, args.figures), flush=True)
            # what the grids show: the orientation and size of the texture (gan_texture.py)
            drawn = texture(images)
            report = evaluate_checkpoints(
                store, gan=f"models/gan/{version}/last.pt", n_generated=args.samples
            )["gan"]
            result["sets"][name] = {
                "config": config.to_dict(),
                "epochs": config.epochs,
                "train_seconds": round(seconds, 1),
                "load_average_before": round(load, 2),
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "blocks": summary(report),
                "texture": drawn,
            }
            b = result["sets"][name]["blocks"]
            print(
                f"{name}: {seconds:.0f} s, KS mean "
                + " / ".join(f"{v['ks_mean']:.2f}" for v in b.values()),
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
            write_docs(args.docs, result)


def samples_figure(images: np.ndarray, name: str, epochs: int, folder: Path) -> Path:
    """The samples of seeds ``FIGURE_SEEDS`` (the same latent vectors for every set; ``images``
    (n, 128, 128) of seeds 0.., b) as magnetograms in gauss:
    ``<folder>/gan-option-<name as a slug>.png``."""
    images = images[FIGURE_SEEDS]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if len(slug) > 60:  # cut, with the full name's hash so that two long names stay apart
        slug = f"{slug[:51]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return magnetogram_grid(
        images,
        folder / f"gan-option-{slug}.png",
        titles=[f"seed {s}" for s in FIGURE_SEEDS],
        ncols=len(FIGURE_SEEDS),
        suptitle=f"{name} (epoch {epochs})",
    )


if __name__ == "__main__":
    main()
