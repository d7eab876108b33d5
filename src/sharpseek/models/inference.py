"""Trained models in-process: generate images from latent vectors, embed images.

The one place that turns a checkpoint into something that answers queries. The model
backends (TorchServe handlers, the in-process backend), search, directions and the UI all
go through :class:`GeneratorModel` and :class:`EncoderModel`.

Model versions are content-addressed: ``<run>-e<epoch>-<sha256 of the weights, 8 hex>``, so
a retrained run with the same name never passes for the old one (directions and index
collections are stored per version).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.models.checkpoints import (
    checkpoint_key,
    encoder_from_checkpoint,
    generator_from_checkpoint,
    load_checkpoint,
)
from sharpseek.physics.definitions import MODEL_SIZE

__all__ = [
    "GeneratorModel",
    "EncoderModel",
    "latent_from_seeds",
    "checkpoint_name",
    "weights_digest",
]


def checkpoint_name(name: str) -> str:
    """``best`` / ``last`` / ``epoch-0007`` / ``epoch-7`` -> the file name in a run folder."""
    if name.endswith(".pt"):
        name = name[:-3]
    if name.startswith("epoch-"):
        number = name.removeprefix("epoch-")
        if not number.isdigit():
            raise ValueError(f"checkpoint {name!r}: expected best, last or epoch-<number>")
        return f"epoch-{int(number):04d}.pt"
    if name not in ("best", "last"):
        raise ValueError(f"checkpoint {name!r}: expected best, last or epoch-<number>")
    return f"{name}.pt"


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """First 8 hex digits of the SHA-256 of a state dict's tensors (names and bytes)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        buffer = io.BytesIO()
        np.save(buffer, state_dict[key].detach().cpu().float().numpy(), allow_pickle=False)
        digest.update(buffer.getvalue())
    return digest.hexdigest()[:8]


def latent_from_seeds(seeds: Sequence[int] | int, latent_dim: int) -> np.ndarray:
    """The latent vector of each seed: ``default_rng(seed).standard_normal(latent_dim)``.

    Returns
    -------
    ndarray (n, latent_dim) float32. The same seed gives the same z everywhere (UI, CLI,
    TorchServe), so a seed is a shareable name for a generated active region.
    """
    seeds = [seeds] if isinstance(seeds, int | np.integer) else list(seeds)
    for seed in seeds:
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed {seed!r}: seeds are non-negative integers")
    if not seeds:
        return np.zeros((0, latent_dim), np.float32)
    return np.stack(
        [np.random.default_rng(int(s)).standard_normal(latent_dim) for s in seeds]
    ).astype(np.float32)


def _model_key(kind: str, run: str, checkpoint: str) -> str:
    return checkpoint_key(kind, run, checkpoint_name(checkpoint))


@dataclass
class GeneratorModel:
    """A trained generator, ready to turn latent vectors into model-space images.

    Attributes
    ----------
    generator : the :class:`~sharpseek.models.gan.Generator`, in eval mode
    version : ``<run>-e<epoch>-<digest>``; directions are stored under it
    latent_dim : length of z
    source : where it was loaded from (a store key or a path)
    dataset : ``{"name", "version"}`` the GAN was trained on
    """

    generator: torch.nn.Module
    version: str
    latent_dim: int
    source: str
    dataset: dict
    batch_size: int = 256

    @classmethod
    def from_checkpoint(cls, source, *, store=None, device="cpu") -> GeneratorModel:
        """Load a GAN checkpoint (a path, or a key in ``store``)."""
        ckpt = load_checkpoint(source, store=store, kind="gan")
        generator = generator_from_checkpoint(ckpt, device)
        return cls(
            generator=generator,
            version=_model_version(ckpt, source, "generator"),
            latent_dim=generator.config.latent_dim,
            source=str(source),
            dataset=dict(ckpt.get("dataset") or {}),
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, store=None) -> GeneratorModel:
        """The GAN named by ``settings.models`` (run and checkpoint), from the settings' store."""
        store = store if store is not None else open_store(settings)
        key = _model_key("gan", settings.models.gan, settings.models.gan_checkpoint)
        return cls.from_checkpoint(key, store=store, device=settings.torch_device())

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def latent(self, seeds: Sequence[int] | int) -> np.ndarray:
        """z for seeds, shape (n, latent_dim) float32 (see :func:`latent_from_seeds`)."""
        return latent_from_seeds(seeds, self.latent_dim)

    @torch.no_grad()
    def generate(self, z: np.ndarray) -> np.ndarray:
        """Model-space images of latent vectors.

        Parameters
        ----------
        z : array (n, latent_dim) or (latent_dim,), finite

        Returns
        -------
        ndarray (n, 128, 128) float32 in [-1, 1] (b = B_r / 1000 G, clipped; SCIENCE.md)
        """
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"latent vectors must have shape (n, {self.latent_dim}), got {tuple(z.shape)}"
            )
        if not np.isfinite(z).all():
            raise ValueError("latent vectors contain NaN or infinite values")
        out = np.empty((len(z), MODEL_SIZE, MODEL_SIZE), np.float32)
        for start in range(0, len(z), self.batch_size):
            chunk = torch.from_numpy(z[start : start + self.batch_size]).to(self.device)
            out[start : start + len(chunk)] = self.generator(chunk)[:, 0].float().cpu().numpy()
        return out

    __call__ = generate


@dataclass
class EncoderModel:
    """A trained SimSiam encoder, ready to embed model-space images.

    Attributes
    ----------
    model : the :class:`~sharpseek.models.simsiam.SimSiam`, in eval mode
    version : ``<run>-e<epoch>-<digest>``; index collections are named after it
    dim : length of an embedding
    augment : name of the augmentation set it was trained with
    """

    model: torch.nn.Module
    version: str
    dim: int
    source: str
    augment: str
    dataset: dict
    batch_size: int = 256

    @classmethod
    def from_checkpoint(cls, source, *, store=None, device="cpu") -> EncoderModel:
        """Load an encoder checkpoint (a path, or a key in ``store``)."""
        ckpt = load_checkpoint(source, store=store, kind="encoder")
        model, augmentations = encoder_from_checkpoint(ckpt, device)
        return cls(
            model=model,
            version=_model_version(ckpt, source, "model"),
            dim=model.config.dim,
            source=str(source),
            augment=augmentations.name,
            dataset=dict(ckpt.get("dataset") or {}),
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, store=None) -> EncoderModel:
        """The encoder named by ``settings.models``, from the settings' store."""
        store = store if store is not None else open_store(settings)
        key = _model_key("encoder", settings.models.encoder, settings.models.encoder_checkpoint)
        return cls.from_checkpoint(key, store=store, device=settings.torch_device())

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of model-space images.

        Parameters
        ----------
        images : array (n, 128, 128) or (128, 128), finite, in [-1, 1]

        Returns
        -------
        ndarray (n, dim) float32
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (MODEL_SIZE, MODEL_SIZE):
            raise ValueError(
                f"images must have shape (n, {MODEL_SIZE}, {MODEL_SIZE}), got {tuple(images.shape)}"
            )
        if not np.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        tensor = torch.from_numpy(images)
        return self.model.encode(tensor, batch_size=self.batch_size).numpy()

    __call__ = embed


def _model_version(ckpt: dict, source, weights: str) -> str:
    """``<run>-e<epoch>-<digest of ckpt[weights]>``: the version of a loaded checkpoint."""
    run = ckpt.get("version") or _run_from_source(str(source))
    return f"{run}-e{int(ckpt.get('epoch', 0)):04d}-{weights_digest(ckpt[weights])}"


def _run_from_source(source: str) -> str:
    """``models/gan/<run>/best.pt`` -> ``<run>``; a bare file -> its stem."""
    parts = source.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else parts[-1].removesuffix(".pt")
