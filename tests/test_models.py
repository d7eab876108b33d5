"""sharpseek.models: the paper's GAN and the SimSiam encoder, and each rebuilt from a
checkpoint.

Reference numbers here test consistency with SCIENCE.md's layer sizes (and torchvision's
ResNet-18 parameter count), not training accuracy.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from sharpseek.models import (
    AUGMENTATION_SETS,
    Discriminator,
    GANConfig,
    Generator,
    SimSiam,
    SimSiamConfig,
    collapse_level,
    discriminator_loss,
    gan_config,
    generator_loss,
    simsiam_config,
)
from sharpseek.models.checkpoints import (
    CHECKPOINT_FORMAT,
    load_discriminator,
    load_encoder,
    load_generator,
)

# A very small encoder for fast tests (the architecture, not the size, is under test).
MICRO = SimSiamConfig(
    widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1), stem_width=8, proj_hidden=16, pred_hidden=8
)


def _shapes_through(module, x, layer_names):
    shapes = {}
    hooks = [
        getattr(module, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
        for name in layer_names
    ]
    with torch.no_grad():
        out = module(x)
    for h in hooks:
        h.remove()
    return shapes, out


# --------------------------------------------------------------------------------- GAN


def test_generator_paper_layer_shapes():
    G = Generator(gan_config("paper"))
    shapes, out = _shapes_through(G, torch.randn(2, 100), ["fc", "up1", "up2", "up3"])
    assert shapes == {
        "fc": (2, 64 * 15 * 15),
        "up1": (2, 64, 31, 31),
        "up2": (2, 32, 63, 63),
        "up3": (2, 1, 129, 129),  # after the pad to 64 x 64
    }
    assert out.shape == (2, 1, 128, 128)


def test_generator_output_is_within_minus_one_and_one():
    G = Generator(gan_config("tiny"))
    out = G(torch.randn(4, 100) * 10)
    assert out.min() >= -1 and out.max() <= 1


def test_discriminator_paper_layer_shapes_and_logit():
    D = Discriminator(gan_config("paper"))
    shapes, out = _shapes_through(D, torch.zeros(3, 1, 128, 128), ["conv1", "conv2", "conv3"])
    assert shapes == {"conv1": (3, 32, 63, 63), "conv2": (3, 64, 31, 31), "conv3": (3, 64, 15, 15)}
    assert D.fc1.in_features == 14400 and D.fc1.out_features == 100
    assert out.shape == (3,)  # a logit per image, no sigmoid


def test_width_multiplier_scales_every_channel_count():
    G, D = Generator(GANConfig(width=0.5)), Discriminator(GANConfig(width=0.5))
    assert (G.fc.out_features, G.up2.out_channels) == (32 * 225, 16)
    assert (D.conv1.out_channels, D.fc1.in_features, D.fc1.out_features) == (16, 32 * 225, 50)


def test_generator_rejects_wrong_latent_shape():
    with pytest.raises(
        ValueError, match=r"latent vectors must have shape \(N, 100\), got \(2, 7\)"
    ):
        Generator(gan_config("tiny"))(torch.randn(2, 7))


def test_discriminator_rejects_wrong_image_shape():
    with pytest.raises(
        ValueError, match=r"images must have shape \(N, 1, 128, 128\), got \(2, 64, 64\)"
    ):
        Discriminator(gan_config("tiny"))(torch.zeros(2, 64, 64))


def test_unknown_gan_preset_is_named():
    with pytest.raises(ValueError, match="unknown GAN preset 'huge'; choose one of"):
        gan_config("huge")


def test_discriminator_loss_is_paper_equation_2():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.3, -1.0])
    expected = -0.5 * (
        torch.log(1 - torch.sigmoid(fake)).mean() + torch.log(torch.sigmoid(real)).mean()
    )
    assert torch.allclose(discriminator_loss(real, fake), expected, atol=1e-6)


def test_generator_loss_is_paper_equation_1():
    fake = torch.tensor([0.3, -1.0, 4.0])
    expected = -torch.log(torch.sigmoid(fake)).mean()
    assert torch.allclose(generator_loss(fake), expected, atol=1e-6)


def test_gan_config_round_trips_through_a_dict():
    cfg = gan_config("tiny", latent_dim=12)
    assert GANConfig.from_dict(cfg.to_dict()) == cfg


# --------------------------------------------------------------------------------- SimSiam


def test_paper_backbone_is_resnet18_sized():
    model = SimSiam(simsiam_config("paper"))
    n = sum(p.numel() for p in model.backbone.parameters())
    # torchvision resnet18: 11,689,512 parameters, minus its fc (513,000), with a 1-channel
    # stem (64*49 weights instead of 64*3*49).
    assert n == 11_689_512 - 513_000 - 64 * 3 * 49 + 64 * 49


def test_paper_backbone_pools_to_512():
    backbone = SimSiam(simsiam_config("paper")).backbone.eval()
    with torch.no_grad():
        assert backbone(torch.zeros(2, 1, 128, 128)).shape == (2, 512)


def test_paper_heads_have_the_sizes_of_science_md():
    model = SimSiam(simsiam_config("paper"))

    def linear(seq):
        return [(m.in_features, m.out_features) for m in seq if isinstance(m, torch.nn.Linear)]

    # lightly's SimSiamProjectionHead(512, 512, 100): three layers, bias-free before BN, the
    # last BN without affine parameters; SimSiamPredictionHead(100, 128, 100)
    assert linear(model.projector) == [(512, 512), (512, 512), (512, 100)]
    assert [m.bias is None for m in model.projector if isinstance(m, torch.nn.Linear)] == [True] * 3
    norms = [m for m in model.projector if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.affine for m in norms] == [True, True, False]
    assert isinstance(model.projector[-1], torch.nn.BatchNorm1d)
    assert linear(model.predictor) == [(100, 128), (128, 100)]
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.predictor)


def test_tiny_preset_keeps_the_two_layer_projection():
    model = SimSiam(simsiam_config("tiny"))
    linear = [m for m in model.projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(100, 128), (128, 100)]


def test_an_encoder_checkpoint_from_before_the_three_layer_head_still_loads(tmp_path):
    # a checkpoint written before SimSiamConfig.projection existed: two-layer weights, a
    # stored config without the field
    old = SimSiam(SimSiamConfig(**{**MICRO.to_dict(), "projection": "two-layer"})).eval()
    config = old.config.to_dict()
    del config["projection"]
    path = tmp_path / "old.pt"
    torch.save(
        {
            "kind": "encoder",
            "format": CHECKPOINT_FORMAT,
            "config": {"model": config, "augment": AUGMENTATION_SETS["none"].to_dict()},
            "model": old.state_dict(),
            "epoch": 3,
        },
        path,
    )
    model, _ = load_encoder(path)
    assert model.config.projection == "two-layer"
    images = torch.randn(3, 1, 128, 128)
    assert torch.allclose(model.encode(images), old.encode(images))


def test_simsiam_loss_is_symmetric_negative_cosine_with_stop_gradient():
    torch.manual_seed(0)
    model = SimSiam(MICRO)
    v1, v2 = torch.randn(4, 1, 128, 128), torch.randn(4, 1, 128, 128)
    out = model(v1, v2)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]

    # the same computation by hand, the target detached
    model.zero_grad()
    z = model.projector(model.backbone(torch.cat([v1, v2])))
    p = model.predictor(z)
    manual = -0.5 * (
        F.cosine_similarity(p[:4], z[4:].detach()).mean()
        + F.cosine_similarity(p[4:], z[:4].detach()).mean()
    )
    manual.backward()
    assert torch.allclose(out.loss, manual)
    assert all(
        torch.allclose(g, p.grad, atol=1e-6) for g, p in zip(grads, model.parameters(), strict=True)
    )
    assert not out.z1.requires_grad


def test_encode_gives_100d_vectors_and_keeps_train_mode():
    model = SimSiam(MICRO)
    model.train()
    z = model.encode(torch.zeros(5, 128, 128))
    assert z.shape == (5, 100)
    assert model.training


def test_encode_gives_the_projection_or_the_backbone_features_as_configured():
    torch.manual_seed(0)
    images = torch.randn(6, 1, 128, 128)
    projection = SimSiam(MICRO).eval()
    with torch.no_grad():
        want = projection.projector(projection.backbone(images))
    assert torch.allclose(projection.encode(images), want)

    backbone_config = SimSiamConfig(**{**MICRO.to_dict(), "widths": (8, 8, 8, 100)})
    backbone_config = SimSiamConfig.from_dict(
        {**backbone_config.to_dict(), "representation": "backbone"}
    )
    model = SimSiam(backbone_config).eval()
    with torch.no_grad():
        want = model.backbone(images)
    got = model.encode(images)
    assert got.shape == (6, 100) and torch.allclose(got, want)


def test_pool_grid_keeps_the_quadrants_of_the_last_stage():
    config = SimSiamConfig(**{**MICRO.to_dict(), "pool_grid": 2})
    backbone = SimSiam(config).backbone.eval()
    images = torch.zeros(2, 1, 128, 128)
    images[:, :, :64, :64] = 1.0  # structure in the top-left quadrant only
    with torch.no_grad():
        last = backbone.stages(backbone.stem(images))  # (2, 8, 4, 4)
        features = backbone(images)
    assert config.feature_dim == 32 and features.shape == (2, 32)
    # cell (row, col) of the 2 x 2 grid = the mean of its 2 x 2 block of the 4 x 4 map
    want = last.reshape(2, 8, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(1)
    assert torch.allclose(features, want, atol=1e-6)


def test_a_checkpoint_config_without_representation_means_the_projection():
    data = MICRO.to_dict()
    del data["representation"]
    assert SimSiamConfig.from_dict(data).representation == "projection"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"representation": "pixels"}, "representation must be one of"),
        ({"representation": "backbone"}, r"widths\[-1\] \* pool_grid\*\*2 must equal dim \(100\)"),
        ({"pool_grid": 0}, "sizes must be >= 1"),
    ],
)
def test_bad_representation_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        SimSiamConfig(**{**MICRO.to_dict(), **fields})


def test_encode_rejects_wrong_image_shape():
    with pytest.raises(
        ValueError, match=r"images must have shape \(N, 1, 128, 128\), got \(5, 1, 64, 64\)"
    ):
        SimSiam(MICRO).encode(torch.zeros(5, 1, 64, 64))


def test_views_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="the two views must have the same shape"):
        SimSiam(MICRO)(torch.zeros(2, 1, 128, 128), torch.zeros(3, 1, 128, 128))


def test_collapse_level_is_about_one_for_spread_outputs():
    torch.manual_seed(0)
    assert collapse_level(torch.randn(4096, 100)) == pytest.approx(1.0, abs=0.02)


def test_collapse_level_is_zero_for_collapsed_outputs():
    assert collapse_level(torch.ones(64, 100)) == pytest.approx(0.0, abs=1e-6)


def test_unknown_simsiam_preset_is_named():
    with pytest.raises(ValueError, match="unknown SimSiam preset 'resnet50'"):
        simsiam_config("resnet50")


def test_simsiam_config_round_trips_through_a_dict_with_lists():
    cfg = simsiam_config("tiny")
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    assert SimSiamConfig.from_dict(data) == cfg


def test_tiny_presets_are_smaller_than_paper():
    assert simsiam_config("tiny").feature_dim < simsiam_config("paper").feature_dim
    assert gan_config("tiny").width < gan_config("paper").width
    assert math.isclose(gan_config("paper").width, 1.0)


# --------------------------------------------------------------------------------- checkpoints


def _checkpoint(path, kind, config, **weights):
    """A checkpoint as training writes it, cut to what reading it needs."""
    torch.save({"kind": kind, "format": CHECKPOINT_FORMAT, "config": config, **weights}, path)
    return path


def test_gan_checkpoint_rebuilds_both_networks_from_its_config_alone(tmp_path):
    config = GANConfig(width=0.25, latent_dim=8)
    G, D = Generator(config).eval(), Discriminator(config).eval()
    path = _checkpoint(
        tmp_path / "gan.pt",
        "gan",
        {"model": config.to_dict(), "lr": 5e-4},  # training fields beside the model's
        generator=G.state_dict(),
        discriminator=D.state_dict(),
    )
    z = torch.randn(2, 8)
    assert torch.equal(load_generator(path)(z), G(z))
    assert torch.equal(load_discriminator(path)(G(z)), D(G(z)))


def test_encoder_checkpoint_rebuilds_the_model_and_its_augmentation_set(tmp_path):
    model = SimSiam(MICRO).eval()
    augment = AUGMENTATION_SETS["tilt-sensitive"]
    config = {"model": MICRO.to_dict(), "augment": augment.to_dict()}
    path = _checkpoint(tmp_path / "enc.pt", "encoder", config, model=model.state_dict())
    rebuilt, augmentations = load_encoder(path)
    x = torch.rand(3, 1, 128, 128)
    assert augmentations == augment and not rebuilt.training
    assert torch.equal(rebuilt.encode(x), model.encode(x))


def test_loading_a_checkpoint_of_another_format_names_both(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"kind": "gan", "format": CHECKPOINT_FORMAT + 1}, path)
    with pytest.raises(ValueError, match=f"has checkpoint format {CHECKPOINT_FORMAT + 1}"):
        load_generator(path)
