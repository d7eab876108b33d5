"""Tests of sharpseek.data.preprocess: the resize to model space and the heliocentric angle.

Reference numbers here test exact behaviour (shapes, scales, constants preserved by the
resize, mu at known points); the real-sample test checks consistency only (sane scales and
values), not accuracy against an external reference.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from sharpseek.data.preprocess import (
    ModelBatch,
    ModelPatch,
    heliocentric_mu,
    to_model_space,
    to_model_space_batch,
)
from sharpseek.physics.definitions import MODEL_SIZE


def _checkerboard(n: int, value: float) -> np.ndarray:
    yy, xx = np.indices((n, n))
    return np.where((yy + xx) % 2 == 0, value, -value)


# ------------------------------------------------------------------------- to_model_space


def test_shape_dtype_and_scales():
    p = to_model_space(np.zeros((300, 512)))
    assert isinstance(p, ModelPatch)
    assert p.image.shape == (MODEL_SIZE, MODEL_SIZE)
    assert p.image.dtype == np.float32
    assert p.scale_x == 512 / 128
    assert p.scale_y == 300 / 128
    assert p.nan_fraction == 0.0


def test_small_patch_is_enlarged_with_scales_below_one():
    p = to_model_space(np.ones((25, 57)))
    assert p.image.shape == (128, 128)
    assert p.scale_x == pytest.approx(57 / 128)
    assert p.scale_y == pytest.approx(25 / 128)


def test_constant_field_stays_constant():
    p = to_model_space(np.full((77, 391), 420.0))
    np.testing.assert_allclose(p.image, 0.42, rtol=1e-6)


def test_clipping_after_resize():
    p = to_model_space(np.full((64, 64), -3000.0))
    assert p.image.min() == -1.0 and p.image.max() == -1.0


def test_resize_happens_before_clipping():
    # a 2 x 2 block pattern of +-3000 G and +1000 G averages to +-1000 G before clipping;
    # clipping first (the reference code) would give +-1 -> 0.
    row = np.tile([3000.0, -1000.0], 128)  # (256,) alternating
    br = np.tile(row, (256, 1))  # columns alternate 3000, -1000
    p = to_model_space(br)
    np.testing.assert_allclose(p.image[4:-4, 4:-4], 1.0, atol=1e-6)


def test_downsampling_averages_like_an_area_filter():
    p = to_model_space(_checkerboard(256, 500.0))
    assert np.abs(p.image).max() < 0.02  # +-0.5 averages to ~0 (bilinear alone would not)


def test_nan_pixels_become_zero_and_are_counted():
    br = np.full((128, 128), 800.0)
    br[:, :64] = np.nan
    p = to_model_space(br)
    assert p.nan_fraction == pytest.approx(0.5)
    assert np.isfinite(p.image).all()
    np.testing.assert_allclose(p.image[:, :60], 0.0)
    np.testing.assert_allclose(p.image[:, 68:], 0.8, rtol=1e-6)


def test_quantity_is_converted_to_gauss():
    p = to_model_space(np.full((50, 90), 0.05) * u.T)  # 0.05 T = 500 G
    np.testing.assert_allclose(p.image, 0.5, rtol=1e-6)


def test_mx_per_cm2_quantity_is_gauss():
    p = to_model_space(np.full((50, 90), 250.0) * u.Mx / u.cm**2)
    np.testing.assert_allclose(p.image, 0.25, rtol=1e-6)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4)])
def test_rejects_non_2d_input(shape):
    with pytest.raises(ValueError, match=r"expected a 2-D Br array \(ny, nx\)"):
        to_model_space(np.zeros(shape))


def test_rejects_empty_array():
    with pytest.raises(ValueError, match="empty Br array"):
        to_model_space(np.zeros((0, 5)))


def test_rejects_all_nan_patch():
    with pytest.raises(ValueError, match="all-NaN Br patch"):
        to_model_space(np.full((20, 30), np.nan))


def test_rejects_non_numeric_input():
    with pytest.raises(ValueError, match="real numeric array"):
        to_model_space(np.array([["a", "b"], ["c", "d"]]))


# ------------------------------------------------------------------- to_model_space_batch


def test_batch_equals_single_patches_in_input_order():
    rng = np.random.default_rng(0)
    brs = [rng.normal(0, 600, shape) for shape in [(100, 200), (50, 70), (100, 200), (300, 129)]]
    brs[1][3, 4] = np.nan
    batch = to_model_space_batch(brs, chunk_size=1)
    assert isinstance(batch, ModelBatch) and len(batch) == 4
    assert batch.images.shape == (4, 128, 128)
    for i, br in enumerate(brs):
        single = to_model_space(br)
        np.testing.assert_array_equal(batch.images[i], single.image)
        assert batch.scale_x[i] == single.scale_x
        assert batch.scale_y[i] == single.scale_y
        assert batch.nan_fraction[i] == single.nan_fraction
        assert batch[i].scale_x == single.scale_x


def test_batch_error_names_the_patch():
    with pytest.raises(ValueError, match=r"all-NaN Br patch \(patch 1\)"):
        to_model_space_batch([np.zeros((4, 4)), np.full((4, 4), np.nan)])


def test_batch_rejects_empty_sequence():
    with pytest.raises(ValueError, match="no patches given"):
        to_model_space_batch([])


def test_batch_rejects_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        to_model_space_batch([np.zeros((4, 4))], chunk_size=0)


# ------------------------------------------------------------------------ heliocentric_mu


def test_mu_is_one_at_disk_centre():
    assert heliocentric_mu(0.0, 0.0, 0.0) == pytest.approx(1.0)


def test_mu_at_60_degrees_longitude():
    assert heliocentric_mu(0.0, 60.0, 0.0) == pytest.approx(np.cos(np.deg2rad(60.0)))


def test_mu_is_one_at_the_sub_observer_point():
    assert heliocentric_mu(7.0, 0.0, 7.0) == pytest.approx(1.0)


def test_mu_is_zero_on_the_limb():
    assert heliocentric_mu(0.0, 90.0, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_mu_broadcasts_and_accepts_quantities():
    lon = np.array([0.0, 30.0, 60.0]) * u.deg
    mu = heliocentric_mu(np.zeros((2, 1)), lon, 0.0)
    assert mu.shape == (2, 3)
    np.testing.assert_allclose(mu[1], np.cos(np.deg2rad([0.0, 30.0, 60.0])))


def test_mu_formula_with_b0():
    lat, lon, b0 = 20.0, -35.0, -6.5
    r = np.deg2rad
    expected = np.sin(r(b0)) * np.sin(r(lat)) + np.cos(r(b0)) * np.cos(r(lat)) * np.cos(r(lon))
    assert heliocentric_mu(lat, lon, b0) == pytest.approx(expected)


# ---------------------------------------------------------------------------- real SHARPs


def _read_br(path):
    with fits.open(path) as hdul:
        hdu = hdul[1]  # CompImageHDU behind an empty primary
        hdu.verify("silentfix")
        return np.asarray(hdu.data, dtype=float), dict(hdu.header)


def test_real_samples_go_through(br_sample_paths):
    for path in br_sample_paths:
        br, header = _read_br(path)
        p = to_model_space(br)
        ny, nx = br.shape
        assert (header["NAXIS1"], header["NAXIS2"]) == (nx, ny)
        assert p.scale_x == pytest.approx(nx / 128) and p.scale_y == pytest.approx(ny / 128)
        assert 1.0 < p.scale_x < 8.0 and 1.0 < p.scale_y < 4.0, path.name
        assert np.isfinite(p.image).all()
        assert -1.0 <= p.image.min() < 0.0 < p.image.max() <= 1.0, path.name  # both polarities
        mu = heliocentric_mu(header["LAT_FWT"], header["LON_FWT"], header["CRLT_OBS"])
        assert 0.0 < mu <= 1.0


def test_real_samples_batch_matches_single(br_sample_paths):
    brs = [_read_br(p)[0] for p in br_sample_paths]
    batch = to_model_space_batch(brs)
    for i, br in enumerate(brs):
        np.testing.assert_array_equal(batch.images[i], to_model_space(br).image)
