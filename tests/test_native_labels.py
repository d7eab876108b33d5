"""Where a real frame is concerned the native values are shown, labelled; a generated query
keeps its model-space values, labelled too (result cards, exports, uploads)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from sharpseek.science.measure import measure_files
from sharpseek.search.index import SearchHit
from sharpseek.ui import has_native, read_upload, results_table, summary

REAL_PAYLOAD = {
    "series": "hmi.sharp_cea_720s", "tuf": 1.2e6, "r": 2.4e5, "psep": 29.4, "tilt": 31.2,
    "psep_mm": 56.95, "tilt_cea": 17.31, "joy_tilt_cea": 17.31, "r_jsoc": 4.627,
    "flux_imbalance": -0.002, "r_jsoc_segment": "magnetogram",
}  # fmt: skip


def hit(payload):
    return SearchHit("r:1", 0.5, 377, datetime(2011, 2, 15, 2), "hmi.sharp_cea_720s:377", payload)


def test_card_of_a_real_frame_quotes_its_native_values():
    text = summary(REAL_PAYLOAD)
    assert text.startswith("native CEA grid:")
    assert "tilt_cea 17.3 deg" in text and "psep_mm 57.0 Mm" in text  # 3 significant digits
    assert "(magnetogram)" in text and "31.2" not in text  # not the squashed tilt
    assert text.endswith("; model space: TUF 1.20e+06 G px, R 2.40e+05 G px, PSEP 29.4 model px")


def test_card_of_a_generated_image_says_model_space():
    values = {"tuf": 1.0e6, "r": 0.0, "psep": 12.5, "tilt": 40.0}
    assert not has_native(values)
    assert summary(values) == "model space: TUF 1.00e+06 G px, R 0.00 G px, PSEP 12.5 model px"


def test_export_has_native_columns_beside_model_space_ones():
    table = results_table([hit(REAL_PAYLOAD)], {"tuf": 1.0, "tilt": 40.0}, jsoc_url="http://j/")
    assert {"tilt [deg]", "tilt_cea [deg]", "psep_mm [Mm]", "r_jsoc", "r_jsoc_segment"} <= set(
        table.columns
    )
    query, match = table.iloc[0], table.iloc[1]
    assert query["tilt [deg]"] == 40.0 and pd.isna(query["tilt_cea [deg]"])  # generated query
    assert match["tilt_cea [deg]"] == pytest.approx(17.31)
    assert match["r_jsoc_segment"] == "magnetogram"


def test_uploaded_fits_carries_its_native_values(br_sample_paths):
    path = br_sample_paths[0]
    _, meta = read_upload(path.name, path.read_bytes())
    (expected,) = measure_files([path])
    assert has_native(meta)
    for key in ("psep_mm", "tilt_cea", "r_jsoc", "flux_imbalance"):
        assert meta[key] == pytest.approx(expected[key], rel=1e-12, nan_ok=True), key


def test_every_shown_parameter_has_a_definition_that_docs_physics_states():
    from pathlib import Path

    from sharpseek.physics.definitions import (
        NATIVE_PARAMETERS,
        SHOWN_PARAMETERS,
        parameter_definitions,
    )

    rows = parameter_definitions()
    keys = [key for key, *_ in rows]
    assert set(SHOWN_PARAMETERS) | set(NATIVE_PARAMETERS) | {"mu", "lat_fwt", "lon_fwt"} == set(
        keys
    )
    assert all(text for *_, text in rows)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "physics.md").read_text()
    missing = [key for key in keys if f"| `{key}` |" not in docs]
    assert not missing, f"docs/physics.md defines no {missing}"


def test_card_and_export_give_the_disk_position():
    payload = {**REAL_PAYLOAD, "mu": 0.8123, "lat_fwt": 12.34, "lon_fwt": -30.0}
    assert summary(payload).endswith("; position: mu 0.812, lat 12.3 deg, lon -30.0 deg")
    match = results_table([hit(payload)], None, jsoc_url="http://j/").iloc[0]
    assert match["mu"] == pytest.approx(0.8123)
    assert match["lat_fwt [deg]"] == pytest.approx(12.34)
    assert match["lon_fwt [deg]"] == pytest.approx(-30.0)
