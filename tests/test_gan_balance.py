"""The flux balance of GAN training (GANTrainConfig.balance_weight, sharpseek.training.codes):
the differentiable imbalance against the physics module's TPF and TNF on bipoles of known
flux, its scale over frames, a loss whose gradient balances an image, the evaluation's
figure, and a micro run."""

import numpy as np
import pandas as pd
import pytest
import torch

from ingest_fixtures import micro_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import load_checkpoint
from sharpseek.physics.parameters import compute_parameters
from sharpseek.physics.surrogates import soft_flux_imbalance
from sharpseek.science.evaluate import realism_summary
from sharpseek.training.codes import balance_loss, balance_scale
from sharpseek.training.gan import GANTrainConfig, gan_train_config, train_gan

pytestmark = pytest.mark.usefixtures("one_thread")


def _bipole(positive_peak: float, negative_peak: float, width: float = 5.0) -> np.ndarray:
    """(128, 128) in b: Gaussian spots of these peaks [b] 30 px apart, flat elsewhere."""
    yy, xx = np.mgrid[:128, :128].astype(float)
    spot = lambda x0: np.exp(-((yy - 64) ** 2 + (xx - x0) ** 2) / (2 * width**2))  # noqa: E731
    return positive_peak * spot(49) - negative_peak * spot(79)


@pytest.mark.parametrize("negative_peak", [0.8, 0.6, 0.4, 0.25])
def test_soft_imbalance_follows_tpf_and_tnf_of_the_physics_module(negative_peak):
    image = _bipole(0.8, negative_peak)
    hard = compute_parameters(image[None])
    expected = (hard["tpf"][0] - hard["tnf"][0]) / (hard["tpf"][0] + hard["tnf"][0])
    soft = soft_flux_imbalance(torch.from_numpy(image).float()[None, None])
    # soft masks (a sigmoid 20 G wide) move a few per cent of the flux across the threshold
    assert soft.item() == pytest.approx(expected, abs=0.02)
    if negative_peak == 0.8:
        assert abs(soft.item()) < 1e-5  # a balanced bipole
    else:
        assert soft.item() > 0.1  # the weaker negative spot leaves net positive flux


def test_a_polarity_flip_flips_the_sign_and_an_empty_image_is_zero():
    image = torch.from_numpy(_bipole(0.8, 0.4)).float()[None, None]
    assert soft_flux_imbalance(-image).item() == pytest.approx(-soft_flux_imbalance(image).item())
    assert soft_flux_imbalance(torch.zeros(1, 1, 128, 128)).item() == 0.0


def test_balance_scale_is_the_rms_imbalance_of_the_frames_with_a_floor():
    frames = np.stack([_bipole(0.8, p) for p in (0.8, 0.6, 0.4)])
    u = soft_flux_imbalance(torch.from_numpy(frames).float()[:, None]).double()
    assert balance_scale(frames) == pytest.approx(float(u.pow(2).mean().sqrt()), rel=1e-6)
    assert balance_scale(np.stack([_bipole(0.8, 0.8)] * 2)) == 0.01  # exactly balanced


def test_the_loss_is_zero_when_balanced_and_its_gradient_balances_an_image():
    balanced = torch.from_numpy(_bipole(0.8, 0.8)).float()[None, None]
    assert balance_loss(balanced, 0.05).item() < 1e-8
    image = torch.from_numpy(_bipole(0.8, 0.3)).float()[None, None].requires_grad_(True)
    before = soft_flux_imbalance(image).item()
    optimiser = torch.optim.SGD([image], lr=0.5)
    for _ in range(50):
        optimiser.zero_grad()
        balance_loss(image, 0.05).backward()
        optimiser.step()
    after = soft_flux_imbalance(image.detach()).item()
    assert before > 0.2 and abs(after) < 0.3 * before


def test_a_negative_weight_is_refused_and_old_configs_have_it_off():
    with pytest.raises(ValueError, match="balance_weight"):
        gan_train_config("tiny", balance_weight=-1.0)
    old = GANTrainConfig.from_dict({"preset": "tiny", "model": {"latent_dim": 100}})
    assert old.balance_weight == 0.0
    assert gan_train_config("paper").balance_weight == 0.0


def test_the_realism_summary_reports_the_median_imbalance_of_each_side():
    images = np.stack([_bipole(0.8, p) for p in (0.8, 0.4, 0.4, 0.6)])
    table = pd.DataFrame(compute_parameters(images))
    summary = realism_summary(table.iloc[1:], table.iloc[:1], images[1:], images[:1])
    u = np.abs((table.tpf - table.tnf) / (table.tpf + table.tnf)).to_numpy()
    assert summary["flux_imbalance_generated"] == pytest.approx(np.median(u[1:]))
    assert summary["flux_imbalance_real"] == pytest.approx(u[0], abs=1e-9)
    assert summary["flux_imbalance_generated"] > 0.1


def test_micro_run_with_the_balance_records_its_loss(tmp_path):
    ds = micro_dataset(tmp_path / "home")
    config = gan_train_config(
        "tiny",
        model={"width": 0.25, "latent_dim": 8, "codes": 2},
        epochs=1,
        batch_size=8,
        fixed_size=8,
        grid_size=4,
        balance_weight=1.0,
    )
    store = LocalStore(tmp_path / "store")
    run = train_gan(config, ds, store, progress=False)
    ckpt = load_checkpoint(f"{run.prefix}last.pt", store=store, kind="gan")
    assert ckpt["config"]["balance_weight"] == 1.0
    assert np.isfinite(run.history[-1]["loss_balance"]) and run.history[-1]["loss_balance"] >= 0
