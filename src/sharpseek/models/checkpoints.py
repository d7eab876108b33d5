"""Checkpoints read back: where they live, what makes one valid, and each model rebuilt from
the file alone (the config it stores), without the training code.

Layout in the store (local folder or MinIO), one folder per training run::

    models/<kind>/<version>/epoch-0003.pt     every epoch (resumable: model, optimiser, RNG)
    models/<kind>/<version>/last.pt           the latest epoch (what --resume continues)
    models/<kind>/<version>/best.pt           the model the project uses by default

``kind`` is ``gan`` or ``encoder``. A checkpoint is a dict of plain Python values and tensors
(it loads with ``torch.load(weights_only=True)``): ``kind``, ``format``, ``config`` (the
training config as a dict, with the model's config under ``config["model"]`` and, for an
encoder, its augmentation set under ``config["augment"]``), the weights (``generator`` and
``discriminator``, or ``model``) and what training needs to resume
(:mod:`sharpseek.training.loop` writes them).

This module sits below :mod:`sharpseek.training`, so inference (a TorchServe worker, the UI)
loads models without importing DDP, data loaders or progress bars.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from sharpseek import __version__
from sharpseek.data.object_store import check_key
from sharpseek.models.augment import AugmentConfig
from sharpseek.models.gan import Discriminator, GANConfig, Generator
from sharpseek.models.simsiam import SimSiam, SimSiamConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "KINDS",
    "checkpoint_key",
    "load_checkpoint",
    "generator_from_checkpoint",
    "discriminator_from_checkpoint",
    "encoder_from_checkpoint",
    "load_generator",
    "load_discriminator",
    "load_encoder",
]

#: Bump when the checkpoint layout changes incompatibly.
CHECKPOINT_FORMAT = 1
#: The model kinds this project trains (folder names under ``models/``).
KINDS = ("gan", "encoder")


def checkpoint_key(kind: str, version: str, name: str) -> str:
    """``models/<kind>/<version>/<name>``; ``name`` e.g. ``best.pt`` or ``epoch-0003.pt``."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(KINDS)}")
    if not version or "/" in version:
        raise ValueError(f"a run version must be a non-empty name without '/', got {version!r}")
    return f"models/{kind}/{version}/{name}"


def load_checkpoint(
    source: str | os.PathLike[str], *, store=None, kind: str | None = None
) -> dict[str, Any]:
    """Load a sharpseek checkpoint from a file path or a store key.

    Parameters
    ----------
    source : str or path
        A ``.pt`` file on disk, or a key in ``store`` such as ``models/gan/tiny-seed0/best.pt``.
    store : ObjectStore, optional
        Where keys are looked up (a path that exists on disk is read directly).
    kind : {"gan", "encoder"}, optional
        The expected model kind; another kind is an error naming both.

    Raises
    ------
    FileNotFoundError
        Neither a file nor a key in the store.
    ValueError
        Not a sharpseek checkpoint, or one of another kind, or of an unknown format.
    """
    path = Path(source)
    if path.is_file():
        data = path.read_bytes()
    elif store is not None and _is_key(str(source)) and store.exists(str(source)):
        data = store.get_bytes(str(source))
    else:
        where = f" nor a key in {store.describe()}" if store is not None else ""
        raise FileNotFoundError(f"no checkpoint at {str(source)!r}: not a file{where}")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{str(source)!r} is not a readable sharpseek checkpoint ({first_line})"
        ) from err
    if not isinstance(payload, dict) or payload.get("kind") not in KINDS:
        raise ValueError(f"{str(source)!r} is not a sharpseek checkpoint (no model kind in it)")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(source)!r} has checkpoint format {payload.get('format')!r}; this sharpseek "
            f"({__version__}) reads format {CHECKPOINT_FORMAT}"
        )
    if kind is not None and payload["kind"] != kind:
        raise ValueError(
            f"{str(source)!r} is a {payload['kind']} checkpoint, not the {kind} checkpoint "
            "expected here"
        )
    return payload


def _is_key(text: str) -> bool:
    try:
        check_key(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Each model rebuilt from a loaded checkpoint (the one implementation per model)


def generator_from_checkpoint(
    ckpt: dict[str, Any], device: str | torch.device = "cpu"
) -> Generator:
    """The :class:`Generator` of a loaded GAN checkpoint, in eval mode."""
    G = Generator(GANConfig.from_dict(ckpt["config"]["model"]))
    G.load_state_dict(ckpt["generator"])
    return G.to(device).eval()


def discriminator_from_checkpoint(
    ckpt: dict[str, Any], device: str | torch.device = "cpu"
) -> Discriminator:
    """The :class:`Discriminator` of a loaded GAN checkpoint, in eval mode."""
    D = Discriminator(GANConfig.from_dict(ckpt["config"]["model"]))
    D.load_state_dict(ckpt["discriminator"])
    return D.to(device).eval()


def encoder_from_checkpoint(
    ckpt: dict[str, Any], device: str | torch.device = "cpu"
) -> tuple[SimSiam, AugmentConfig]:
    """The :class:`SimSiam` model of a loaded encoder checkpoint, in eval mode, and the
    augmentation set it was trained with."""
    model = SimSiam(SimSiamConfig.from_dict(ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), AugmentConfig.from_dict(ckpt["config"]["augment"])


# ---------------------------------------------------------------------------------------------
# The same, from a path or a store key


def load_generator(source, *, store=None, device: str | torch.device = "cpu") -> Generator:
    """The generator of a GAN checkpoint (path or store key), in eval mode."""
    return generator_from_checkpoint(load_checkpoint(source, store=store, kind="gan"), device)


def load_discriminator(source, *, store=None, device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator of a GAN checkpoint (path or store key), in eval mode."""
    return discriminator_from_checkpoint(load_checkpoint(source, store=store, kind="gan"), device)


def load_encoder(
    source, *, store=None, device: str | torch.device = "cpu"
) -> tuple[SimSiam, AugmentConfig]:
    """The SimSiam model of an encoder checkpoint (path or store key), in eval mode, and the
    augmentation set it was trained with. ``model.encode(images)`` gives the indexed vectors."""
    return encoder_from_checkpoint(load_checkpoint(source, store=store, kind="encoder"), device)
