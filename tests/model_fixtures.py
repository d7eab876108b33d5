"""Untrained (seeded, random-weight) GAN and encoder checkpoints in a store, in seconds.

For tests of the plumbing around models (loading, serving, search, directions CLI) where
what the weights learned does not matter. Use with ``pytest_plugins = ["model_fixtures"]``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.training.common import checkpoint_header, checkpoint_key


def write_untrained_checkpoints(settings: Settings, *, seed: int = 0, epoch: int = 1) -> dict:
    """Write ``settings.models``' GAN and encoder runs as untrained ``tiny`` checkpoints.

    Returns the store keys ``{"gan": ..., "encoder": ...}``.
    """
    from sharpseek.models.gan import Discriminator, Generator
    from sharpseek.models.inference import checkpoint_name
    from sharpseek.models.simsiam import SimSiam
    from sharpseek.training.encoder import encoder_train_config
    from sharpseek.training.gan import gan_train_config

    store = open_store(settings)
    dataset = SimpleNamespace(name="synthetic", version="untrained-test")
    torch.manual_seed(seed)
    gan_config = gan_train_config("tiny")
    enc_config = encoder_train_config("tiny")
    gan_key = checkpoint_key(
        "gan", settings.models.gan, checkpoint_name(settings.models.gan_checkpoint)
    )
    enc_key = checkpoint_key(
        "encoder", settings.models.encoder, checkpoint_name(settings.models.encoder_checkpoint)
    )
    payloads = {
        gan_key: {
            **checkpoint_header("gan", "tiny", dataset, gan_config.to_dict()),
            "epoch": epoch,
            "generator": Generator(gan_config.model).state_dict(),
            "discriminator": Discriminator(gan_config.model).state_dict(),
        },
        enc_key: {
            **checkpoint_header("encoder", "tiny", dataset, enc_config.to_dict()),
            "epoch": epoch,
            "model": SimSiam(enc_config.model).state_dict(),
        },
    }
    for key, payload in payloads.items():
        import io

        buffer = io.BytesIO()
        torch.save(payload, buffer)
        store.put_bytes(key, buffer.getvalue())
    return {"gan": gan_key, "encoder": enc_key}


@pytest.fixture
def untrained_home(tmp_path, monkeypatch):
    """A SHARPSEEK_HOME holding untrained tiny GAN and encoder checkpoints (the settings'
    default runs), with SHARPSEEK_HOME pointing at it. Yields the settings."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHARPSEEK_HOME", str(home))
    settings = Settings(home=home, preset="tiny")
    write_untrained_checkpoints(settings)
    return settings
