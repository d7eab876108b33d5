"""`sharpseek measure` on real and analytic SHARPs: native-scale values beside model-space ones.

Reference numbers and what they test:
- Analytic bipoles (Gaussian spots of known centres, tilt and integral) written as JSOC writes a
  Br segment (Rice-compressed int32, BSCALE 0.01) test *accuracy* of the FITS path: tilt within
  1 degree, separation within 2 %, unsigned flux within 1 %. The same files show the model-space
  tilt of the squashed 128 x 128 image is not the tilt (600 x 200 at 10 degrees reads ~28).
- The real samples test that the magnetogram beside a Br file is used for ``r_jsoc``.
"""

import json
import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.physics.definitions import NATIVE_PARAMETERS, RSUN_REF, SHARP_PIXEL_SCALE
from sharpseek.science.measure import MEASURE_UNITS, MEASURED, measure_files

runner = CliRunner()
PIXEL_MM = (SHARP_PIXEL_SCALE.to_value(u.rad) * RSUN_REF).to_value(u.Mm)
PIXEL_CM2 = ((SHARP_PIXEL_SCALE.to_value(u.rad) * RSUN_REF) ** 2).to_value(u.cm**2)
PEAK, WIDTH = 2000.0, 8.0  # G, native px
#: (nx, ny) of the grid, true tilt [deg], separation [native px]
ANISOTROPIC = [((600, 200), 10.0, 300.0), ((200, 600), 60.0, 300.0), ((300, 300), -25.0, 150.0)]


def write_jsoc_br(path, field, **header):
    """A Br segment as JSOC exports it: empty primary, Rice int32 image with BSCALE 0.01."""
    raw = np.round(np.asarray(field) / 0.01).astype(np.int32)
    hdu = fits.CompImageHDU(data=raw, compression_type="RICE_1")
    cards = {
        "HARPNUM": 9900,
        "T_REC": "2015.03.10_12:00:00_TAI",
        "BUNIT": "Mx/cm^2",
        "CDELT1": 0.03,
        "CDELT2": 0.03,
        "RSUN_REF": 696000000.0,
        "DSUN_OBS": 148500000000.0,
        "LAT_FWT": 15.0,
        "LON_FWT": 0.0,
        "CRLT_OBS": -7.0,
        **header,
    }
    for key, value in cards.items():
        hdu.header[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.header["BSCALE"] = 0.01
        hdu.header["BZERO"] = 0.0
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def analytic_bipole(nx, ny, tilt_deg, separation):
    """Leading (west) spot positive; centres (x, y) of both spots."""
    t = math.radians(tilt_deg)
    cx, cy = nx / 2 + 0.3, ny / 2 - 0.2
    dx, dy = 0.5 * separation * math.cos(t), 0.5 * separation * math.sin(t)
    rows, cols = np.mgrid[0:ny, 0:nx].astype(np.float64)
    spot = lambda x0, y0: np.exp(-((cols - x0) ** 2 + (rows - y0) ** 2) / (2 * WIDTH**2))  # noqa: E731
    return PEAK * spot(cx + dx, cy + dy) - PEAK * spot(cx - dx, cy - dy)


@pytest.mark.parametrize(("grid", "tilt", "separation"), ANISOTROPIC)
def test_fits_path_measures_tilt_separation_and_flux_of_an_analytic_bipole(
    tmp_path, grid, tilt, separation
):
    nx, ny = grid
    path = write_jsoc_br(tmp_path / "hmi.sharp_cea_720s.9900.20150310_120000_TAI.Br.fits",
                         analytic_bipole(nx, ny, tilt, separation))  # fmt: skip
    result = runner.invoke(app, ["measure", "--json", str(path)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["space"] == "native"
    assert row["tilt_cea"] == pytest.approx(tilt, abs=1.0)
    assert row["joy_tilt_cea"] == pytest.approx(-tilt, abs=1.0)  # LAT_FWT +15: north
    assert row["psep_mm"] == pytest.approx(separation * PIXEL_MM, rel=0.02)
    # two spots of peak A and width w: 2 x 2 pi w^2 A G px, times the pixel area
    flux = 2 * 2 * math.pi * WIDTH**2 * PEAK * PIXEL_CM2
    assert row["flux_mx"] == pytest.approx(flux, rel=0.01)
    assert row["r_jsoc_segment"] == "Br"


def test_model_space_tilt_of_a_wide_patch_is_squashed(tmp_path):
    # the case: 600 x 200, true tilt 10 deg; the 128 x 128 image triples the y extent
    path = write_jsoc_br(tmp_path / "wide.fits", analytic_bipole(600, 200, 10.0, 300.0))
    (row,) = measure_files([path])
    expected = math.degrees(math.atan(3 * math.tan(math.radians(10.0))))  # 27.9 deg
    assert row["tilt"] == pytest.approx(expected, abs=1.0)
    assert row["tilt_cea"] == pytest.approx(10.0, abs=1.0)


def test_json_of_an_npy_stack_has_an_object_per_image_and_no_native_values(tmp_path):
    stack = np.zeros((3, 128, 128), dtype=np.float32)
    stack[:, 60:68, 40:48] = 0.5
    stack[:, 60:68, 80:88] = -0.5
    np.save(tmp_path / "gen.npy", stack)
    result = runner.invoke(app, ["measure", "--json", str(tmp_path / "gen.npy")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["file"] for r in rows] == ["gen.npy[0]", "gen.npy[1]", "gen.npy[2]"]
    for row in rows:
        assert set(row) == {"file", "space", *MEASURED, "units"}
        assert row["space"] == "model"
        assert row["units"] == MEASURE_UNITS
        assert all(row[key] is None for key in (*NATIVE_PARAMETERS, "flux_mx", "r_jsoc_segment"))
        assert row["tilt"] == 0.0 and row["psep"] == 40.0


def test_json_of_real_samples_uses_the_magnetogram_where_present(br_sample_paths):
    result = runner.invoke(app, ["measure", "--json", *map(str, br_sample_paths)])
    assert result.exit_code == 0, result.output
    rows = {r["file"]: r for r in json.loads(result.output)}
    assert len(rows) == len(br_sample_paths)
    for name, row in rows.items():
        expected = "magnetogram" if ".377." in name else "Br"
        assert row["r_jsoc_segment"] == expected, name
        assert row["units"]["psep_mm"] == "Mm" and row["units"]["tilt_cea"] == "deg"
        assert row["space"] == "native"


def test_table_labels_model_and_native_values(br_sample_paths):
    result = runner.invoke(app, ["measure", str(br_sample_paths[0])], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "model" in next(line for line in lines if " tilt " in line)
    assert "native" in next(line for line in lines if " tilt_cea " in line)
