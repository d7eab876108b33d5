"""A small, complete SHARPSEEK_HOME for the UI tests: untrained models (model_fixtures),
directions fitted and calibrated on a few hundred generated images, and an index of a tiny
synthetic dataset embedded by the untrained encoder. Built once per test session (seconds).

Use with ``pytest_plugins = ["model_fixtures", "ui_fixtures"]``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpseek.config import Settings


def build_ui_home(settings: Settings) -> dict:
    """Fit directions and index a tiny synthetic dataset in ``settings``' home."""
    from ingest_fixtures import synthetic_dataset
    from model_fixtures import write_untrained_checkpoints
    from sharpseek.data.dataset import load_dataset
    from sharpseek.models.inference import EncoderModel, GeneratorModel
    from sharpseek.science.directions import calibrate, fit_directions
    from sharpseek.search.index import iter_batches, open_index_from_settings
    from sharpseek.search.spaces import space_vectors

    torch.set_num_threads(1)
    write_untrained_checkpoints(settings)
    gen = GeneratorModel.from_settings(settings)
    directions = fit_directions(
        gen.generate,
        gan_version=gen.version,
        latent_dim=gen.latent_dim,
        n=300,
        parameters=("tuf", "psep", "r", "sigma", "grad"),
    )
    calibrate(gen.generate, directions, eps=np.linspace(-3, 3, 5), n_z=20)
    from sharpseek.data.store import open_store

    directions.save(open_store(settings))
    dataset = synthetic_dataset(settings, regions=12, frames=3)
    enc = EncoderModel.from_settings(settings)
    rows, vectors = [], []
    for group, images in dataset.iter_shards():
        rows.append(group)
        vectors.append(space_vectors(enc.embed, images, settings.index.spaces))  # both spaces
    import pandas as pd

    index = open_index_from_settings(settings)
    index.reindex(
        enc.version,
        iter_batches(
            pd.concat(rows), {s: np.concatenate([v[s] for v in vectors]) for s in vectors[0]}
        ),
        dataset_version=dataset.version,
    )
    index.close()
    return {"gan": gen.version, "encoder": enc.version, "dataset": load_dataset}


@pytest.fixture(scope="session")
def ui_home_path(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui") / "home"
    build_ui_home(Settings(home=home, preset="tiny"))
    return home


@pytest.fixture
def ui_home(ui_home_path, monkeypatch):
    """SHARPSEEK_HOME with models, directions and an index; yields the settings. GAN
    inversion is cut to 40 steps from 2 starts (a second or two; the UI tests check its
    wiring, tests/test_inversion.py its accuracy)."""
    monkeypatch.setenv("SHARPSEEK_HOME", str(ui_home_path))
    monkeypatch.setenv("SHARPSEEK_DIRECTIONS__INVERSION_STEPS", "40")
    monkeypatch.setenv("SHARPSEEK_DIRECTIONS__INVERSION_STARTS", "2")
    return Settings(home=ui_home_path, preset="tiny")
