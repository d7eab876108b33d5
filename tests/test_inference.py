"""In-process models: loading by settings, versions, shapes, seeds, bad input."""

import numpy as np
import pytest

from sharpseek.data.store import open_store
from sharpseek.models.inference import (
    EncoderModel,
    GeneratorModel,
    checkpoint_name,
    latent_from_seeds,
)

pytest_plugins = ["model_fixtures"]


def test_checkpoint_names():
    assert checkpoint_name("best") == "best.pt"
    assert checkpoint_name("last.pt") == "last.pt"
    assert checkpoint_name("epoch-7") == "epoch-0007.pt"
    with pytest.raises(ValueError, match="expected best, last or epoch"):
        checkpoint_name("newest")


def test_seeds_are_reproducible_and_distinct():
    a = latent_from_seeds([1, 2], 100)
    assert a.shape == (2, 100) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0], latent_from_seeds(1, 100)[0])
    assert not np.allclose(a[0], a[1])
    with pytest.raises(ValueError, match="non-negative"):
        latent_from_seeds([-1], 100)


def test_generator_from_settings(untrained_home):
    model = GeneratorModel.from_settings(untrained_home)
    assert model.version.startswith("tiny-seed0-e0001-")
    images = model.generate(model.latent([3, 4, 5]))
    assert images.shape == (3, 128, 128) and images.dtype == np.float32
    assert np.abs(images).max() <= 1.0
    # chunked generation gives what one batch gives
    model.batch_size = 2
    np.testing.assert_allclose(model.generate(model.latent([3, 4, 5])), images, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n, 100\)"):
        model.generate(np.zeros((2, 7)))
    with pytest.raises(ValueError, match="NaN"):
        model.generate(np.full((1, 100), np.nan))


def test_version_changes_with_weights(untrained_home):
    first = GeneratorModel.from_settings(untrained_home).version
    from model_fixtures import write_untrained_checkpoints

    write_untrained_checkpoints(untrained_home, seed=1)
    assert GeneratorModel.from_settings(untrained_home).version != first


def test_encoder_embeds(untrained_home):
    model = EncoderModel.from_settings(untrained_home)
    images = np.random.default_rng(0).uniform(-1, 1, (5, 128, 128)).astype(np.float32)
    vectors = model.embed(images)
    assert vectors.shape == (5, model.dim) and np.isfinite(vectors).all()
    np.testing.assert_allclose(model.embed(images[2]), vectors[2:3], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        model.embed(np.zeros((2, 64, 64)))
    with pytest.raises(ValueError, match="NaN"):
        model.embed(np.full((1, 128, 128), np.nan))


def test_missing_run_names_the_key(untrained_home):
    settings = untrained_home.model_copy(
        update={"models": untrained_home.models.model_copy(update={"gan": "no-such-run"})}
    )
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        GeneratorModel.from_settings(settings, store=open_store(settings))
