"""Issue 17's GAN options (sharpseek.models.gan, sharpseek.training.gan) on micro inputs:
the upsampling generator and its noise field, spectral normalisation, the hinge loss, R1,
the moving-average generator, translation augmentation, and configs older than the options.

Losses and penalties are checked against hand computations; training on micro runs."""

import math
from dataclasses import replace

import pytest
import torch
from torch.nn.utils import parametrize

from ingest_fixtures import micro_dataset, synthetic_dataset
from sharpseek.config import Settings
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import load_checkpoint, load_generator
from sharpseek.models.gan import (
    Discriminator,
    GANConfig,
    Generator,
    discriminator_loss,
    gan_config,
    generator_loss,
    r1_penalty,
)
from sharpseek.training.gan import (
    GANTrainConfig,
    ema_update,
    gan_train_config,
    train_gan,
    translate,
)

MICRO = {"width": 0.25, "latent_dim": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


def _shapes(module, x, names):
    shapes = {}
    hooks = [
        getattr(module, n).register_forward_hook(
            lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape))
        )
        for n in names
    ]
    with torch.no_grad():
        out = module(x)
    for h in hooks:
        h.remove()
    return shapes, out


# ------------------------------------------------------------------------ generator


@pytest.mark.parametrize("internal", [32, 64])
def test_upsampling_generator_draws_at_its_internal_size_then_128(internal):
    G = Generator(GANConfig(width=0.5, generator="upsample", internal_size=internal))
    names = ["fc", "conv1", "conv2", "conv3", "to_field"]
    shapes, out = _shapes(G, torch.randn(3, 100), names)
    s = internal // 8
    assert shapes == {
        "fc": (3, 32 * s * s),
        "conv1": (3, 32, 2 * s, 2 * s),
        "conv2": (3, 32, 4 * s, 4 * s),
        "conv3": (3, 16, internal, internal),
        "to_field": (3, 1, internal, internal),
    }
    assert out.shape == (3, 1, 128, 128) and out.abs().max() <= 1
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())


def test_an_internal_width_draws_finer_across_than_along():
    """internal_width 64 with internal_size 32: every feature map twice as wide (x) as tall."""
    config = GANConfig(width=0.5, generator="upsample", internal_size=32, internal_width=64)
    G = Generator(config)
    shapes, out = _shapes(G, torch.randn(3, 100), ["fc", "conv1", "conv2", "conv3", "to_field"])
    assert shapes == {
        "fc": (3, 32 * 4 * 8),
        "conv1": (3, 32, 8, 16),
        "conv2": (3, 32, 16, 32),
        "conv3": (3, 16, 32, 64),
        "to_field": (3, 1, 32, 64),
    }
    assert out.shape == (3, 1, 128, 128)
    G_noise = Generator(replace(config, noise=True))
    assert G_noise(torch.randn(2, 100)).shape == (2, 1, 128, 128)
    with pytest.raises(ValueError, match="internal_width must be a multiple of 8"):
        GANConfig(generator="upsample", internal_width=100)


def test_bilinear_upsampling_draws_no_blocks_where_nearest_draws_2x2_blocks():
    """One doubling of a one-hot feature map: nearest copies the pixel into a 2x2 block of
    equal values, bilinear spreads it with the weights 3/4 and 1/4 (align_corners=False)."""
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    nearest = Generator(GANConfig(generator="upsample", **MICRO))._double(x)[0, 0]
    bilinear = Generator(GANConfig(generator="upsample", upsampling="bilinear", **MICRO))
    spread = bilinear._double(x)[0, 0]
    assert nearest.shape == spread.shape == (8, 8)
    assert torch.equal(nearest[2:4, 4:6], torch.ones(2, 2)) and nearest.sum() == 4
    assert torch.allclose(spread[2:4, 4:6], torch.full((2, 2), 0.75**2))
    assert torch.isclose(spread[1, 4], torch.tensor(0.25 * 0.75))
    assert torch.isclose(spread.sum(), torch.tensor(4.0))  # the same flux, spread
    G = Generator(GANConfig(generator="upsample", upsampling="bilinear", noise=True, **MICRO))
    assert G(torch.randn(2, 8)).shape == (2, 1, 128, 128)
    with pytest.raises(ValueError, match="upsampling must be one of"):
        GANConfig(upsampling="bicubic")


def test_noise_field_is_a_function_of_z_alone_and_white_at_128px():
    G1 = Generator(GANConfig(generator="upsample", noise=True, **MICRO)).eval()
    G2 = Generator(GANConfig(generator="upsample", noise=True, **MICRO)).eval()
    # Two builds draw the same noise matrix (not stored in checkpoints).
    assert torch.equal(G1.noise_matrix, G2.noise_matrix)
    assert "noise_matrix" not in G1.state_dict()
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    n = (z @ G1.noise_matrix.T).view(64, 128, 128)
    assert torch.equal(G1(z), G1(z))
    # Unit variance per pixel for |z|^2 ~ latent_dim; neighbours correlate as the blur says
    # (exp(-1 / (4 * 0.5^2)) = 0.37 before the rescaling), far ones not at all.
    assert n.std().item() == pytest.approx(1.0, abs=0.1)
    lag1 = torch.corrcoef(torch.stack([n[:, :, :-1].flatten(), n[:, :, 1:].flatten()]))[0, 1]
    lag4 = torch.corrcoef(torch.stack([n[:, :, :-4].flatten(), n[:, :, 4:].flatten()]))[0, 1]
    assert 0.2 < lag1 < 0.45 and abs(lag4) < 0.02
    # The amplitude map scales the noise: a zero amplitude leaves the smooth field alone.
    with torch.no_grad():
        G1.to_amplitude.bias.fill_(-30.0)  # clamped to -12: amplitudes exp(-12) ~ 6e-6
        G1.to_amplitude.weight.zero_()
        G_plain = Generator(GANConfig(generator="upsample", noise=False, **MICRO)).eval()
        G_plain.load_state_dict(G1.state_dict(), strict=False)
    # tanh is 1-Lipschitz: the outputs differ by at most exp(-12) (|n| + |n|^3 / sqrt(15)),
    # about 1e-3 where |n| reaches 8 (a fixed 1e-3 failed for 2 latent draws in 60)
    bound = math.exp(-12) * (n.abs() + n.abs() ** 3 / 15**0.5).max().item()
    assert (G1(z) - G_plain(z)).abs().max().item() <= bound + 1e-6


def test_heavy_tailed_noise_of_its_own_is_wider_independent_and_off_by_default():
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    plain = Generator(GANConfig(generator="upsample", noise=True, **MICRO)).eval()
    assert not hasattr(plain, "blob_matrix")  # default: the cube of the Gaussian part's image
    G = Generator(GANConfig(generator="upsample", noise=True, blob_blur_px=2.0, **MICRO)).eval()
    G.load_state_dict(plain.state_dict())  # the option adds no weights
    assert "blob_matrix" not in G.state_dict() and torch.equal(G.noise_matrix, plain.noise_matrix)
    blobs = (z @ G.blob_matrix.T).view(64, 128, 128)
    n = (z @ G.noise_matrix.T).view(64, 128, 128)
    assert blobs.std().item() == pytest.approx(1.0, abs=0.1)

    def corr(a, b):
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()

    # A 2 px blur: neighbours correlate as exp(-d^2 / (4 * 2^2)), 0.94 at 1 px, 0.37 at 4 px
    assert corr(blobs[:, :, :-1], blobs[:, :, 1:]) == pytest.approx(0.94, abs=0.03)
    assert corr(blobs[:, :, :-4], blobs[:, :, 4:]) == pytest.approx(0.37, abs=0.05)
    assert abs(corr(blobs, n)) < 0.02  # drawn from its own seed
    assert not torch.equal(G(z), plain(z))
    with pytest.raises(ValueError, match="blob_blur_px needs noise=True"):
        GANConfig(generator="upsample", blob_blur_px=1.0)
    with pytest.raises(ValueError, match="blob_blur_px must be in"):
        GANConfig(generator="upsample", noise=True, blob_blur_px=-1.0)


def test_refine_adds_a_convolution_after_the_first_two_doublings_only():
    plain = Generator(GANConfig(generator="upsample", noise=True, **MICRO))
    G = Generator(GANConfig(generator="upsample", noise=True, refine=True, **MICRO))
    channels = G.conv1.out_channels
    added = sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in plain.parameters())
    assert added == 2 * (channels * channels * 9 + channels)  # two 3x3 convolutions, c -> c
    seen = []
    for conv in (G.refine1, G.refine2, G.conv3):
        conv.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    assert G(torch.randn(2, 8)).shape == (2, 1, 128, 128)
    size = G.config.internal_size
    assert seen == [(size // 4, size // 4), (size // 2, size // 2), (size, size)]
    with pytest.raises(ValueError, match="refine needs generator='upsample'"):
        GANConfig(refine=True)


def test_clip_output_is_the_datas_clip_with_a_straight_through_gradient():
    torch.manual_seed(0)
    z = torch.randn(4, 8)
    G_tanh = Generator(GANConfig(generator="upsample", noise=True, **MICRO)).eval()
    G_clip = Generator(GANConfig(generator="upsample", noise=True, output="clip", **MICRO))
    G_clip.load_state_dict(G_tanh.state_dict())
    with torch.no_grad():  # a strong field: past the clip in places, inside it elsewhere
        G_clip.to_field.bias.fill_(0.9)
        G_tanh.to_field.bias.fill_(0.9)
    b_clip, b_tanh = G_clip(z), G_tanh(z)
    assert b_clip.min() >= -1 and b_clip.max() <= 1
    assert (b_clip == 1).float().mean() > 0.01  # plateaus at exactly +1, as the data's spots
    assert (b_tanh == 1).sum() == 0  # tanh never reaches them
    inside = b_clip.abs() < 1
    assert torch.allclose(torch.atanh(b_tanh[inside]), b_clip[inside], atol=1e-4)
    # A clipped pixel still passes a gradient back (straight-through), so it can come back.
    field = torch.full((1, 1, 2, 2), 1.5, requires_grad=True)
    G_clip._output(field).sum().backward()
    assert torch.equal(field.grad, torch.ones_like(field))
    with pytest.raises(ValueError, match="output must be one of"):
        GANConfig(output="sigmoid")


def test_noise_needs_the_upsampling_generator_and_bad_options_are_named():
    with pytest.raises(ValueError, match="noise needs generator='upsample'"):
        GANConfig(noise=True)
    with pytest.raises(ValueError, match="generator must be one of"):
        GANConfig(generator="stylegan")
    with pytest.raises(ValueError, match="internal_size"):
        GANConfig(generator="upsample", internal_size=60)
    with pytest.raises(ValueError, match="loss must be one of"):
        GANTrainConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="augment must be one of"):
        GANTrainConfig(augment="colour")
    with pytest.raises(ValueError, match="ema_decay"):
        GANTrainConfig(ema_decay=1.0)


# ------------------------------------------------------------------------ discriminator


def test_spectral_norm_wraps_every_discriminator_layer_and_bounds_it():
    D = Discriminator(GANConfig(spectral_norm=True, **MICRO))
    layers = ("conv1", "conv2", "conv3", "fc1", "fc2")
    assert all(parametrize.is_parametrized(getattr(D, n), "weight") for n in layers)
    assert not any(
        parametrize.is_parametrized(getattr(Discriminator(GANConfig(**MICRO)), n), "weight")
        for n in layers
    )
    with torch.no_grad():
        D.fc1.parametrizations.weight.original.mul_(50.0)  # a large raw weight
        for _ in range(30):  # power iterations run in training-mode forwards
            D(torch.randn(2, 1, 128, 128))
    sigma = torch.linalg.matrix_norm(D.fc1.weight.detach(), ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)


# ------------------------------------------------------------------------ losses


def test_hinge_losses_equal_the_hand_computation():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.3])
    # D: mean(relu(1 - [2, 0.5, -1])) = (0 + 0.5 + 2) / 3; mean(relu(1 + [-2, 0.3])) = 1.3 / 2
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(2.5 / 3 + 0.65)
    assert generator_loss(fake, "hinge").item() == pytest.approx(0.85)  # -mean(-2, 0.3)
    # The paper's BCE stays the default.
    assert discriminator_loss(real, fake).item() == pytest.approx(
        discriminator_loss(real, fake, "bce").item()
    )
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(fake, "l2")


def test_r1_of_a_linear_critic_is_half_gamma_times_its_squared_weight():
    w = torch.randn(1, 1, 128, 128, requires_grad=True)
    x = torch.randn(5, 1, 128, 128, requires_grad=True)
    logits = (x * w).flatten(1).sum(1)  # D(x) = <w, x>: grad_x D = w for every x
    r1 = r1_penalty(logits, x, gamma=4.0)
    assert r1.item() == pytest.approx(2.0 * w.detach().pow(2).sum().item(), rel=1e-5)
    r1.backward()  # into the critic's weights: d/dw (gamma/2 |w|^2) = gamma w
    assert torch.allclose(w.grad, 4.0 * w.detach(), rtol=1e-5)


# ------------------------------------------------------------------------ EMA, augmentation


def test_ema_update_moves_each_weight_by_one_minus_decay():
    avg, model = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in avg.parameters()]
    ema_update(avg, model, 0.9)
    for a, b, m in zip(avg.parameters(), before, model.parameters(), strict=True):
        assert torch.allclose(a, 0.9 * b + 0.1 * m.detach())


def test_translation_shifts_in_zeros_and_passes_gradients():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16).requires_grad_(True)
    shifts = torch.tensor([[9, 9], [2, -3], [0, 0]])
    out = translate(x, shifts, 1)
    assert torch.equal(out[0, 0, 2:, :13], x[0, 0, :14, 3:])  # down 2, left 3
    assert (out[0, 0, :2] == 0).all() and (out[0, 0, :, 13:] == 0).all()
    assert torch.equal(out[1], x[1])
    out.sum().backward()
    assert x.grad[0, 0, :14, 3:].eq(1).all() and x.grad[0, 0, 14:].eq(0).all()
    assert translate(x, None, 0) is x


# ------------------------------------------------------------------------ configs and runs


def test_old_configs_without_the_options_load_as_the_paper_recipe():
    old_model = {"latent_dim": 100, "width": 0.5, "negative_slope": 0.2}
    model = GANConfig.from_dict(old_model)
    assert (model.generator, model.noise, model.spectral_norm) == ("paper", False, False)
    old = {"preset": "tiny", "model": old_model, "epochs": 10, "lr": 5e-4, "betas": [0.9, 0.999]}
    config = GANTrainConfig.from_dict(old)
    assert (config.loss, config.r1_gamma, config.ema_decay, config.augment) == (
        "bce",
        0.0,
        0.0,
        "none",
    )
    with pytest.raises(ValueError, match="unknown fields"):
        GANConfig.from_dict({**old_model, "colour": 1})


def test_presets_paper_keeps_the_paper_recipe_and_tiny_records_its_options():
    paper, tiny = gan_train_config("paper"), gan_train_config("tiny")
    assert paper.model == GANConfig() and paper.model == gan_config("paper")
    assert (paper.loss, paper.ema_decay, paper.augment, paper.r1_gamma) == ("bce", 0, "none", 0)
    assert (paper.lr, paper.betas, paper.batch_size) == (5e-4, (0.9, 0.999), 32)
    assert tiny.model.generator == "upsample" and tiny.to_dict()["model"]["generator"]


def test_micro_run_with_every_option_saves_the_average_as_the_generator(tmp_path):
    ds = micro_dataset(tmp_path / "home")
    config = gan_train_config(
        "tiny",
        model=MICRO,
        epochs=2,
        batch_size=8,
        fixed_size=8,
        grid_size=4,
        r1_gamma=1.0,
        augment="translation",
        ema_decay=0.9,
        loss="hinge",
    )
    store = LocalStore(tmp_path / "store")
    run = train_gan(config, ds, store, progress=False)
    key = f"{run.prefix}last.pt"
    ckpt = load_checkpoint(key, store=store, kind="gan")
    assert ckpt["config"]["ema_decay"] == 0.9 and ckpt["config"]["r1_gamma"] == 1.0
    assert ckpt["config"]["model"]["spectral_norm"] is True
    trained, average = ckpt["generator_train"], ckpt["generator"]
    assert trained.keys() == average.keys()
    # The average lags the trained weights (2 epochs of 3 steps at decay 0.9).
    assert max((trained[k] - average[k]).abs().max().item() for k in trained) > 1e-4
    # Every user of the checkpoint gets the average.
    z = torch.randn(2, 8)
    G = load_generator(key, store=store)
    G_avg = Generator(GANConfig.from_dict(ckpt["config"]["model"])).eval()
    G_avg.load_state_dict(average)
    assert torch.equal(G(z), G_avg(z))
    assert {"loss_d", "loss_g", "r1", "ks_mean"} <= run.history[-1].keys()


def test_linear_decay_holds_the_first_half_then_falls_by_equal_steps():
    config = GANTrainConfig(epochs=10, lr_decay="linear")
    factors = [config.lr_factor(e) for e in range(1, 11)]
    assert factors[:5] == [1.0] * 5
    assert factors[5:] == pytest.approx([5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert [GANTrainConfig(epochs=10).lr_factor(e) for e in (1, 10)] == [1.0, 1.0]
    assert GANTrainConfig(epochs=1, lr_decay="linear").lr_factor(1) == 0.5
    with pytest.raises(ValueError, match="lr_decay must be one of"):
        GANTrainConfig(lr_decay="cosine")


def test_micro_run_with_decay_steps_both_optimisers_each_epoch_and_resumes_on_it(tmp_path):
    ds = micro_dataset(tmp_path / "home")
    config = gan_train_config(
        "tiny", model=MICRO, epochs=4, batch_size=8, fixed_size=8, grid_size=4, lr_decay="linear"
    )
    store = LocalStore(tmp_path / "store")

    def crash_after_three(epoch, row):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(config, ds, store, progress=False, on_epoch_end=crash_after_three)
    run = train_gan(config, ds, store, progress=False, resume=True)
    lrs = [row["lr_g"] for row in run.history if row["epoch"] > 0]
    assert lrs == pytest.approx([c * config.lr for c in (1, 1, 2 / 3, 1 / 3)])
    ckpt = load_checkpoint(f"{run.prefix}last.pt", store=store, kind="gan")
    (g_group,), (d_group,) = ckpt["opt_g"]["param_groups"], ckpt["opt_d"]["param_groups"]
    assert (g_group["lr"], d_group["lr"]) == pytest.approx((config.lr / 3, config.lr_d / 3))


def test_micro_run_of_the_paper_recipe_keeps_one_generator(tmp_path):
    ds = micro_dataset(tmp_path / "home")
    config = gan_train_config(
        "paper", model=MICRO, epochs=1, batch_size=8, fixed_size=8, grid_size=4
    )
    store = LocalStore(tmp_path / "store")
    run = train_gan(config, ds, store, progress=False)
    ckpt = load_checkpoint(f"{run.prefix}last.pt", store=store, kind="gan")
    assert "generator_train" not in ckpt and ckpt["config"]["augment"] == "none"
    assert isinstance(run.generator.up3, torch.nn.ConvTranspose2d)
    assert {"loss_d", "loss_g"} <= run.history[-1].keys() and "r1" not in run.history[-1]


def test_cli_switches_the_options_and_names_a_bad_one(tmp_path):
    import typer
    from typer.testing import CliRunner

    from sharpseek.cli.train import train_app

    app = typer.Typer()
    app.add_typer(train_app, name="train")
    runner = CliRunner()
    home = tmp_path / "home"
    synthetic_dataset(Settings(home=home, preset="tiny"), regions=8, frames=4, seed=0)
    base = ["train", "gan", "--home", str(home), "--epochs", "1", "--batch-size", "8"]
    bad = runner.invoke(app, [*base, "--loss", "wasserstein"])
    assert bad.exit_code == 2 and "loss must be one of" in " ".join(bad.output.split())
    blob = runner.invoke(app, [*base, "--no-noise", "--blob-blur", "1", "--no-progress"])
    assert blob.exit_code == 2 and "blob_blur_px needs noise=True" in " ".join(blob.output.split())
    paper = runner.invoke(app, [*base, "--generator", "paper", "--no-noise", "--refine"])
    assert paper.exit_code == 2 and "refine needs generator" in " ".join(paper.output.split())
    args = ["--generator", "paper", "--no-noise", "--no-refine", "--no-spectral-norm"]
    args += ["--loss", "bce"]
    args += ["--ema", "0.5", "--augment", "translation", "--r1", "0.5", "--lr-d", "1e-4"]
    args += ["--output", "clip", "--upsampling", "bilinear", "--internal-width", "32"]
    args += ["--code-marginals", "gaussian", "--lr-decay", "linear"]
    ran = runner.invoke(app, [*base, *args, "--width", "0.25", "--no-progress"])
    assert ran.exit_code == 0, ran.output
    ckpt = load_checkpoint("models/gan/tiny-seed0/last.pt", store=LocalStore(home), kind="gan")
    config = ckpt["config"]
    assert (config["model"]["generator"], config["model"]["spectral_norm"]) == ("paper", False)
    assert (config["model"]["output"], config["model"]["upsampling"]) == ("clip", "bilinear")
    assert config["model"]["internal_width"] == 32
    assert config["ema_decay"] == 0.5  # the flag over the tiny preset's 0
    assert config["code_marginals"] == "gaussian"  # the flag over the tiny preset's empirical
    assert config["lr_decay"] == "linear"
    assert (config["loss"], config["augment"], config["r1_gamma"], config["lr_d"]) == (
        "bce",
        "translation",
        0.5,
        1e-4,
    )
