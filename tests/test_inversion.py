"""GAN inversion: an oracle case (the image was generated from a known z, so a perfect
reconstruction exists), the fast method against the slow reference on it, the warning of a
patch the GAN cannot represent, and bad input. An untrained, seeded generator is enough:
inversion only needs G to be differentiable in z."""

import numpy as np
import pytest
import torch

from sharpseek.config import DirectionsSettings, Settings
from sharpseek.models.inference import GeneratorModel
from sharpseek.science.inversion import invert, invert_configured, representation_warning

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


def test_fast_inversion_is_no_worse_than_the_slow_reference_on_known_answers(generator):
    # the settings' method (nearest of random candidates, then L-BFGS) against the Adam
    # reference of 300 steps, on images whose answer is known (generated from z_true)
    for seed in (21, 22):
        image = generator.generate(generator.latent(seed))[0]
        fast = invert_configured(generator, image, DirectionsSettings(), seed=1)
        slow = invert(generator, image, method="adam", starts=8, steps=300, lr=0.05, seed=1)
        assert fast.error <= slow.error * 1.05 + 1e-7, (seed, fast.error, slow.error)
        assert fast.relative_error < 0.05  # it found the image, not just something close


def test_adam_reference_method_still_reconstructs(generator):
    z_true = generator.latent([11, 12])
    images = generator.generate(z_true)
    result = invert(generator, images[0], method="adam", starts=4, steps=150, seed=1)
    between = float(np.mean((images[0] - images[1]) ** 2))
    assert result.error < 0.02 * between
    assert result.history.shape == (150,) and result.history[-1] < result.history[0]


def test_invert_configured_takes_the_settings_and_overrides(generator):
    image = generator.generate(generator.latent(5))[0]
    cfg = DirectionsSettings(
        inversion_starts=3, inversion_candidates=10, inversion_steps=4, inversion_threads=2
    )
    before = torch.get_num_threads()
    result = invert_configured(generator, image, cfg, starts=2)
    assert torch.get_num_threads() == before  # its own thread count, then torch's again
    assert result.z_all.shape == (2, generator.latent_dim)  # the override won
    assert result.history[-1] <= result.history[0]


def test_a_patch_the_gan_cannot_draw_is_warned_about_and_a_drawable_one_is_not(generator):
    cfg = DirectionsSettings()
    drawable = invert_configured(generator, generator.generate(generator.latent(8))[0], cfg)
    assert representation_warning(drawable, cfg) is None
    checkerboard = np.indices((128, 128)).sum(axis=0) % 2 * 1.6 - 0.8  # +-800 G, 1 px
    hopeless = invert_configured(generator, checkerboard, cfg, steps=20)
    assert hopeless.relative_error > cfg.inversion_warn_relative
    message = representation_warning(hopeless, cfg)
    assert message.startswith("The GAN cannot represent this patch")
    assert f"{hopeless.rms_gauss:.0f} G" in message
    # the threshold is the setting's: a laxer one stays quiet about the same result
    lax = DirectionsSettings(inversion_warn_relative=hopeless.relative_error + 0.01)
    assert representation_warning(hopeless, lax) is None


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
    ids=["shape", "nan", "gauss"],
)
def test_inversion_refuses_what_is_not_a_model_space_image(generator, image, message):
    with pytest.raises(ValueError, match=message):
        invert(generator, image, steps=1)


def test_inversion_refuses_an_unknown_method(generator):
    with pytest.raises(ValueError, match="unknown inversion method 'sgd'"):
        invert(generator, np.zeros((128, 128)), method="sgd")
