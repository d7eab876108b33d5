"""How generated textures are oriented and sized beside the data's: what the sample grids show
and the generator targets do not measure (issue 17: vertical bands, blocks, worms).

For the dataset's frames and for each generator given, on model-space images b:

- gradient anisotropy <(db/dx)^2> / <(db/dy)^2> over the pixels of three bands of |b|
  (20-100 G, 100-300 G, > 300 G): 1 for isotropic structure, > 1 for structure drawn
  narrower across (x) than along (y);
- the size of strong-field structure: the share of the pixels with |b| > 100 G whose
  neighbour 2 px away (along x, along y) is strong too (larger: wider structure);
- the lattice: the gradient energy <(db/dx)^2> at each of the 8 column phases x mod 8, the
  largest over their mean (``lattice_x``; ``lattice_y`` for rows and db/dy). Structure that
  knows no grid gives ~1 (the data: 1.02-1.03); the blocks of nearest-neighbour doubling,
  whose edges fall on the same columns in every image, give more;

and a figure: the samples of seeds 0..3 of each generator (rows) beside four of the dataset's
frames, at full resolution and one colour scale in gauss.

    .venv/bin/python benchmarks/gan_texture.py --home <demo home> \\
        [--generator LABEL=CHECKPOINT ...] \\
        --out benchmarks/results/gan_texture.json --figure docs/images/gan-texture.png

Without ``--generator``: the home's GAN (its settings' ``models.gan`` and ``gan_checkpoint``),
as ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sharpseek.config import Settings
from sharpseek.data.dataset import load_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import load_generator
from sharpseek.models.inference import latent_from_seeds
from sharpseek.science.plotting import FIELD_SCALE_G, magnetogram_grid

#: |b| bands [G] of the gradient anisotropy.
BANDS_G = ((20.0, 100.0), (100.0, 300.0), (300.0, np.inf))
#: |b| [G] above which a pixel counts as strong field for the structure size.
STRONG_G = 100.0
#: Period [px] of the grid whose phases the lattice measure compares (the blocks of a
#: generator's 16 px doubling are 8 px wide at 128 px).
LATTICE_PX = 8
FIGURE_SEEDS = [0, 1, 2, 3]
FIGURE_FRAMES = [5, 400, 1200, 2000]


def texture(images: np.ndarray) -> dict[str, float]:
    """Anisotropy per |b| band and strong-field neighbour shares of images (n, 128, 128)."""
    b = np.asarray(images, dtype=np.float64) * FIELD_SCALE_G  # gauss
    dx = np.diff(b, axis=2)[:, :-1, :]  # (n, 127, 127): d/dx at each pixel
    dy = np.diff(b, axis=1)[:, :, :-1]
    size = np.abs(b[:, :-1, :-1])
    out = {}
    for low, high in BANDS_G:
        band = (size > low) & (size <= high)
        name = f"anisotropy_{low:.0f}_{'up' if np.isinf(high) else f'{high:.0f}'}_G"
        out[name] = float(np.mean(dx[band] ** 2) / np.mean(dy[band] ** 2))
    strong = np.abs(b) > STRONG_G
    count = max(int(strong.sum()), 1)
    out["strong_neighbour_x"] = float((strong[:, :, 2:] & strong[:, :, :-2]).sum() / count)
    out["strong_neighbour_y"] = float((strong[:, 2:, :] & strong[:, :-2, :]).sum() / count)
    out["strong_share"] = float(strong.mean())
    out["lattice_x"], out["lattice_y"] = lattice(dx**2, axis=2), lattice(dy**2, axis=1)
    return out


def lattice(energy: np.ndarray, axis: int) -> float:
    """The largest mean of ``energy`` (n, h, w) over the positions of one phase (index mod
    ``LATTICE_PX`` along ``axis``) over the mean of the phases' means."""
    phases = [np.take(energy, np.arange(k, energy.shape[axis], LATTICE_PX), axis).mean()
              for k in range(LATTICE_PX)]  # fmt: skip
    return float(max(phases) / np.mean(phases))


def samples(generator, seeds: list[int]) -> np.ndarray:
    """The images (n, 128, 128) of ``seeds`` drawn by ``generator`` (a Generator)."""
    z = torch.from_numpy(latent_from_seeds(seeds, generator.config.latent_dim))
    with torch.no_grad():
        return generator.eval()(z)[:, 0].numpy()


def generated(path: Path, seeds: list[int]) -> np.ndarray:
    return samples(load_generator(path), seeds)


def home_gan(home: Path) -> str:
    """``LABEL=CHECKPOINT`` of the GAN a home's settings name (the one it searches with)."""
    models = Settings(home=home).models
    path = home / "models" / "gan" / models.gan / f"{models.gan_checkpoint}.pt"
    return f"the home's GAN ({models.gan}, {models.gan_checkpoint})={path}"


def dataset_frames(ds, n: int) -> np.ndarray:
    """About ``n`` frames (m, 128, 128) spread evenly over the dataset."""
    step = max(1, len(ds) // n)
    return np.asarray(ds.images(range(0, len(ds), step)), dtype=np.float32)


def figure(rows: dict[str, np.ndarray], path: Path) -> Path:
    """Four images of each row (label -> images), one row each, in gauss on one scale."""
    images = np.concatenate([images[:4] for images in rows.values()])
    titles = [f"{label}, {i}" for label in rows for i in range(4)]
    return magnetogram_grid(
        images,
        path,
        titles=titles,
        ncols=4,
        suptitle="seeds 0-3 of each generator; last row: dataset frames (model space, 128 px)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--generator", action="append", default=[], help="LABEL=CHECKPOINT")
    parser.add_argument("--samples", type=int, default=400, help="generated images each")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(LocalStore(args.home), args.dataset)
    frames = dataset_frames(ds, args.samples)
    result = {"dataset": {"images": len(frames), **texture(frames)}}
    rows = {}
    specs = args.generator or [home_gan(args.home)]
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--generator {spec!r}: write LABEL=CHECKPOINT")
        images = generated(Path(path), list(range(args.samples)))
        result[label] = {"checkpoint": path, "images": len(images), **texture(images)}
        rows[label] = images[: len(FIGURE_SEEDS)]
    for label, row in result.items():
        print(label, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        rows["dataset frames"] = np.asarray(ds.images(FIGURE_FRAMES), dtype=np.float32)
        print(figure(rows, args.figure))


if __name__ == "__main__":
    main()
