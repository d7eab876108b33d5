"""Batched affine augmentations (sharpseek.models.augment)."""

import numpy as np
import pytest
import torch

from sharpseek.models import AugmentConfig, augment, augmentation_set
from sharpseek.models.augment import AUGMENTATION_SETS, gaussian_blur
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.plotting import augmented_pairs_figure

ONLY = dict(shift_px=0.0, zoom=(1.0, 1.0), rotation_deg=0.0, vflip=False)
YY, XX = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")


def _blob(x0=63.5, y0=63.5, sx=6.0, sy=6.0, amp=0.9):
    return amp * torch.exp(-((XX - x0) ** 2) / (2 * sx**2) - ((YY - y0) ** 2) / (2 * sy**2))


def _moments(images):
    """Centroid (x, y), orientation [deg] and size of each (n, 1, 128, 128) image."""
    w = images[:, 0].clamp_min(0)
    m = w.sum((1, 2))
    cx, cy = (w * XX).sum((1, 2)) / m, (w * YY).sum((1, 2)) / m
    dx, dy = XX - cx[:, None, None], YY - cy[:, None, None]
    cxx, cyy = (w * dx**2).sum((1, 2)) / m, (w * dy**2).sum((1, 2)) / m
    cxy = (w * dx * dy).sum((1, 2)) / m
    angle = torch.rad2deg(0.5 * torch.atan2(2 * cxy, cxx - cyy))
    return cx, cy, angle, (cxx + cyy).sqrt()


def _bipole(tilt_deg: float):
    """Leading (west, +) and following (east, -) spots; the leading one north when tilt > 0."""
    t = np.deg2rad(tilt_deg)
    dx, dy = 15 * np.cos(t), 15 * np.sin(t)
    return (_blob(63.5 + dx, 63.5 + dy, 4, 4) - _blob(63.5 - dx, 63.5 - dy, 4, 4))[None, None]


def test_disabled_augmentations_return_the_input():
    x = torch.rand(3, 1, 128, 128)
    assert torch.equal(augment(x, AugmentConfig("off", **ONLY)), x)


def test_flip_alone_is_a_north_south_flip_half_the_time():
    x = torch.rand(1, 1, 128, 128).expand(64, 1, 128, 128).contiguous()
    out = augment(
        x, AugmentConfig("flip", **{**ONLY, "vflip": True}), torch.Generator().manual_seed(0)
    )
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    flipped = torch.isclose(out, x.flip(-2), atol=1e-5).flatten(1).all(1)
    assert bool((same | flipped).all())
    assert 10 < int(flipped.sum()) < 54


def test_quarter_turns_rotate_by_multiples_of_90_degrees_and_keep_the_parameters():
    x = torch.rand(1, 1, 128, 128).expand(64, 1, 128, 128).contiguous() * 2 - 1
    turns = AugmentConfig("turns", **{**ONLY, "quarter_turns": True})
    out = augment(x, turns, torch.Generator().manual_seed(0))
    turned = torch.stack(
        [
            torch.isclose(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-6).flatten(1).all(1)
            for k in range(4)
        ]
    )  # (4, 64): which turn each view is
    assert bool((turned.sum(0) == 1).all())  # every view is exactly one of the four
    assert bool((turned.sum(1) > 5).all())  # and each turn is drawn
    before = compute_parameters(x[:2, 0].numpy())
    after = compute_parameters(out[:2, 0].numpy())
    for name in ("tuf", "r", "psep", "grad"):
        assert np.allclose(before[name], after[name], rtol=1e-6), name


def test_shift_stays_within_10_pixels():
    x = _blob()[None, None].expand(256, 1, 128, 128)
    out = augment(
        x, AugmentConfig("shift", **{**ONLY, "shift_px": 10.0}), torch.Generator().manual_seed(1)
    )
    cx, cy, _, _ = _moments(out)
    assert float((cx - 63.5).abs().max()) <= 10.05 and float((cy - 63.5).abs().max()) <= 10.05
    assert float((cx - 63.5).abs().max()) > 8  # the range is used


def test_zoom_stays_within_0_8_and_1_2():
    x = _blob()[None, None].expand(256, 1, 128, 128)
    out = augment(
        x, AugmentConfig("zoom", **{**ONLY, "zoom": (0.8, 1.2)}), torch.Generator().manual_seed(2)
    )
    size = _moments(out)[3] / _moments(x[:1])[3]
    assert 0.79 < float(size.min()) < 0.85 and 1.15 < float(size.max()) < 1.21


def test_rotation_stays_within_20_degrees():
    x = _blob(sx=14.0, sy=4.0)[None, None].expand(256, 1, 128, 128)  # elongated along x
    out = augment(
        x, AugmentConfig("rot", **{**ONLY, "rotation_deg": 20.0}), torch.Generator().manual_seed(3)
    )
    angle = _moments(out)[2]
    assert float(angle.abs().max()) <= 20.5 and float(angle.abs().max()) > 15


def test_tilt_sensitive_set_keeps_the_sign_of_the_tilt():
    x = _bipole(tilt_deg=12.0).expand(64, 1, 128, 128)
    out = augment(x, augmentation_set("tilt-sensitive"), torch.Generator().manual_seed(4))
    tilt = compute_parameters(out[:, 0].numpy())["tilt"]
    assert np.all(tilt > 0)


def test_paper_set_flips_the_sign_of_the_tilt_of_some_views():
    x = _bipole(tilt_deg=12.0).expand(64, 1, 128, 128)
    out = augment(x, augmentation_set("paper"), torch.Generator().manual_seed(4))
    tilt = compute_parameters(out[:, 0].numpy())["tilt"]
    assert 10 < np.sum(tilt < 0) < 54


def test_same_seed_gives_the_same_augmentations():
    x = torch.rand(4, 1, 128, 128)
    cfg = augmentation_set("paper")
    a = augment(x, cfg, torch.Generator().manual_seed(7))
    b = augment(x, cfg, torch.Generator().manual_seed(7))
    c = augment(x, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_augmentation_set_is_named():
    with pytest.raises(ValueError, match="unknown augmentation set 'wild'; choose one of"):
        augmentation_set("wild")


def test_augment_rejects_wrong_image_shape():
    with pytest.raises(
        ValueError, match=r"images must have shape \(N, 1, 128, 128\), got \(4, 128, 128\)"
    ):
        augment(torch.zeros(4, 128, 128), augmentation_set("paper"))


def test_bad_zoom_range_is_refused():
    with pytest.raises(ValueError, match=r"AugmentConfig.zoom must be \(low, high\)"):
        AugmentConfig("bad", zoom=(1.2, 0.8))


def test_augmented_pairs_figure_is_written(tmp_path):
    x = torch.stack([_bipole(10.0)[0], _bipole(-10.0)[0]])
    path = augmented_pairs_figure(x, tmp_path / "pairs.png")
    assert path.is_file() and path.stat().st_size > 10_000


def test_blur_widens_a_point_by_its_sigma_and_keeps_its_flux():
    point = torch.zeros(3, 1, 128, 128)
    point[:, 0, 64, 64] = 1.0
    sigma = torch.tensor([0.0, 1.0, 2.5])
    out = gaussian_blur(point, sigma)
    assert torch.equal(out[0], point[0])  # sigma 0 leaves the image as it was
    for i in (1, 2):
        w = out[i, 0]
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-5)  # flux kept
        variance_x = float((w * (XX - 64) ** 2).sum())  # second moment along x
        assert variance_x == pytest.approx(float(sigma[i]) ** 2, rel=0.02)


def test_blur_set_blurs_each_view_by_its_own_draw_within_the_bound():
    x = _blob(sx=1.0, sy=1.0)[None, None].expand(64, 1, 128, 128).contiguous()
    blur = augmentation_set("blur")
    assert blur.blur_px == 1.5 and not blur.is_identity
    out = augment(x, blur, torch.Generator().manual_seed(0))
    peaks = out.flatten(1).max(1).values  # a wider blur lowers the peak
    assert float(peaks.max()) <= float(x.max()) + 1e-6
    assert float(peaks.std()) > 0.01  # the views differ
    again = augment(x, blur, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # the size a blur of at most 1.5 px can give: sqrt(1 + 1.5^2) px
    size = _moments(out)[3] / np.sqrt(2)
    assert float(size.max()) <= np.sqrt(1 + 1.5**2) + 0.05


def test_blur_is_off_in_every_other_set_and_in_old_checkpoints():
    assert all(c.blur_px == 0 for n, c in AUGMENTATION_SETS.items() if n != "blur")
    assert AugmentConfig.from_dict({"name": "paper"}).blur_px == 0
    with pytest.raises(ValueError, match="blur_px"):
        AugmentConfig("bad", blur_px=-1.0)
