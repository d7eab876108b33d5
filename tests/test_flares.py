"""Tests of sharpseek.data.flares: parsing, HARPNUM/NOAA matching, windows (edges, leap seconds,
the real samples), the catalogue's versions, index payloads and search filters, the CLI.

Hand-written fixture tables here; the shared catalogue (../shared/data/flares) is read in
place, and those tests skip when it is absent.
"""

from __future__ import annotations

import http.server
import json
import shutil
import tempfile
import threading
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sharpseek.config import Settings
from sharpseek.data import flare_tables as FT
from sharpseek.data import flare_windows as FW
from sharpseek.data import flares as F
from sharpseek.data.local_store import LocalStore

pytest_plugins = ["model_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "flares"
SHARED_FLARES = SHARED / "goes_flares_2010_2019.csv"
SHARED_HARPS = SHARED / "harps_2010_2019.csv"
needs_shared = pytest.mark.skipif(
    not SHARED_FLARES.is_file(), reason=f"the shared flare catalogue is absent ({SHARED})"
)
WINDOWS = [
    FW.FlareWindow("history", 24),
    FW.FlareWindow("outcome", 24),
    FW.FlareWindow("outcome", 48),
]

HARPS_CSV = """HARPNUM,T_START,T_END,NOAA_ARS,NX_HMI,NY_HMI
100,2016.12.29_00:00:00_TAI,2017.01.03_00:00:00_TAI,12620,400,200
101,2016.12.29_00:00:00_TAI,2017.01.03_00:00:00_TAI,,300,200
102,2016.12.30_00:00:00_TAI,2017.01.02_00:00:00_TAI,12621,500,300
103,2016.12.25_00:00:00_TAI,2016.12.30_00:00:00_TAI,12621,100,100
104,2016.11.25_00:00:00_TAI,2017.02.05_00:00:00_TAI,12600,100,100
"""
# DATE (YYMMDD), START (HHMM UT, older rows without leading zeros), class letter + value x 10
FLARES_CSV = """DATE,START_TIME,END_TIME,MAX_TIME,LOCATION,CMX,CMX_VALUE,INTENSITY,FLUX,AR,SHARP
161201,0100,0110,,,C,10,1e-6,0,12600,104
161229,0,10,5,,C,20,2e-6,0,12620,100.0
161230,0000,0010,,,M,10,1e-5,0,12620,100
161231,0000,0010,,,C,30,3e-6,0,12620,100
161231,1200,1210,,,C,10,1e-6,0,12620,100
170101,1200,1210,,,M,20,2e-5,0,12620,100
170101,0100,0110,,,X,93,9.3e-4,0,12621,100
161231,300,310,,,B,50,5e-7,0,12620,5
161226,0000,0010,,,C,50,5e-6,0,12621,102
161231,0500,0510,,,C,10,1e-6,0,12999,
161231,0600,0610,,,C,10,1e-6,0,0,
161224,0000,0010,,,C,10,1e-6,0,12621,
170201,0100,0110,,,C,10,1e-6,0,12600,104
"""


def tai(text: str) -> np.datetime64:
    return np.datetime64(text, "s")


@pytest.fixture
def tables(tmp_path):
    flares = tmp_path / "flares.csv"
    harps = tmp_path / "harps.csv"
    flares.write_text(FLARES_CSV)
    harps.write_text(HARPS_CSV)
    return flares, harps


@pytest.fixture
def catalogue(tables, tmp_path):
    flares, harps = tables
    store = LocalStore(tmp_path / "home")
    result = F.save_flare_catalogue(
        store,
        FT.read_flare_table(flares),
        FT.read_harp_table(harps),
        source=str(flares),
        harps_source=str(harps),
    )
    return result.catalogue


def one(catalogue, harp: int, t_rec: str) -> dict:
    return FW.flare_windows(catalogue, [harp], [tai(t_rec)], WINDOWS).iloc[0].to_dict()


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------
def test_classes_come_from_the_letter_and_the_value_times_ten(tables):
    table = FT.read_flare_table(tables[0])
    assert "X9.3" in set(table["goes_class"])
    x93 = table[table["goes_class"] == "X9.3"].iloc[0]
    assert x93["peak_flux"] == pytest.approx(9.3e-4)
    # a start written without leading zeros ("0" is 00:00)
    assert pd.Timestamp("2016-12-29 00:00") in set(pd.to_datetime(table["start_utc"]))


def test_start_times_are_converted_from_utc_to_tai_with_leap_seconds():
    tai_times = F.utc_to_tai(np.array(["2016-12-31T23:59:00", "2017-01-01T00:00:00"], "M8[s]"))
    assert [str(t) for t in tai_times] == ["2016-12-31T23:59:36", "2017-01-01T00:00:37"]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("161231,1200,1210,,,Q,10,1e-6,0,12620,100", r"row 3: unknown GOES class letter 'Q'"),
        ("161331,1200,1210,,,C,10,1e-6,0,12620,100", r"row 3: time does not parse"),
        ("161231,12x0,1210,,,C,10,1e-6,0,12620,100", r"row 3: START_TIME is not HHMM"),
        ("161231,2500,1210,,,C,10,1e-6,0,12620,100", r"row 3: time does not parse"),
        ("161231,1200,1210,,,C,ab,1e-6,0,12620,100", r"row 3: CMX_VALUE is not a number"),
        ("161231,1200,1210,,,C,10,1e-6,0,12620,abc", r"row 3: SHARP 'abc' is not a number"),
    ],
)
def test_a_bad_row_is_an_error_naming_the_row(tmp_path, line, match):
    path = tmp_path / "bad.csv"
    lines = FLARES_CSV.splitlines()
    path.write_text("\n".join([lines[0], lines[1], line, *lines[2:]]) + "\n")
    with pytest.raises(F.FlareCatalogueError, match=match):
        FT.read_flare_table(path)


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(F.FlareCatalogueError, match="missing column"):
        FT.read_flare_table(path)


SWPC = """:Product: 20170906events.txt
:Created: 2017 Sep 07 0302 UT
:Date: 2017 09 06
# Prepared by the U.S. Dept. of Commerce, NOAA, Space Weather Prediction Center
#
#Event    Begin    Max       End  Obs  Q  Type  Loc/Frq   Particulars       Reg#
#-------------------------------------------------------------------------------
3870 +     0857   0909      0917  G15  5   XRA  1-8A      X2.2    9.3E-02   2673
3870       0900   0902      0906  LEA  3   FLA  S09W30   SF      ERU       2673
3880 +     1153   1202      1210  G15  5   XRA  1-8A      X9.3    1.0E+00   2673
3890      B1551   ////      1603  G15  5   XRA  1-8A      M2.5    2.0E-02
:Date: 2017 09 07
3900 +     1420   1436      1455  G15  5   XRA  1-8A      X1.3    1.0E-01   2673
"""


def test_an_swpc_event_list_gives_its_xra_events(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text(SWPC)
    table = FT.read_flare_table(path)
    assert table["goes_class"].tolist() == ["X2.2", "X9.3", "M2.5", "X1.3"]
    assert table["noaa"].tolist() == [12673, 12673, 0, 12673]  # Reg# is NOAA - 10000
    assert str(table["start_utc"].iloc[1]) == "2017-09-06 11:53:00"
    assert str(table["start_utc"].iloc[3]) == "2017-09-07 14:20:00"
    bad = tmp_path / "bad.txt"
    bad.write_text(SWPC.replace("X9.3    1.0E+00", "Z9.3    1.0E+00"))
    with pytest.raises(F.FlareCatalogueError, match=r"row 10: unknown GOES class 'Z9.3'"):
        FT.read_flare_table(bad)


def test_class_thresholds():
    assert F.class_threshold("M+") == pytest.approx(1e-5)
    assert F.class_threshold("x") == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="GOES class"):
        F.class_threshold("K+")


# ----------------------------------------------------------------------------------------------
# matching
# ----------------------------------------------------------------------------------------------
def test_harpnum_is_confirmed_by_the_harp_table_else_noaa_numbers_are_used(catalogue):
    rows = catalogue.flares.set_index("row")
    # reported HARP carries the NOAA number and is alive: by HARPNUM
    assert rows.loc[6, ["harpnum", "matched_by"]].tolist() == [100, "harpnum"]
    # reported HARP 100 does not carry NOAA 12621: HARP 102 carries it and is alive
    assert rows.loc[8, ["harpnum", "matched_by"]].tolist() == [102, "noaa"]
    # a small integer that is no HARP of the table: by NOAA
    assert rows.loc[9, ["harpnum", "matched_by"]].tolist() == [100, "noaa"]
    # reported HARP 102 is not yet alive: the HARP of NOAA 12621 alive then is 103
    assert rows.loc[10, ["harpnum", "matched_by"]].tolist() == [103, "noaa"]
    assert rows.loc[11, "reason"] == "no HARP of the table carries NOAA 12999"
    assert rows.loc[12, "reason"] == "no NOAA number"
    assert rows.loc[13, "reason"] == "no HARP carrying NOAA 12621 is alive at the flare's start"
    assert catalogue.info["counts"] == {
        "flares": 13, "by_harpnum": 7, "by_noaa": 3, "unmatched": 3, "harps": 5,
    }  # fmt: skip


def test_a_lifetime_margin_widens_the_match():
    harps = FT.read_harp_table(HARPS_CSV.encode())
    flare = FT.read_flare_table(
        b"DATE,START_TIME,CMX,CMX_VALUE,AR,SHARP\n170103,0300,M,10,12620,100\n"
    )
    assert F.match_flares(flare, harps)["matched_by"].tolist() == ["unmatched"]
    wide = F.match_flares(flare, harps, margin=np.timedelta64(6, "h"))
    assert wide[["harpnum", "matched_by"]].values.tolist() == [[100, "harpnum"]]


# ----------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------
def test_a_flare_exactly_at_t_rec_is_an_outcome_and_24h_later_is_past_the_24h_window(catalogue):
    # T_REC 2016-12-30 00:00:36 TAI = 00:00:00 UTC (TAI - UTC = 36 s in 2016)
    w = one(catalogue, 100, "2016-12-30T00:00:36")
    # history [12-29 00:00:36, 12-30 00:00:36): the C2.0 of 12-29 00:00 UTC starts exactly at
    # the window's start (closed); the M1.0 of 12-30 00:00 UTC exactly at T_REC is not history
    assert (w["history_24h_max_class"], w["history_24h_c"]) == ("C2.0", 1)
    # outcome: the M1.0 at T_REC is in; the C3.0 of 12-31 00:00 UTC is exactly 24 h later:
    # outside [T_REC, T_REC + 24 h), inside the 48 h window
    assert (w["outcome_24h_max_class"], w["outcome_24h_c"], w["outcome_24h_m"]) == ("M1.0", 1, 1)
    # 48 h: + the C3.0 and the C1.0 of 12-31 12:00 (the B5.0 of 12-31 03:00 is below C)
    assert (w["outcome_48h_c"], w["outcome_48h_m"]) == (3, 1)


def test_windows_across_the_2016_leap_second(catalogue):
    # T_REC + 24 h = 2017-01-01 12:00:37 TAI = 12:00:00 UTC (TAI - UTC = 37 s from 2017):
    # the M2.0 starting 2017-01-01 12:00 UTC lies exactly at the window's end, outside it.
    # A fixed 36 s offset (or none) would put it inside.
    w = one(catalogue, 100, "2016-12-31T12:00:37")
    assert w["outcome_24h_m"] == 0 and w["outcome_48h_m"] == 1
    # history of 2017-01-01 12:00:37 TAI starts 2016-12-31 12:00:37 TAI = 12:00:01 UTC: the
    # C1.0 starting 2016-12-31 12:00 UTC (12:00:36 TAI) is one second too early
    w = one(catalogue, 100, "2017-01-01T12:00:37")
    assert w["history_24h_c"] == 0 and w["outcome_24h_m"] == 1
    w = one(catalogue, 100, "2017-01-01T12:00:36")  # one second earlier: it is in
    assert w["history_24h_c"] == 1


def test_unknown_is_never_quiet(catalogue):
    past = one(catalogue, 104, "2017-02-01T00:00:00")  # outcome reaches past the last flare
    assert past["history_24h_status"] == "known"
    assert past["outcome_24h_status"] == "unknown" and past["outcome_24h_c"] is None
    assert "after the catalogue's last flare" in past["outcome_24h_reason"]
    no_noaa = one(catalogue, 101, "2016-12-31T00:00:00")
    assert {no_noaa[f"{w.name}_status"] for w in WINDOWS} == {"unknown"}
    assert no_noaa["unknown_reason"] == "HARP has no NOAA number"
    stranger = one(catalogue, 9999, "2016-12-31T00:00:00")
    assert stranger["unknown_reason"] == "HARP not in the catalogue's HARP table"
    # HARP 103 ends 2016-12-30 00:00 TAI: its flares are unknown after (never zero)
    ending = one(catalogue, 103, "2016-12-29T12:00:00")
    assert ending["history_24h_status"] == "known"
    assert ending["outcome_24h_status"] == "unknown" and ending["outcome_24h_m"] is None
    assert (
        ending["outcome_24h_reason"] == "window reaches past the HARP's lifetime (T_END + margin)"
    )
    quiet = one(catalogue, 102, "2016-12-31T12:00:00")  # known, no flare: zero, not None
    assert quiet["history_24h_c"] == 0 and quiet["history_24h_max_class"] == "none"


def oracle(catalogue, harp: int, t_rec: np.datetime64) -> dict:
    """The obvious per-frame loop over every matched flare."""
    first, last = catalogue.coverage
    known_harp, born, gone = False, None, None
    for row in catalogue.harps.itertuples():
        if int(row.harpnum) == harp and len(row.noaa_ars) and not pd.isna(row.t_start):
            known_harp, born, gone = True, row.t_start, row.t_end
    own = catalogue.matched[catalogue.matched["harpnum"] == harp]
    out = {}
    for window in WINDOWS:
        start, end = (t_rec + o for o in window.offsets())
        name = window.name
        alive = known_harp and born <= start and end - np.timedelta64(1, "s") <= gone
        if not alive or end > last or start < first:
            out[name] = None
            continue
        inside = [
            f.peak_flux for f in own.itertuples() if start <= np.datetime64(f.start_tai, "s") < end
        ]
        out[name] = (
            max(inside, default=0.0),
            sum(p >= 1e-6 * (1 - 1e-9) for p in inside),
            sum(p >= 1e-5 * (1 - 1e-9) for p in inside),
        )
    return out


def _check_against_oracle(catalogue, harps, t_recs):
    summary = FW.flare_windows(catalogue, harps, t_recs, WINDOWS)
    for i, (harp, t_rec) in enumerate(zip(harps, t_recs, strict=True)):
        expected = oracle(catalogue, int(harp), t_rec)
        row = summary.iloc[i]
        for window in WINDOWS:
            name = window.name
            got = None
            if row[f"{name}_status"] == "known":
                got = (row[f"{name}_max_flux"], row[f"{name}_c"], row[f"{name}_m"])
            assert got == expected[name], (harp, t_rec, name)


def test_vectorised_windows_equal_the_per_frame_oracle(catalogue):
    rng = np.random.default_rng(0)
    harps = rng.choice([100, 101, 102, 103, 104, 9999], 300)
    base = tai("2016-11-28T00:00:00").astype(np.int64)
    t_recs = (base + rng.integers(0, 70 * 86400 // 720, 300) * 720).astype("datetime64[s]")
    _check_against_oracle(catalogue, harps, t_recs)


@pytest.fixture(scope="module")
def shared_catalogue(tmp_path_factory):
    if not SHARED_FLARES.is_file():
        pytest.skip(f"the shared flare catalogue is absent ({SHARED})")
    store = LocalStore(tmp_path_factory.mktemp("shared-home"))
    return F.save_flare_catalogue(
        store,
        FT.read_flare_table(SHARED_FLARES),
        FT.read_harp_table(SHARED_HARPS),
        source=str(SHARED_FLARES),
        harps_source=str(SHARED_HARPS),
    ).catalogue


@needs_shared
def test_the_real_samples_have_their_known_flares(shared_catalogue):
    w = one(shared_catalogue, 7115, "2017-09-06T12:00:00")
    assert w["history_24h_max_class"] == "X9.3"
    assert w["history_24h_m"] >= 3  # X2.2, X9.3 and an M of 09-05
    assert w["outcome_24h_status"] == "known" and w["outcome_24h_m"] >= 1
    x93 = shared_catalogue.matched[
        (shared_catalogue.matched["harpnum"] == 7115)
        & (shared_catalogue.matched["goes_class"] == "X9.3")
    ].iloc[0]
    assert str(x93["start_utc"]) == "2017-09-06 11:53:00"  # 7 min before 12:00 (TAI: 6m23s)
    assert tai("2017-09-06T12:00:00") - np.datetime64(x93["start_tai"], "s") == np.timedelta64(
        383, "s"
    )
    w = one(shared_catalogue, 377, "2011-02-15T02:00:00")
    assert w["history_24h_max_class"] == "X2.2"
    past = one(shared_catalogue, 7115, "2019-06-01T00:00:00")
    assert past["history_24h_status"] == "unknown" and past["outcome_48h_status"] == "unknown"


@needs_shared
def test_shared_windows_equal_the_oracle_on_busy_regions(shared_catalogue):
    rng = np.random.default_rng(1)
    harps = np.array([7115] * 40 + [377] * 40)
    starts = np.array([tai("2017-09-03T00:00:00")] * 40 + [tai("2011-02-12T00:00:00")] * 40)
    t_recs = starts + (rng.integers(0, 8 * 120, 80) * 720).astype("timedelta64[s]")
    _check_against_oracle(shared_catalogue, harps, t_recs)


# ----------------------------------------------------------------------------------------------
# versions
# ----------------------------------------------------------------------------------------------
def test_versions_are_made_only_when_the_content_changes(tables, tmp_path):
    flares, harps = tables
    store = LocalStore(tmp_path / "h")
    args = dict(source="a", harps_source="b")
    table, harp_table = FT.read_flare_table(flares), FT.read_harp_table(harps)
    first = F.save_flare_catalogue(store, table, harp_table, **args)
    again = F.save_flare_catalogue(store, table, harp_table, **args)
    assert (first.created, again.created) == (True, False)
    assert again.catalogue.version == "v0001"
    more = FT.read_flare_table(FLARES_CSV.encode() + b"170102,0100,0110,,,M,50,5e-5,0,12620,100\n")
    second = F.save_flare_catalogue(store, more, harp_table, **args)
    assert second.created and second.catalogue.version == "v0002"
    assert F.latest_flare_version(store) == "v0002"
    assert len(F.load_flare_catalogue(store, "v0001").flares) == 13


# ----------------------------------------------------------------------------------------------
# index payloads, filters, the stage, the CLI
# ----------------------------------------------------------------------------------------------
FRAMES = [
    (100, "2016-12-30T00:00:36"),  # M1.0 at T_REC: outcome M, history C
    (100, "2016-12-31T12:00:37"),  # outcome 24 h: C1.0 only (M2.0 at the window's end)
    (102, "2016-12-31T12:00:00"),  # no flare before; X9.3 of 01-01 01:00 after
    (101, "2016-12-31T00:00:00"),  # no NOAA number: unknown
    (104, "2017-02-01T00:00:00"),  # past the catalogue: outcome unknown
]


@pytest.fixture
def fast_home(tmp_path):
    """A home on tmpfs where there is one: the embedded index fsyncs for every payload index
    it creates (see tests/test_index.py)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path / "home"
        return
    folder = Path(tempfile.mkdtemp(prefix="sharpseek-flares-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def settings(tables, fast_home):
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.index import iter_batches

    flares, harps = tables
    settings = Settings(
        home=fast_home,
        flares={"source": str(flares), "harps": str(harps)},
        index={"spaces": ("region",)},  # random 4-d vectors: one space
    )
    rows = pd.DataFrame(
        {
            "series": ["hmi.sharp_cea_720s"] * len(FRAMES) + ["synthetic"],
            "harpnum": [h for h, _ in FRAMES] + [100],
            "t_rec": pd.to_datetime([t for _, t in FRAMES] + ["2016-12-30T00:00:36"]),
            "tuf": np.linspace(1, 2, len(FRAMES) + 1),
        }
    )
    vectors = np.random.default_rng(0).standard_normal((len(rows), 4)).astype(np.float32)
    with open_settings_index(settings, dim=4) as index:
        index.reindex("enc", iter_batches(rows, vectors), dataset_version="v0001")
    return settings


def rid(harp: int, t_rec: str, series: str = "hmi.sharp_cea_720s") -> str:
    return f"{series}:{harp}:{pd.Timestamp(t_rec):%Y%m%d_%H%M%S}_TAI"


def _payloads(settings) -> dict[str, dict]:
    from sharpseek.pipeline.index_plans import open_settings_index

    with open_settings_index(settings) as index:
        return {r.record_id: r.payload for r in index.get([rid(h, t) for h, t in FRAMES])} | {
            "synthetic": index.get([rid(100, "2016-12-30T00:00:36", "synthetic")])[0].payload
        }


def test_the_stage_writes_payloads_then_updates_them_for_a_new_version(settings, tables):
    from sharpseek.pipeline.flare_steps import flares_stage
    from sharpseek.pipeline.index_plans import open_settings_index

    with open_settings_index(settings) as index:
        before = {
            r.record_id: r.vector for r in index.get([rid(*f) for f in FRAMES], with_vector=True)
        }
    first = flares_stage(settings)
    assert first.outputs["version"] == "v0001"
    assert first.outputs["payloads"] == {
        "frames": 5,
        "written": 5,
        "known": 3,
        "version": "v0001",
        "synthetic": None,  # no synthetic dataset, no ground-truth catalogue
    }
    p = _payloads(settings)
    assert p[rid(*FRAMES[0])]["outcome_24h_max_class"] == "M1.0"
    assert p[rid(*FRAMES[2])]["outcome_24h_max_class"] == "X9.3"
    assert p[rid(*FRAMES[3])]["history_24h_status"] == "unknown"
    assert "history_24h_c" not in p[rid(*FRAMES[3])]  # unknown: no count, never 0
    assert "flare_catalogue" not in p["synthetic"]  # synthetic frames get no flares
    assert flares_stage(settings).outputs["payloads"]["written"] == 0  # up to date
    # a second catalogue version: one more flare (M5.0 on 01-01 00:00 UTC for HARP 100)
    tables[0].write_text(FLARES_CSV + "170101,0000,0010,,,M,50,5e-5,0,12620,100\n")
    second = flares_stage(settings)
    assert second.outputs["version"] == "v0002" and second.outputs["created"]
    p = _payloads(settings)
    assert p[rid(*FRAMES[1])]["outcome_24h_max_class"] == "M5.0"
    assert p[rid(*FRAMES[1])]["flare_catalogue"] == "v0002"
    with open_settings_index(settings) as index:
        after = {
            r.record_id: r.vector for r in index.get([rid(*f) for f in FRAMES], with_vector=True)
        }
    assert all(np.array_equal(before[k], after[k]) for k in before)  # vectors untouched


def test_search_filters_on_history_outcome_and_quiet(settings):
    from sharpseek.pipeline.flare_steps import flares_stage
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.index import SearchFilter

    flares_stage(settings)
    query = np.zeros(4, np.float32)

    def found(**spec) -> set[str]:
        with open_settings_index(settings) as index:
            hits = index.search(query, limit=10, group_by_harp=False, filter=SearchFilter(**spec))
        return {h.record_id for h in hits}

    assert found(outcome=("M+", 24)) == {rid(*FRAMES[0]), rid(*FRAMES[2])}
    assert found(outcome=("X+", 24)) == {rid(*FRAMES[2])}
    # FRAMES[2]'s 48 h reach past HARP 102's lifetime: unknown, so not found
    assert found(outcome=("M+", 48)) == {rid(*FRAMES[0]), rid(*FRAMES[1])}
    assert found(history=("C+", 24)) == {rid(*FRAMES[0]), rid(*FRAMES[1])}
    # quiet: no flare >= C in the 48 h after; unknown frames (HARP 101, past the end) are not
    assert found(quiet=(24, "M")) == {rid(*FRAMES[1])}
    assert found(quiet=(48, "C")) == set()
    with pytest.raises(ValueError, match="no 12 h outcome window"):
        found(outcome=("M+", 12))


def test_cli_load_show_and_search_output(settings, tables, monkeypatch):
    from sharpseek.cli.app import app

    monkeypatch.setenv("SHARPSEEK_FLARES__HARPS", str(tables[1]))
    runner = CliRunner()
    home = str(settings.home)
    out = runner.invoke(app, ["flares", "load", str(tables[0]), "--home", home, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["counts"]["unmatched"] == 3 and len(data["unmatched"]) == 3
    assert data["payloads"]["written"] == 5
    shown = runner.invoke(app, ["flares", "show", rid(*FRAMES[0]), "--home", home, "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)["records"][0]
    assert record["windows"]["outcome_24h"]["largest"] == "M1.0"
    assert record["windows"]["history_24h"]["count_c_or_above"] == 1
    bad = runner.invoke(app, ["flares", "show", "nonsense", "--home", home])
    assert bad.exit_code == 2 and "record id" in bad.output


def test_cli_refuses_a_bad_file_and_writes_nothing(tmp_path, tables, monkeypatch):
    from sharpseek.cli.app import app

    monkeypatch.setenv("SHARPSEEK_FLARES__HARPS", str(tables[1]))
    bad = tmp_path / "bad.csv"
    bad.write_text(FLARES_CSV.replace("161231,0600,0610,,,C,10", "161231,0600,0610,,,K,10"))
    home = tmp_path / "home"
    out = CliRunner().invoke(app, ["flares", "load", str(bad), "--home", str(home)])
    assert out.exit_code == 2
    assert "row 12: unknown GOES class letter 'K'" in out.output
    assert not (home / "flares").exists()


@pytest.fixture
def file_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_stage_picks_up_a_newer_file_from_a_url(settings, file_server):
    from sharpseek.pipeline.flare_steps import flares_stage

    folder, url = file_server
    (folder / "flares.csv").write_text(FLARES_CSV)
    settings = settings.model_copy(
        update={"flares": settings.flares.model_copy(update={"source": f"{url}/flares.csv"})}
    )
    assert flares_stage(settings).outputs["version"] == "v0001"
    assert not flares_stage(settings).outputs["created"]  # the same file: nothing new
    (folder / "flares.csv").write_text(FLARES_CSV + "170101,0000,0010,,,M,50,5e-5,0,12620,100\n")
    newer = flares_stage(settings)
    assert newer.outputs["version"] == "v0002" and newer.outputs["payloads"]["written"] == 5


def test_record_ids_parse():
    assert FW.parse_record_id("hmi.sharp_cea_720s:377:20110215_020000_TAI") == (
        "hmi.sharp_cea_720s",
        377,
        np.datetime64("2011-02-15T02:00:00"),
    )
    with pytest.raises(ValueError, match="record id"):
        FW.parse_record_id("hmi.sharp_cea_720s:377:2011")


def test_summary_text():
    payload = {
        "history_24h_status": "known", "history_24h_max_class": "X9.3", "history_24h_c": 10,
        "history_24h_m": 3, "outcome_24h_status": "unknown",
    }  # fmt: skip
    assert FW.flare_summary(payload) == "24 h before: X9.3 (3 >=M, 10 >=C); 24 h after: unknown"
    assert datetime(2017, 1, 1) - timedelta(hours=24) == datetime(2016, 12, 31)


def test_links_carry_the_flare_filters():
    from sharpseek.search.index import SearchFilter
    from sharpseek.ui.state import ViewState, decode_query, encode_query

    view = ViewState(
        page="search",
        filters=SearchFilter(history=("M+", "24h"), outcome=("x", 48), quiet=(48, "C")),
    )
    query = encode_query(view)
    assert (query["hist"], query["out"], query["quiet"]) == ("M+:24h", "X:48h", "48h:C")
    back = decode_query(query)
    assert back.filters == view.filters and encode_query(back) == query
    with pytest.raises(ValueError, match="hist="):
        decode_query({"page": "search", "hist": "M+"})


def test_results_tables_and_json_show_history_and_outcome():
    from sharpseek.search.index import SearchHit
    from sharpseek.search.results import Query, hits_frame, results_to_json
    from sharpseek.ui.exports import results_table

    payload = {
        "series": "hmi.sharp_cea_720s", "flare_catalogue": "v0002",
        "history_24h_status": "known", "history_24h_max_class": "X9.3", "history_24h_max_flux":
        9.3e-4, "history_24h_c": 10, "history_24h_m": 3, "outcome_24h_status": "unknown",
    }  # fmt: skip
    hit = SearchHit(
        "hmi.sharp_cea_720s:7115:20170906_120000_TAI",
        0.5,
        7115,
        datetime(2017, 9, 6, 12),
        "hmi.sharp_cea_720s:7115",
        payload,
    )
    query = Query(np.zeros(4, np.float32), "enc", "record", "x", None, {})
    frame = hits_frame(query, [hit], jsoc_base="http://jsoc.example")
    assert frame.loc[0, "history_24h_max_class"] == "X9.3"
    assert frame.loc[0, "flares"] == "24 h before: X9.3 (3 >=M, 10 >=C); 24 h after: unknown"
    item = results_to_json(frame)["results"][0]
    assert item["history_24h_m"] == 3 and item["flare_catalogue"] == "v0002"
    table = results_table([hit], jsoc_url="http://jsoc.example")
    assert table.loc[0, "outcome_24h_status"] == "unknown"
    assert "X9.3" in table.loc[0, "flares"]


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
@pytest.mark.parametrize("backend", ["edge", "server-local"])
def test_update_payloads_sets_and_removes_fields_on_both_backends(backend, fast_home):
    from sharpseek.search.index import (
        EdgeIndex,
        IndexConfig,
        SearchFilter,
        ServerIndex,
        iter_batches,
    )

    config = IndexConfig(dim=4)
    index = (
        EdgeIndex(fast_home / "idx", config)
        if backend == "edge"
        else ServerIndex.local(config=config)
    )
    t_recs = ["2016-12-30T00:00:36", "2016-12-31T00:00:00", "2017-01-01T00:00:00"]
    rows = pd.DataFrame(
        {"series": "hmi.sharp_cea_720s", "harpnum": 100, "t_rec": pd.to_datetime(t_recs)}
    )
    vectors = np.eye(3, 4, dtype=np.float32)
    ids = [rid(100, t) for t in t_recs]
    with index:
        index.reindex("enc", iter_batches(rows, vectors), dataset_version="v1")
        fields = {"outcome_24h_max_flux": "float", "outcome_24h_status": "keyword"}
        known = {"outcome_24h_status": "known"}
        written = index.update_payloads(
            {
                ids[0]: {**known, "outcome_24h_max_flux": 2e-5},
                ids[1]: {**known, "outcome_24h_max_flux": 0.0},
                rid(100, "2020-01-01T00:00:00"): {**known, "outcome_24h_max_flux": 1.0},
            },
            fields=fields,
        )
        assert written == 2  # the record the collection lacks is left out
        assert set(fields) <= set(index.live().fields)

        def found(spec: SearchFilter) -> set[str]:
            hits = index.search(np.zeros(4), limit=5, group_by_harp=False, filter=spec)
            return {h.record_id for h in hits}

        assert found(SearchFilter(outcome=("M+", 24))) == {ids[0]}
        assert found(SearchFilter(quiet=(24, "C"))) == {ids[1]}
        # a window that became unknown loses its fields: it matches neither filter
        index.update_payloads({ids[1]: {"outcome_24h_max_flux": None}}, fields=fields)
        if backend == "edge":  # a reader keeps its copy until the next one lands: reopen
            index.close()
            index = EdgeIndex(fast_home / "idx", config)
        assert found(SearchFilter(quiet=(24, "C"))) == set()
        scanned = {r["record_id"]: r for r in index.scan(["outcome_24h_max_flux"])}
        assert scanned[ids[1]]["outcome_24h_max_flux"] is None
        assert scanned[ids[0]]["outcome_24h_max_flux"] == pytest.approx(2e-5)
        assert len(scanned) == 3
    index.close()


def test_cli_flare_options_make_the_filter():
    from sharpseek.cli.search import _filter

    spec = _filter([], None, None, [], [], None, None, None, {"history": "M+", "within": "48h"})
    assert spec.history == ("M+", 48) and spec.outcome is None
    spec = _filter([], None, None, [], [], None, None, None, {"quiet": "48h", "quiet_class": "C"})
    assert spec.quiet == (48, "C")
    with pytest.raises(ValueError, match="--within applies"):
        _filter([], None, None, [], [], None, None, None, {"within": "24h"})
    with pytest.raises(ValueError, match="whole number of hours"):
        _filter([], None, None, [], [], None, None, None, {"outcome": "M+", "within": "1d"})


@needs_shared
@pytest.mark.slow
def test_an_index_build_gives_the_real_samples_their_flares(untrained_home, br_sample_paths):
    """The one road: real samples ingested and indexed with a catalogue held; the index
    write gives the new real frames their flare payloads (no separate step)."""
    from sharpseek.pipeline import flare_steps, index_plans, ingest_plans

    settings = untrained_home.model_copy(
        update={
            "flares": untrained_home.flares.model_copy(
                update={"source": str(SHARED_FLARES), "harps": str(SHARED_HARPS)}
            )
        }
    )
    flare_steps.load_flares(settings)
    ingest_plans.run_ingest_plan(
        settings, ingest_plans.plan_ingest_fits(settings, br_sample_paths), progress=False
    )
    outcome = index_plans.run_index_plan(
        settings, index_plans.plan_index(settings, datasets=["sharp"]), progress=False
    )
    assert outcome.added == len(br_sample_paths) == outcome.flare_payloads
    with index_plans.open_settings_index(settings) as index:
        (frame,) = index.get(["hmi.sharp_cea_720s:7115:20170906_120000_TAI"])
    assert frame.payload["history_24h_max_class"] == "X9.3"
    assert frame.payload["outcome_24h_m"] >= 1 and frame.payload["flare_catalogue"] == "v0001"
