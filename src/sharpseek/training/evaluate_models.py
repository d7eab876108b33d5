"""``sharpseek evaluate models``: quality reports of trained checkpoints (issues 4, 16): the
GAN against the frames it trained on and the HARPs it held out, for two seed blocks; the
encoder on the HARPs it held out.

:func:`evaluate_generator_blocks` and :func:`evaluate_encoder` measure a model (the
measures are those of :mod:`sharpseek.science.evaluate`); :func:`evaluate_checkpoints` rebuilds the
models from their checkpoints, opens the dataset each records and measures them on its
held-out regions. This module sits above :mod:`sharpseek.training` (it picks the held-out
frames as training's epoch measures do); :mod:`sharpseek.science.evaluate` sits below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from sharpseek.data.dataset import load_dataset
from sharpseek.models.augment import AUGMENTATION_SETS
from sharpseek.models.checkpoints import (
    encoder_from_checkpoint,
    generator_from_checkpoint,
    load_checkpoint,
)
from sharpseek.models.inference import latent_from_seeds
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.evaluate import (
    SEED_BLOCKS,
    augmentation_robustness,
    frechet_distance,
    memorisation,
    realism_summary,
    retrieval_scores,
)
from sharpseek.training.common import subset_whole_regions

__all__ = ["evaluate_generator_blocks", "evaluate_encoder", "evaluate_checkpoints"]


def _generate(generator, seeds: range, chunk: int = 256) -> np.ndarray:
    """Images (n, 128, 128) float32 of the generator for ``seeds`` (one z per seed, as
    every other road: :func:`sharpseek.models.inference.latent_from_seeds`)."""
    z = torch.from_numpy(latent_from_seeds(list(seeds), generator.config.latent_dim))
    generator.eval()
    device = next(generator.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [generator(zc.to(device))[:, 0].float().cpu() for zc in z.split(chunk)]
        ).numpy()


def evaluate_generator_blocks(
    generator,
    train: tuple[np.ndarray, pd.DataFrame],
    held_out: tuple[np.ndarray, pd.DataFrame],
    *,
    n: int = 1000,
    seed_blocks: tuple[int, ...] = SEED_BLOCKS,
    encoder=None,
    chunk: int = 256,
) -> dict[str, dict[str, Any]]:
    """The generator against the frames it trained on and against held-out frames, for
    each seed block (seeds ``b .. b + n - 1``).

    ``train`` and ``held_out`` are (images (m, 128, 128), manifest rows). Per block:
    ``train`` and ``held_out`` (:func:`sharpseek.science.evaluate.realism_summary`: KS and W1/std
    per parameter, median PSEP ratio, bipolar shares, median flux imbalances, spectral share
    beyond radius 32 and its ratio; ``frechet_simsiam`` against held-out frames given an
    encoder) and ``memorisation`` (:func:`sharpseek.science.evaluate.memorisation` in
    ``pixels`` and, given an encoder, ``encoder`` space: generated and held-out frames to
    their nearest training frame).
    """
    train_images, train_table = train
    held_images, held_table = held_out
    enc_train = enc_held = None
    if encoder is not None:
        enc_train = encoder.encode(torch.as_tensor(train_images[:, None])).numpy()
        enc_held = encoder.encode(torch.as_tensor(held_images[:, None])).numpy()
    out: dict[str, dict[str, Any]] = {}
    for block in seed_blocks:
        fake = _generate(generator, range(block, block + n), chunk)
        params = compute_parameters(fake, chunk_size=chunk)
        entry: dict[str, Any] = {
            "seeds": [block, block + n - 1],
            "train": realism_summary(params, train_table, fake, train_images),
            "held_out": realism_summary(params, held_table, fake, held_images),
            "memorisation": {"pixels": memorisation(fake, held_images, train_images)},
        }
        if encoder is not None:
            enc_fake = encoder.encode(torch.as_tensor(fake[:, None])).numpy()
            entry["held_out"]["frechet_simsiam"] = frechet_distance(enc_fake, enc_held)
            entry["memorisation"]["encoder"] = memorisation(enc_fake, enc_held, enc_train)
        out[str(block)] = entry
    return out


def evaluate_encoder(
    encoder,
    images: np.ndarray,
    table: pd.DataFrame,
    augment_config,
    *,
    fit_images: np.ndarray | None = None,
    reference_table: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Same-region retrieval (encoder, PCA, physics) and augmentation robustness."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    feats = encoder.encode(x).numpy()
    scores = retrieval_scores(
        feats, images, table, fit_images=fit_images, reference_table=reference_table
    )
    out = scores.as_dict()
    out["augmentation_robustness"] = augmentation_robustness(
        encoder, x, table["harpnum"].to_numpy(), augment_config, seed=seed
    )
    out["n_frames"] = scores.n_frames
    out["n_regions"] = scores.n_regions
    return out


def evaluate_checkpoints(
    store,
    *,
    gan: str | None = None,
    encoder: str | None = None,
    open_dataset=None,
    n_generated: int = 1000,
    max_frames: int = 2000,
    seed: int = 0,
    seed_blocks: tuple[int, ...] = SEED_BLOCKS,
) -> dict[str, dict[str, Any]]:
    """Quality measures of checkpoints (store keys or files), on the HARPs each held out.

    The GAN's measures (:func:`evaluate_generator_blocks`) are taken for each of
    ``seed_blocks`` against its training frames and its held-out frames (up to
    ``max_frames`` held-out frames, whole regions, for both models; ``seed`` picks them and
    the encoder's augmentations).

    ``open_dataset(name, version)`` opens the dataset a checkpoint records (default: the
    store-backed :func:`sharpseek.data.dataset.load_dataset`). Returns ``{"gan": {...},
    "encoder": {...}}`` for the checkpoints given.
    """
    if open_dataset is None:

        def open_dataset(name, version):
            return load_dataset(store, name, version)

    def held_out(ckpt):
        ds = open_dataset(ckpt["dataset"]["name"], ckpt["dataset"]["version"])
        harps = ckpt["splits"]["holdout_harpnums"]
        held = ds.manifest["harpnum"].isin(harps).to_numpy()
        rows = np.flatnonzero(held)
        train = np.flatnonzero(~held)  # the frames of the regions it trained on
        if len(rows) < 2:  # nothing held out: measure on everything, and say so
            rows = train = np.arange(len(ds.manifest))
        rows = subset_whole_regions(ds.manifest, rows, max_frames, seed)
        return ds, rows, train

    report: dict[str, dict[str, Any]] = {}
    enc_model = None
    if encoder is not None:
        ckpt = load_checkpoint(encoder, store=store, kind="encoder")
        enc_model, aug = encoder_from_checkpoint(ckpt)
        ds, rows, train = held_out(ckpt)
        fit = np.sort(np.random.default_rng(seed).choice(train, min(2000, len(train)), False))
        report["encoder"] = {
            "checkpoint": str(encoder),
            "epoch": ckpt["epoch"],
            "augmentations": aug.name,
            **evaluate_encoder(
                enc_model,
                ds.images(rows),
                ds.manifest.iloc[rows],
                AUGMENTATION_SETS["paper"],  # one yardstick for every encoder
                fit_images=ds.images(fit),
                reference_table=ds.manifest.iloc[train],
                seed=seed,
            ),
        }
    if gan is not None:
        ckpt = load_checkpoint(gan, store=store, kind="gan")
        generator = generator_from_checkpoint(ckpt)
        ds, rows, train = held_out(ckpt)
        report["gan"] = {
            "checkpoint": str(gan),
            "epoch": ckpt["epoch"],
            "dataset": f"{ckpt['dataset']['name']}/{ckpt['dataset']['version']}",
            "n_generated": n_generated,
            "n_train": len(train),
            "n_held_out": len(rows),
            "held_out_regions": int(ds.manifest.iloc[rows]["harpnum"].nunique()),
            "encoder": str(encoder) if encoder is not None else None,
            "blocks": evaluate_generator_blocks(
                generator,
                (ds.images(train), ds.manifest.iloc[train]),
                (ds.images(rows), ds.manifest.iloc[rows]),
                n=n_generated,
                seed_blocks=seed_blocks,
                encoder=enc_model,
            ),
        }
    return report
