"""Catalogues of placed synthetic ARs: ranges, Hale/Joy by placement, distinctness, flux
balance, and the FITS/CSV export (WCS checked against the analytic CEA projection).

A toy generator whose tilt and leading polarity follow known latent axes stands in for the
GAN, so every range has a known answer."""

import csv
import math

import astropy.units as u
import numpy as np
import pytest
import torch

from sharpseek.science.catalogue import make_catalogue
from sharpseek.science.catalogue_export import write_csv, write_fits
from sharpseek.science.catalogue_placement import (
    CatalogueError,
    Placement,
    Range,
    hale_leading_sign,
    placement_ranges,
)
from sharpseek.science.directions import calibrate, fit_directions

torch.set_num_threads(1)
LATENT = 6
TILT_AXIS = np.eye(LATENT)[0]
SIGN_AXIS = np.eye(LATENT)[1]
AMPLITUDE_AXIS = np.eye(LATENT)[2]


def toy_generate(z: np.ndarray) -> np.ndarray:
    """A bipole tilted by 60 tanh(z . TILT_AXIS) deg whose west (leading) polarity is
    positive when z . SIGN_AXIS > 0; the shapes vary with the other axes, so ARs differ."""
    z = np.asarray(z, dtype=np.float64)
    theta = np.deg2rad(60 * np.tanh(z @ TILT_AXIS))
    sign = np.where(z @ SIGN_AXIS > 0, 1.0, -1.0)
    amplitude = 0.3 + 0.6 / (1 + np.exp(-(z @ AMPLITUDE_AXIS)))
    width = 4.0 + 1.5 * np.tanh(z[:, 3])
    half = 14 + 4 * np.tanh(z[:, 4])
    y, x = np.mgrid[:128, :128].astype(np.float64)
    dx, dy = (half * np.cos(theta))[:, None, None], (half * np.sin(theta))[:, None, None]
    w = width[:, None, None]

    def blob(cx, cy):
        return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w**2))

    image = blob(64 + dx, 64 + dy) - 0.7 * blob(64 - dx, 64 - dy)  # unbalanced on purpose
    return (amplitude[:, None, None] * sign[:, None, None] * image).astype(np.float32)


@pytest.fixture(scope="module")
def toy_directions():
    ds = fit_directions(
        toy_generate,
        gan_version="toy-cat",
        latent_dim=LATENT,
        n=500,
        parameters=("tuf", "tilt", "orientation"),
        batch_size=250,
    )
    calibrate(toy_generate, ds, along=("tilt", "orientation"), n_z=30, eps=np.linspace(-3, 3, 7))
    return ds


NORTH = Placement(lat=20.0, lon=10.0, pixel_mm=0.8, cycle=25, date_obs="2024-01-01T00:00:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tilt<-10", ("tilt", "<", -10.0, False)),
        ("TUF > p90", ("tuf", ">", 90.0, True)),
        ("psep>=2.5e1", ("psep", ">", 25.0, False)),
    ],
)
def test_range_strings(text, expected):
    r = Range.parse(text)
    assert (r.parameter, r.op, r.amount, r.percentile) == expected


def test_range_that_cannot_be_read_says_how_to_write_one():
    with pytest.raises(ValueError, match="write e.g. 'tilt<-10'"):
        Range.parse("tilt=5")
    with pytest.raises(ValueError, match="percentile lies in 0..100"):
        Range.parse("tuf>p120")


@pytest.mark.parametrize(
    ("lat", "cycle", "sign"), [(20, 24, -1), (-20, 24, 1), (20, 25, 1), (-20, 25, -1)]
)
def test_hale_leading_polarity_by_hemisphere_and_cycle(lat, cycle, sign):
    assert hale_leading_sign(lat, cycle) == sign


def test_anti_joy_and_anti_hale_become_ranges_on_tilt_and_orientation():
    north = placement_ranges(NORTH, anti_joy=True, anti_hale=True)
    assert [str(r) for r in north] == ["tilt>0", "orientation<0"]  # cycle 25 north leads +
    south = Placement(-20.0, 0.0, 0.8, 24, "2014-01-01T00:00:00")
    assert [str(r) for r in placement_ranges(south, anti_joy=True, anti_hale=True)] == [
        "tilt<0",
        "orientation<0",  # cycle 24 south leads +
    ]
    with pytest.raises(CatalogueError, match="need a hemisphere"):
        placement_ranges(Placement(0.0, 0.0, 1.0, 25, "2024-01-01"), anti_joy=True, anti_hale=False)


def test_placement_refuses_impossible_values():
    with pytest.raises(CatalogueError, match="latitude 95"):
        Placement(95.0, 0.0, 1.0, 25, "2024-01-01")
    with pytest.raises(CatalogueError, match="larger than the Sun"):
        Placement(10.0, 0.0, 50.0, 25, "2024-01-01")


def test_catalogue_meets_its_ranges_and_its_placement(toy_directions):
    cat = make_catalogue(
        toy_generate,
        toy_directions,
        6,
        NORTH,
        ranges=[Range.parse("tilt<p100")],
        anti_joy=True,
        anti_hale=True,
        seed=1,
        batch_size=64,
    )
    assert len(cat) == 6
    for e in cat.entries:
        q = e.quantities
        assert q["tilt"].to_value("deg") > 0 and q["joy_tilt"].to_value("deg") < 0
        assert q["orientation"].value == -1 and q["hale"].value == 0 and q["joy"].value == 0
    # distinct: no two kept images correlate above the threshold
    flat = np.stack([e.image_gauss.ravel() for e in cat.entries]).astype(float)
    corr = np.corrcoef(flat)
    assert np.max(corr[~np.eye(6, dtype=bool)]) < 0.95


def test_anti_joy_in_the_south_flips_the_required_tilt(toy_directions):
    south = Placement(-15.0, 0.0, 0.8, 25, "2024-01-01T00:00:00")
    cat = make_catalogue(toy_generate, toy_directions, 3, south, anti_joy=True, seed=2)
    assert all(e.quantities["tilt"].value < 0 for e in cat.entries)
    assert all(e.quantities["joy"].value == 0 for e in cat.entries)


def test_duplicates_are_rejected(toy_directions):
    # a generator with only two distinct images can give at most two distinct ARs
    def two_images(z):
        z = np.asarray(z).copy()
        z[:, 2:] = 0
        z[:, 0] = np.where(z[:, 0] > 0, 1.0, -1.0)
        z[:, 1] = 1.0
        return toy_generate(z)

    with pytest.raises(CatalogueError, match="found only 2 of 3 distinct ARs"):
        make_catalogue(two_images, toy_directions, 3, NORTH, max_candidates=300, seed=3)


def test_flux_balance_makes_the_net_flux_zero(toy_directions):
    cat = make_catalogue(toy_generate, toy_directions, 2, NORTH, balance=True, seed=4)
    for e in cat.entries:
        net = e.quantities["net_flux"].to_value("Mx")
        assert abs(net) < 1e-5 * e.quantities["tuf"].to_value("Mx")
        # the second blob holds 0.7 of the first's flux: f = sqrt(weaker / stronger)^(+-1)
        leading_positive = e.quantities["orientation"].value > 0
        expected = math.sqrt(0.7) if leading_positive else math.sqrt(1 / 0.7)
        assert e.balance_factor == pytest.approx(expected, rel=1e-2)


def test_unreachable_range_is_a_clear_error(toy_directions):
    with pytest.raises(CatalogueError, match=r"found only 0 of 2 .* tilt>80"):
        make_catalogue(
            toy_generate, toy_directions, 2, NORTH, ranges=[Range.parse("tilt>80")],
            max_candidates=200,
        )  # fmt: skip


def test_range_on_an_unknown_parameter_names_the_known_ones(toy_directions):
    with pytest.raises(KeyError, match="unknown parameter 'flux'; known: .*tilt"):
        make_catalogue(toy_generate, toy_directions, 1, NORTH, ranges=[Range.parse("flux>1")])


def test_physical_units_follow_the_pixel_size(toy_directions):
    small = make_catalogue(toy_generate, toy_directions, 1, NORTH, seed=5).entries[0]
    big_place = Placement(20.0, 10.0, 1.6, 25, "2024-01-01T00:00:00")
    big = make_catalogue(toy_generate, toy_directions, 1, big_place, seed=5).entries[0]
    np.testing.assert_array_equal(small.image_gauss, big.image_gauss)
    assert (big.quantities["tuf"] / small.quantities["tuf"]).to_value("") == pytest.approx(4.0)
    assert (big.quantities["psep"] / small.quantities["psep"]).to_value("") == pytest.approx(2.0)
    # TUF [Mx] = sum |B| [G] x pixel area [cm^2]
    area = (0.8e8) ** 2
    assert small.quantities["tuf"].to_value("Mx") == pytest.approx(
        np.abs(small.image_gauss.astype(float)).sum() * area, rel=1e-6
    )


# ---------------------------------------------------------------- export
@pytest.fixture(scope="module")
def exported(toy_directions, tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalogue")
    places = [
        Placement(0.0, 0.0, 0.8, 25, "2024-01-01T00:00:00"),  # on the equator: analytic WCS
        Placement(-30.0, 40.0, 0.5, 25, "2024-01-01T00:00:00"),
    ]
    cat = make_catalogue(
        toy_generate,
        toy_directions,
        2,
        places,
        seed=6,
        nearest=lambda images: [[f"hmi:{i}:a", f"hmi:{i}:b"] for i in range(len(images))],
    )
    return cat, write_fits(cat, folder / "cat.fits"), write_csv(cat, folder / "cat.csv")


def test_fits_has_one_gauss_image_per_ar_with_its_parameters_and_z(exported):
    from astropy.io import fits

    cat, path, _ = exported
    with fits.open(path) as hdul:
        assert [h.name for h in hdul[1:]] == ["AR0001", "AR0002"]
        assert hdul[0].header["GAN_VER"] == "toy-cat"
        assert hdul[0].header["DIR_VER"] == cat.directions_version
        for hdu, entry in zip(hdul[1:], cat.entries, strict=True):
            h = hdu.header
            np.testing.assert_array_equal(hdu.data, entry.image_gauss)
            assert h["BUNIT"] == "G"
            assert h["TUF"] == pytest.approx(entry.quantities["tuf"].to_value("Mx"))
            assert h["PSEP"] == pytest.approx(entry.quantities["psep"].to_value("Mm"))
            z = np.array([h[f"Z{j:03d}"] for j in range(LATENT)])
            np.testing.assert_allclose(z, entry.z, rtol=1e-6)
            assert h["NEAR1"].endswith(":a") and h["NEAR2"].endswith(":b")
            for key in ("DATE-OBS", "RSUN_REF", "DSUN_OBS", "HGLN_OBS", "HGLT_OBS"):
                assert key in h, key
            assert (h["CTYPE1"], h["CTYPE2"], h["CUNIT1"], h["CUNIT2"]) == (
                "HGLN-CEA",
                "HGLT-CEA",
                "deg",
                "deg",
            )


def test_wcs_on_the_equator_is_the_analytic_cea_projection(exported):
    from astropy.io import fits
    from astropy.wcs import WCS

    _, path, _ = exported
    with fits.open(path) as hdul:
        header = hdul["AR0001"].header
    wcs = WCS(header)
    cdelt = math.degrees(0.8 / 696.0)  # 0.8 Mm per pixel on a 696 Mm Sun
    assert header["CDELT1"] == pytest.approx(cdelt)
    # 0-based pixel (63.5, 63.5) is the centre of the 128 x 128 image
    lon, lat = wcs.pixel_to_world_values(63.5, 63.5)
    assert (float(lon), float(lat)) == pytest.approx((0.0, 0.0), abs=1e-9)
    # CEA on the equator: x = lon, y = sin(lat) (radians, lambda = 1)
    lon, lat = wcs.pixel_to_world_values(63.5 + 40, 63.5 + 50)
    assert float(lon) == pytest.approx(40 * cdelt, rel=1e-9)
    assert float(lat) == pytest.approx(math.degrees(math.asin(math.radians(50 * cdelt))), rel=1e-9)


def test_wcs_of_a_placed_ar_is_centred_on_its_placement(exported):
    from astropy.io import fits
    from astropy.wcs import WCS

    _, path, _ = exported
    with fits.open(path) as hdul:
        wcs = WCS(hdul["AR0002"].header)
    lon, lat = wcs.pixel_to_world_values(63.5, 63.5)
    assert (float(lon), float(lat)) == pytest.approx((40.0, -30.0), abs=1e-9)
    # one pixel north moves the latitude by about one pixel size (equal-area, near centre)
    _, lat1 = wcs.pixel_to_world_values(63.5, 64.5)
    assert float(lat1) - float(lat) == pytest.approx(math.degrees(0.5 / 696.0), rel=1e-3)


def test_csv_holds_the_same_catalogue(exported):
    cat, _, path = exported
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert rows[1]["lat_deg"] == "-30.0" and rows[0]["nearest_sharps"] == "hmi:0:a;hmi:0:b"
    assert float(rows[0]["tuf_Mx"]) == pytest.approx(cat.entries[0].quantities["tuf"].value)
    assert float(rows[1][f"z{LATENT - 1:03d}"]) == pytest.approx(cat.entries[1].z[-1])
    assert rows[0]["directions_version"] == cat.directions_version


def test_every_ar_opens_as_a_sunpy_map_at_its_placement(exported):
    """What a flux-transport user does first: open each HDU with sunpy."""
    import warnings

    import astropy.units as u
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sunpy's notes about optional extras
        import sunpy.map

    cat, path, _ = exported
    with fits.open(path) as hdul:
        pairs = [(hdu.data, hdu.header) for hdu in hdul[1:]]
    for (data, header), entry, (lat, lon) in zip(
        pairs, cat.entries, [(0.0, 0.0), (-30.0, 40.0)], strict=True
    ):
        m = sunpy.map.Map(data, header)
        assert m.unit == u.G
        assert m.coordinate_frame.name == "heliographic_stonyhurst"
        centre = m.pixel_to_world(63.5 * u.pix, 63.5 * u.pix)
        assert centre.lon.to_value(u.deg) == pytest.approx(lon, abs=1e-6)
        assert centre.lat.to_value(u.deg) == pytest.approx(lat, abs=1e-6)
        np.testing.assert_array_equal(m.data, entry.image_gauss)


# ---------------------------------------------------------------- aspect of the exported AR
WIDE = Placement(20.0, 10.0, 0.8, 25, "2024-01-01T00:00:00", aspect=3.0)


def test_export_shape_keeps_the_area_and_takes_the_aspect():
    ny, nx = Placement(15, 0, 0.36, 25, "2024-01-01", aspect=2.1).export_shape
    assert nx / ny == pytest.approx(2.1, rel=0.01)
    assert nx * ny == pytest.approx(128 * 128, rel=0.01)
    assert NORTH.export_shape == (128, 128)


def test_tilt_bound_is_the_exported_ars():
    # tan(exported) = tan(image) / aspect: 10 deg on a 3:1 export is 27.9 deg on the image
    assert WIDE.model_tilt(10.0) == pytest.approx(27.88, abs=0.01)
    assert WIDE.model_tilt(-10.0) == pytest.approx(-27.88, abs=0.01)
    assert NORTH.model_tilt(-10.0) == -10.0


def test_stretched_catalogue_meets_the_tilt_on_the_exported_ar(toy_directions, tmp_path):
    from sharpseek.physics.native import native_parameters

    cat = make_catalogue(
        toy_generate, toy_directions, 4, WIDE, ranges=[Range.parse("tilt>10")], seed=3
    )
    for entry in cat.entries:
        assert entry.image_gauss.shape == WIDE.export_shape
        measured = native_parameters(entry.image_gauss * u.G)["tilt_cea"].to_value(u.deg)
        assert measured > 10.0  # the range holds on the exported, stretched AR
        # the header's tilt is that of the exported image (float32 in the file)
        assert entry.quantities["tilt"].to_value(u.deg) == pytest.approx(measured, abs=1e-4)
    path = write_fits(cat, tmp_path / "wide.fits")
    from astropy.io import fits

    with fits.open(path) as hdul:
        header = hdul[1].header
        assert hdul[1].data.shape == WIDE.export_shape
        assert header["ASPECT"] == 3.0
        assert header["CRPIX1"] == (WIDE.export_shape[1] + 1) / 2
        assert header["TILT"] > 10.0


def test_an_absurd_aspect_is_refused():
    with pytest.raises(CatalogueError, match="aspect"):
        Placement(15, 0, 0.36, 25, "2024-01-01", aspect=0.0)
