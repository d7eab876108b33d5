"""Ground-truth flares of synthetic regions (docs/synthetic.md): the stated law, the shared
file format, determinism, and a catalogue of their own beside the real one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpseek.config import Settings
from sharpseek.data import flare_tables as FT
from sharpseek.data import flare_windows as FW
from sharpseek.data import flares as F
from sharpseek.data.local_store import LocalStore
from sharpseek.data.synthetic_flares import SyntheticFlareLaw, synthetic_flare_tables

LAW = SyntheticFlareLaw.from_settings(Settings().synthetic)
CADENCE_H = 6.0


def manifest(r_by_harp: dict[int, float], frames: int = 40) -> pd.DataFrame:
    rows = []
    for harp, r in r_by_harp.items():
        start = pd.Timestamp("2014-03-01") + pd.Timedelta(days=harp)
        for k in range(frames):
            rows.append({"harpnum": harp, "t_rec": start + pd.Timedelta(hours=6 * k), "r": r})
    return pd.DataFrame(rows)


def catalogue(store, flares_csv: str, harps_csv: str, root: str = F.PREFIX):
    return F.save_flare_catalogue(
        store,
        FT.read_flare_table(flares_csv.encode(), "flares"),
        FT.read_harp_table(harps_csv.encode(), "harps"),
        source="test",
        harps_source="test",
        root=root,
    )


def test_the_files_read_back_in_the_shared_format_and_every_flare_matches(tmp_path):
    table = manifest({1: 1.0, 2: 3.0, 3: 0.0, 4: 1.0})
    flares_csv, harps_csv = synthetic_flare_tables(table, seed=0, cadence_hours=CADENCE_H, law=LAW)
    assert synthetic_flare_tables(table, seed=0, cadence_hours=CADENCE_H, law=LAW) == (
        flares_csv,
        harps_csv,
    )  # deterministic from the seed
    other, _ = synthetic_flare_tables(table, seed=1, cadence_hours=CADENCE_H, law=LAW)
    assert other != flares_csv
    loaded = catalogue(LocalStore(tmp_path), flares_csv, harps_csv)
    assert loaded.counts["unmatched"] == 0 and loaded.counts["by_noaa"] == 0
    matched = loaded.catalogue.matched
    assert 3 not in set(matched["harpnum"])  # R = 0: no strong-field PIL, no flare
    # every flare lies in its HARP's lifetime (TAI)
    harps = loaded.catalogue.harps.set_index("harpnum")
    for h, group in matched.groupby("harpnum"):
        assert (group["start_tai"] >= harps.loc[h, "t_start"]).all()
        assert (group["start_tai"] <= harps.loc[h, "t_end"]).all()


def test_the_rate_follows_r_and_the_classes_a_power_law():
    # R_ref is the median R: harps at R_ref and at 3 R_ref, many frames for statistics
    table = manifest({1: 1.0, 2: 1.0, 3: 3.0}, frames=4000)
    law = SyntheticFlareLaw(rate_c_per_day=2.0, r_exponent=1.0, alpha=2.0)
    flares_csv, _ = synthetic_flare_tables(table, seed=3, cadence_hours=CADENCE_H, law=law)
    rows = pd.read_csv(pd.io.common.StringIO(flares_csv))
    days = 4000 * CADENCE_H / 24
    per_day = rows.groupby("SHARP").size() / days
    # Poisson: 2000 and 6000 expected in 1000 days; 5 sigma bounds
    assert abs(per_day[1] - 2.0) < 5 * np.sqrt(2.0 * days) / days
    assert abs(per_day[3] - 6.0) < 5 * np.sqrt(6.0 * days) / days
    # alpha = 2: P(>= M | >= C) = 0.1 and P(>= X | >= C) = 0.01
    n = len(rows)
    share_m = (rows["CMX"] != "C").mean()
    share_x = (rows["CMX"] == "X").mean()
    assert abs(share_m - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n)
    assert abs(share_x - 0.01) < 5 * np.sqrt(0.01 * 0.99 / n)


def test_synthetic_frames_take_the_synthetic_catalogue_and_real_frames_the_real_one(tmp_path):
    """HARP 1 exists as a synthetic and as a real HARP: each frame reads its own family."""
    from sharpseek.pipeline.index_plans import open_settings_index, update_flare_payloads
    from sharpseek.search.index import iter_batches

    settings = Settings(home=tmp_path / "home", index={"spaces": ("region",)})
    store = LocalStore(settings.home)
    table = manifest({1: 4.0, 2: 1.0}, frames=12)
    flares_csv, harps_csv = synthetic_flare_tables(table, seed=0, cadence_hours=6, law=LAW)
    synthetic = catalogue(store, flares_csv, harps_csv, F.SYNTHETIC_PREFIX)
    real_flares = (
        "DATE,START_TIME,END_TIME,MAX_TIME,LOCATION,CMX,CMX_VALUE,INTENSITY,FLUX,AR,SHARP\n"
        "140301,0100,,,,C,10,,,12000,1\n140302,0100,,,,X,20,,,12000,1\n"
        "140304,1200,,,,C,10,,,12000,1\n"
    )
    real_harps = (
        "HARPNUM,T_START,T_END,NOAA_ARS,NX_HMI,NY_HMI\n"
        "1,2014.03.01_00:00:00_TAI,2014.03.05_00:00:00_TAI,12000,100,100\n"
    )
    catalogue(store, real_flares, real_harps)
    rows = pd.concat(
        [
            table.assign(series="synthetic"),
            pd.DataFrame(
                {"series": ["hmi.sharp_cea_720s"], "harpnum": [1], "t_rec": ["2014-03-02"]}
            ).assign(t_rec=lambda d: pd.to_datetime(d["t_rec"]), r=0.0),
        ],
        ignore_index=True,
    )
    vectors = np.random.default_rng(0).standard_normal((len(rows), 4)).astype(np.float32)
    with open_settings_index(settings, dim=4) as index:
        index.reindex("enc", iter_batches(rows, vectors), dataset_version="v0001")
    counts = update_flare_payloads(settings)
    assert counts["frames"] == 1 and counts["synthetic"]["frames"] == len(table)
    assert counts["synthetic"]["version"] == "v0001"
    with open_settings_index(settings) as index:
        payloads = {r["record_id"]: r for r in index.scan(["series", "outcome_24h_max_flux"])}
    real = payloads["hmi.sharp_cea_720s:1:20140302_000000_TAI"]
    assert real["outcome_24h_max_flux"] == pytest.approx(2e-4)  # the real X2.0 only
    expected = FW.flare_windows(
        synthetic.catalogue,
        table["harpnum"],
        table["t_rec"].to_numpy("datetime64[s]"),
        [FW.FlareWindow("outcome", 24)],
    )
    got = [
        payloads[f"synthetic:{h}:{pd.Timestamp(t):%Y%m%d_%H%M%S}_TAI"].get("outcome_24h_max_flux")
        for h, t in zip(table["harpnum"], table["t_rec"], strict=True)
    ]
    as_float = [np.nan if v is None else float(v) for v in got]
    want = [np.nan if v is None else float(v) for v in expected["outcome_24h_max_flux"]]
    np.testing.assert_allclose(as_float, want, rtol=1e-6)  # unknown where it is unknown
    assert any(v for v in got)  # HARP 1 at 4 R_ref flares within these days
