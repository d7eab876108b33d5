"""Reading SHARP FITS as JSOC exports them."""

import math
from datetime import datetime

import pytest

from sharpseek.data.fits import parse_t_rec, read_sharp


def test_parse_t_rec_of_jsoc_form():
    assert parse_t_rec("2014.01.31_02:48:00_TAI") == datetime(2014, 1, 31, 2, 48)


def test_parse_t_rec_refuses_other_forms():
    with pytest.raises(ValueError, match="not in JSOC's form"):
        parse_t_rec("31/01/2014")


def test_real_br_samples_read_with_metadata(br_sample_paths):
    for path in br_sample_paths:
        sharp = read_sharp(path)
        assert sharp.meta["series"] == "hmi.sharp_cea_720s"
        assert sharp.data.shape == (sharp.meta["naxis2"], sharp.meta["naxis1"])
        assert str(sharp.meta["harpnum"]) in path.name
        assert f"{sharp.meta['t_rec']:%Y%m%d_%H%M%S}" in path.name


def test_old_header_nan_keyword_reads_as_float_nan(samples_dir):
    sharp = read_sharp(samples_dir / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits")
    assert isinstance(sharp.meta["r_value"], float) and math.isnan(sharp.meta["r_value"])


def test_not_fits_is_an_error(tmp_path):
    path = tmp_path / "x.fits"
    path.write_bytes(b"this is not FITS")
    with pytest.raises(ValueError, match=r"x\.fits: not a readable FITS image"):
        read_sharp(path)


def test_a_header_claiming_more_data_than_the_file_holds_is_a_value_error(tmp_path):
    from astropy.io import fits

    header = fits.Header()
    header.update(SIMPLE=True, BITPIX=-32, NAXIS=2, NAXIS1=200_000, NAXIS2=200_000)
    path = tmp_path / "huge.fits"
    path.write_bytes(header.tostring().encode())
    with pytest.raises(ValueError, match=r"huge\.fits: not a readable FITS image"):
        read_sharp(path)
