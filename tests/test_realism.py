"""Realism measures: KS distances against real SHARP headers."""

import numpy as np
import pandas as pd
import pytest

from sharpseek.science.realism import compare_with_headers, flux_balance, read_header_table


def _manifest_like(headers: pd.DataFrame) -> pd.DataFrame:
    """A manifest whose columns are copied from real headers: every KS distance must be 0."""
    return pd.DataFrame(
        {
            "flux_strong_mx": headers["USFLUX"],
            "naxis1": headers["NAXIS1"],
            "naxis2": headers["NAXIS2"],
            "lat_fwt": headers["LAT_FWT"],
            "flux_positive_mx": headers["MPOS_TOT"],
            "flux_negative_mx": headers["MNEG_TOT"],
        }
    )


def test_flux_balance_of_balanced_and_unipolar():
    np.testing.assert_allclose(flux_balance([1, 2, 0], [1, 0, 3]), [0.0, 1.0, -1.0])
    assert np.isnan(flux_balance([0], [0])[0])


def test_identical_distributions_have_zero_ks(header_table_path):
    headers = read_header_table(header_table_path)
    for c in compare_with_headers(_manifest_like(headers), headers):
        assert c.ks == pytest.approx(0.0, abs=1e-12), c.name


def test_shifted_latitudes_are_detected(header_table_path):
    headers = read_header_table(header_table_path)
    manifest = _manifest_like(headers)
    manifest["lat_fwt"] = manifest["lat_fwt"] + 60.0
    ks = {c.name: c.ks for c in compare_with_headers(manifest, headers)}
    assert ks["latitude"] > 0.99
    assert ks["flux"] == pytest.approx(0.0, abs=1e-12)


def test_header_table_without_needed_columns_is_refused(tmp_path):
    path = tmp_path / "h.csv"
    pd.DataFrame({"USFLUX": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="lacks the columns .*LAT_FWT"):
        read_header_table(path)
