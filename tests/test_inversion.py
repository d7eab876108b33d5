"""GAN inversion: an oracle case (the image was generated from a known z, so a perfect
reconstruction exists) and bad input. An untrained, seeded generator is enough: inversion
only needs G to be differentiable in z."""

import numpy as np
import pytest
import torch

from sharpseek.config import Settings
from sharpseek.models.inference import GeneratorModel
from sharpseek.science.inversion import invert

pytest_plugins = ["model_fixtures"]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    from model_fixtures import write_untrained_checkpoints

    settings = Settings(home=tmp_path_factory.mktemp("home"), preset="tiny")
    write_untrained_checkpoints(settings)
    return GeneratorModel.from_settings(settings)


def test_inversion_reconstructs_an_image_generated_from_a_known_z(generator):
    z_true = generator.latent([11, 12])
    images = generator.generate(z_true)
    result = invert(generator, images[0], starts=4, steps=150, seed=1)
    between = float(np.mean((images[0] - images[1]) ** 2))  # how far another AR lies
    assert result.error < 0.02 * between
    np.testing.assert_allclose(result.reconstruction, generator.generate(result.z)[0], atol=1e-5)
    assert result.errors.shape == (4,) and result.z_all.shape == (4, generator.latent_dim)
    assert result.error == pytest.approx(result.errors.min())
    assert result.history[-1] < result.history[0]  # the error fell


def test_inversion_leaves_the_generator_unchanged(generator):
    before = [p.detach().clone() for p in generator.generator.parameters()]
    invert(generator, generator.generate(generator.latent(3))[0], starts=2, steps=5)
    for a, b in zip(before, generator.generator.parameters(), strict=True):
        assert torch.equal(a, b) and b.requires_grad


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64)), r"model-space \(128, 128\) array, got \(64, 64\)"),
        (np.full((128, 128), np.nan), "NaN or infinite"),
        (np.full((128, 128), 500.0), "not model space"),
    ],
)
def test_inversion_refuses_what_is_not_a_model_space_image(generator, image, message):
    with pytest.raises(ValueError, match=message):
        invert(generator, image, steps=1)
