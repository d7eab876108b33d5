"""Issue 17's physical latent codes (sharpseek.training.codes, GANConfig.codes,
GANTrainConfig.code_weight): the differentiable surrogates against the physics module, the
dataset's code targets, the loss, the noise field kept off the codes, and a micro run."""

import numpy as np
import pytest
import torch

from ingest_fixtures import micro_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import load_checkpoint
from sharpseek.models.gan import GANConfig, Generator
from sharpseek.physics.parameters import compute_parameters
from sharpseek.physics.surrogates import soft_parameters
from sharpseek.training.codes import CodeTargets, _log_values, code_loss
from sharpseek.training.gan import GANTrainConfig, gan_train_config, train_gan

pytestmark = pytest.mark.usefixtures("one_thread")


def _bipoles(n: int, seed: int = 0) -> np.ndarray:
    """n images (n, 128, 128) in b: a positive and a negative Gaussian spot of random
    strength, width and separation, plus weak noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128].astype(float)
    out = np.empty((n, 128, 128))
    for i in range(n):
        gap, width, peak = rng.uniform(10, 50), rng.uniform(3, 8), rng.uniform(0.3, 0.9)
        y0, x0 = rng.uniform(44, 84), 64 - gap / 2
        pos = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * width**2))
        neg = np.exp(-((yy - y0) ** 2 + (xx - x0 - gap) ** 2) / (2 * width**2))
        out[i] = peak * (pos - neg) + 0.01 * rng.standard_normal((128, 128))
    return np.clip(out, -1, 1)


def test_soft_parameters_follow_the_physics_definitions():
    images = _bipoles(24)
    soft, bipolar = soft_parameters(torch.from_numpy(images).float()[:, None])
    hard = compute_parameters(images)
    assert bool(bipolar.all()) and bool(hard["bipolar"].all())
    # TUF: the same sum, in other units (mean |b| against G px: 1000 G * 128^2)
    np.testing.assert_allclose(soft["tuf"].numpy() * 1000 * 128**2, hard["tuf"], rtol=1e-4)
    # PSEP: soft masks move the centroids by a fraction of a pixel
    np.testing.assert_allclose(soft["psep"].numpy(), hard["psep"], atol=1.0)
    # R: a soft mask and a soft dilation; the order of the images is kept
    r_soft, r_hard = soft["r"].numpy(), hard["r"]
    assert np.corrcoef(np.log(r_soft + 1e-6), np.log(r_hard + 1))[0, 1] > 0.9


def test_a_unipolar_image_is_not_bipolar_for_the_psep_code():
    image = np.zeros((1, 128, 128))
    image[0, 40:60, 40:60] = 0.5
    _, bipolar = soft_parameters(torch.from_numpy(image).float()[:, None])
    assert not bool(bipolar[0])


def test_code_targets_hold_the_datasets_joint_log_parameters_and_the_loss_reads_them():
    images = _bipoles(64, seed=1)
    targets = CodeTargets.from_images(images, ("tuf", "psep", "r"))
    x = torch.from_numpy(images).float()[:, None]
    soft, _ = soft_parameters(x)
    f = _log_values(soft, targets.parameters, targets.r_floor)
    # mu and L L^T are the mean and covariance of f over the (all bipolar) frames
    torch.testing.assert_close(targets.mu, f.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(targets.chol @ targets.chol.T, torch.cov(f.T), rtol=1e-3, atol=1e-4)
    # The codes that whiten each image's own values cost nothing; random codes do.
    own = torch.linalg.solve_triangular(targets.chol, (f - targets.mu).T, upper=False).T
    assert code_loss(x, own, targets).item() < 1e-6
    assert (
        code_loss(x, torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), targets) > 0.05
    )
    # and its gradient reaches the images
    x.requires_grad_(True)
    code_loss(x, own + 1.0, targets).backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="code_parameters"):
        CodeTargets.from_images(images, ("tuf", "sigma"))


def test_empirical_marginals_ask_for_the_datas_quantiles_and_keep_its_rank_correlation():
    # log PSEP-like values skewed to the left (bounded above), and a second parameter tied
    # to the first: the Gaussian of their mean and sd asks for the wrong median
    rng = np.random.default_rng(0)
    first = 3.8 - rng.exponential(0.4, 5000)
    second = 0.7 * first + rng.normal(0, 0.2, 5000)
    f = torch.from_numpy(np.stack([first, second], 1))
    gaussian = CodeTargets.from_log_values(f, ("psep", "tuf"), 1e-6, "gaussian")
    empirical = CodeTargets.from_log_values(f, ("psep", "tuf"), 1e-6, "empirical")
    codes = torch.randn(40000, 2, generator=torch.Generator().manual_seed(1))
    asked_g, asked_e = gaussian.wanted(codes).double(), empirical.wanted(codes).double()
    levels = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    data_q = torch.quantile(f, levels, dim=0)
    # the data's deciles and median, to within sampling and the 201 levels' interpolation
    torch.testing.assert_close(torch.quantile(asked_e, levels, dim=0), data_q, atol=0.02, rtol=0)
    assert (torch.quantile(asked_g, 0.5, dim=0)[0] - data_q[1, 0]).abs() > 0.05  # bell's median

    def spearman(x):
        return np.corrcoef(x.argsort(0).argsort(0).T.numpy())[0, 1]

    assert spearman(asked_e) == pytest.approx(spearman(f), abs=0.02)
    # the Gaussian path is the one before the option: mu + L c
    torch.testing.assert_close(asked_g.float(), gaussian.mu + codes @ gaussian.chol.T)
    # one code alone moves its parameter monotonically, from the data's minimum to maximum
    line = torch.zeros(101, 2)
    line[:, 0] = torch.linspace(-8, 8, 101)
    along = empirical.wanted(line)[:, 0]
    assert bool((along.diff() >= 0).all())
    assert along[0].item() == pytest.approx(f[:, 0].min().item(), abs=1e-5)
    assert along[-1].item() == pytest.approx(f[:, 0].max().item(), abs=1e-5)
    with pytest.raises(ValueError, match="code marginals must be one of"):
        CodeTargets.from_log_values(f, ("psep", "tuf"), 1e-6, "uniform")
    with pytest.raises(ValueError, match="code_marginals must be one of"):
        GANTrainConfig(code_marginals="uniform")


def test_empirical_codes_of_each_images_own_ranks_cost_next_to_nothing():
    images = _bipoles(64, seed=1)
    targets = CodeTargets.from_images(images, ("tuf", "psep"), "empirical")
    x = torch.from_numpy(images).float()[:, None]
    soft, _ = soft_parameters(x)
    f = _log_values(soft, targets.parameters, targets.r_floor).double()
    # the code that asks for an image's own values: its normal scores, decorrelated
    ranks = f.argsort(0).argsort(0).double() + 1
    scores = torch.special.ndtri(ranks / (len(f) + 1)).float()
    own = torch.linalg.solve_triangular(targets.chol, scores.T, upper=False).T
    # asked: the data's quantile at rank/(n+1), within a rank of the image's own value
    assert code_loss(x, own, targets).item() < 0.02
    assert (
        code_loss(x, torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), targets) > 0.05
    )


def test_the_noise_field_never_reads_the_code_coordinates():
    config = GANConfig(generator="upsample", noise=True, codes=3, width=0.25, latent_dim=8)
    G = Generator(config).eval()
    assert G.noise_matrix.shape == (128 * 128, 5)
    z = torch.randn(4, 8)
    moved_code, moved_rest = z.clone(), z.clone()
    moved_code[:, :3] += 1.0
    moved_rest[:, 3:] += 1.0
    noise = lambda v: v[:, 3:] @ G.noise_matrix.T  # noqa: E731
    assert torch.equal(noise(moved_code), noise(z)) and not torch.equal(noise(moved_rest), noise(z))
    # code_gain multiplies the codes at G's input: the same as larger codes at gain 1
    strong = Generator(GANConfig(**{**config.to_dict(), "code_gain": 4.0})).eval()
    strong.load_state_dict(G.state_dict())
    scaled = torch.cat([z[:, :3] * 4.0, z[:, 3:]], 1)
    with torch.no_grad():
        torch.testing.assert_close(strong(z), G(scaled))
        assert not torch.allclose(strong(z), G(z), atol=1e-4)
    with pytest.raises(ValueError, match="code_gain must be > 0"):
        GANConfig(code_gain=0.0)
    with pytest.raises(ValueError, match="codes must be in"):
        GANConfig(codes=100)
    with pytest.raises(ValueError, match="needs model.codes = 3"):
        GANTrainConfig(code_weight=1.0)
    with pytest.raises(ValueError, match="code_weight must be >= 0"):
        GANTrainConfig(code_weight=-1.0)


def test_presets_paper_has_no_codes_and_tiny_records_them():
    paper, tiny = gan_train_config("paper"), gan_train_config("tiny")
    assert (paper.code_weight, paper.model.codes) == (0.0, 0)
    assert tiny.code_weight > 0 and tiny.model.codes == len(tiny.code_parameters)
    assert (paper.code_marginals, tiny.code_marginals) == ("gaussian", "empirical")
    # configs written before the option load without codes, and before empirical marginals
    # with the Gaussian ones they were trained with
    old = GANTrainConfig.from_dict({"preset": "tiny", "model": {"latent_dim": 100}})
    assert (old.code_weight, old.model.codes, old.code_marginals) == (0.0, 0, "gaussian")


def test_micro_run_with_codes_records_the_code_loss(tmp_path):
    ds = micro_dataset(tmp_path / "home")
    config = gan_train_config(
        "tiny",
        model={"width": 0.25, "latent_dim": 8, "codes": 3},
        epochs=1,
        batch_size=8,
        fixed_size=8,
        grid_size=4,
        code_weight=1.0,
        code_parameters=("tuf", "psep", "r"),
    )
    store = LocalStore(tmp_path / "store")
    run = train_gan(config, ds, store, progress=False)
    ckpt = load_checkpoint(f"{run.prefix}last.pt", store=store, kind="gan")
    assert ckpt["config"]["code_weight"] == 1.0 and ckpt["config"]["model"]["codes"] == 3
    assert np.isfinite(run.history[-1]["loss_code"]) and run.history[-1]["loss_code"] > 0
