"""``sharpseek evaluate models``: quality reports of trained checkpoints (issue 4), on the
HARPs each one held out from training.

:func:`evaluate_gan` and :func:`evaluate_encoder` measure a model (the measures are those of
:mod:`sharpseek.evaluate`); :func:`evaluate_checkpoints` rebuilds the models from their
checkpoints, opens the dataset each records and measures them on its held-out regions. This
module sits above :mod:`sharpseek.training` (it picks the held-out frames as training's epoch
measures do); :mod:`sharpseek.evaluate` sits below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from sharpseek.evaluate import (
    augmentation_robustness,
    frechet_distance,
    parameter_distances,
    retrieval_scores,
)
from sharpseek.models.augment import AUGMENTATION_SETS
from sharpseek.models.checkpoints import (
    encoder_from_checkpoint,
    generator_from_checkpoint,
    load_checkpoint,
)
from sharpseek.physics import compute_parameters
from sharpseek.training.common import subset_whole_regions

__all__ = ["evaluate_gan", "evaluate_encoder", "evaluate_checkpoints"]


def evaluate_gan(
    generator,
    real_table: pd.DataFrame,
    *,
    n: int = 1000,
    seed: int = 0,
    encoder=None,
    real_images: np.ndarray | None = None,
    chunk: int = 256,
) -> dict[str, float]:
    """Parameter distances (and, given an encoder and real images, the Frechet distance in its
    feature space) between ``n`` generated images and the real frames of ``real_table``."""
    g = torch.Generator().manual_seed(seed)
    generator.eval()
    device = next(generator.parameters()).device
    with torch.no_grad():
        z = torch.randn(n, generator.config.latent_dim, generator=g)
        fake = torch.cat([generator(zc.to(device)).float().cpu() for zc in z.split(chunk)])
    params = compute_parameters(fake[:, 0].numpy(), chunk_size=chunk)
    out = parameter_distances(params, real_table)
    if encoder is not None and real_images is not None:
        out["frechet_simsiam"] = frechet_distance(
            encoder.encode(fake).numpy(), encoder.encode(torch.as_tensor(real_images)).numpy()
        )
    out["n_generated"] = n
    out["n_real"] = len(real_table)
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
) -> dict[str, dict[str, Any]]:
    """Quality measures of checkpoints (store keys or files), on the HARPs each held out.

    ``open_dataset(name, version)`` opens the dataset a checkpoint records (default: the
    store-backed :func:`sharpseek.dataset.load_dataset`). Returns ``{"gan": {...},
    "encoder": {...}}`` for the checkpoints given.
    """
    if open_dataset is None:
        from sharpseek.dataset import load_dataset

        def open_dataset(name, version):
            return load_dataset(store, name, version)

    def held_out(ckpt):
        ds = open_dataset(ckpt["dataset"]["name"], ckpt["dataset"]["version"])
        harps = ckpt["splits"]["holdout_harpnums"]
        rows = np.flatnonzero(ds.manifest["harpnum"].isin(harps).to_numpy())
        if len(rows) < 2:  # nothing held out: measure on everything, and say so
            rows = np.arange(len(ds.manifest))
        rows = subset_whole_regions(ds.manifest, rows, max_frames, seed)
        train = np.setdiff1d(np.arange(len(ds.manifest)), rows)
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
        ds, rows, _ = held_out(ckpt)
        report["gan"] = {
            "checkpoint": str(gan),
            "epoch": ckpt["epoch"],
            **evaluate_gan(
                generator,
                ds.manifest.iloc[rows],
                n=n_generated,
                seed=seed,
                encoder=enc_model,
                real_images=ds.images(rows)[:, None] if enc_model is not None else None,
            ),
        }
    return report
