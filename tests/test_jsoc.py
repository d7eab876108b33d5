"""SHARP query, export and download through the real drms client, against a fake JSOC.

The fake (tests/fake_jsoc.py) speaks drms's HTTP/JSON protocol on 127.0.0.1. Two record
tables: a built-in one of made-up HARPs 9001/9002 (always available: the export/download
mechanics), and the real header table plus the real Br samples of ../shared (skipped when
absent). Expected counts come from the header table itself (pandas), so they check that
query strings and parsing are consistent with the data, not JSOC's server-side behaviour.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fake_jsoc import (
    FakeJsoc,
    add_native_cadence,
    builtin_record_table,
    real_record_table,
)
from sharpseek.config import JsocSettings, mask_email
from sharpseek.data.fits import read_sharp
from sharpseek.data.jsoc import (
    DEFINITIVE_SERIES,
    NRT_SERIES,
    JsocDownloadError,
    JsocExportError,
    JsocExportTimeout,
    incremental_queries,
    incremental_query,
    make_client,
    prefer_definitive,
    query_records,
)
from sharpseek.data.jsoc_export import export_and_download
from sharpseek.data.jsoc_recordset import build_query

EMAIL = "researcher@example.org"  # registered on the fake server
BUILTIN_QUERY = build_query(
    DEFINITIVE_SERIES,
    harpnums=[9001],
    start="2020.01.01_00:00:00_TAI",
    end="2020.01.01_02:00:00_TAI",
)  # three records: 00:00, 01:00, 02:00


def _name(harp: int, t_rec: str, segment: str = "Br", series: str = DEFINITIVE_SERIES) -> str:
    return f"{series}.{harp}.{t_rec.replace('.', '').replace(':', '')}.{segment}.fits"


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def files_dir(tmp_path_factory) -> Path:
    """Synthetic FITS written by the fake, shared by the servers of this module."""
    return tmp_path_factory.mktemp("fake-jsoc-files")


@pytest.fixture
def fake(files_dir):
    """A fake JSOC serving the built-in record table (no data files needed)."""
    server = FakeJsoc(
        {DEFINITIVE_SERIES: builtin_record_table(), NRT_SERIES: builtin_record_table()},
        files_dir,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def real_tables(header_table_path, br_sample_paths) -> dict[str, pd.DataFrame]:
    """The real header table + Br samples (definitive), and an NRT table overlapping it.

    HARP 1950 gets its 12-minute slots filled between hourly records (native cadence). The
    NRT table repeats HARP 5738's last day and runs three hours past the definitive end.
    """
    definitive = add_native_cadence(real_record_table(header_table_path, br_sample_paths), 1950)
    last_day = definitive[
        (definitive["HARPNUM"] == 5738) & (definitive["T_REC"] >= "2015.07.13_00:00:00_TAI")
    ]
    newer = [last_day.iloc[-1].copy() for _ in range(3)]
    for hour, row in zip((1, 2, 3), newer, strict=True):
        row["T_REC"] = f"2015.07.14_{hour:02d}:00:00_TAI"
    nrt = pd.concat([last_day, pd.DataFrame(newer)], ignore_index=True)
    return {DEFINITIVE_SERIES: definitive, NRT_SERIES: nrt}


@pytest.fixture
def real_fake(real_tables, samples_dir, files_dir):
    """A fake JSOC serving the real tables; the real sample FITS are served as themselves."""
    real_files = {p.name: p for p in samples_dir.glob("hmi.sharp_cea_720s.*.fits")}
    server = FakeJsoc(real_tables, files_dir, real_files=real_files).start()
    yield server
    server.stop()


def _client(server: FakeJsoc):
    return make_client(JsocSettings(server_url=server.url))


def _download(server: FakeJsoc, query: str, dest: Path, **overrides):
    options = dict(
        email=EMAIL,
        retries=3,
        backoff_seconds=0.001,
        timeout_seconds=5.0,
        poll_seconds=0.001,
        progress=False,
    )
    options.update(overrides)
    return export_and_download(_client(server), query, dest, **options)


# ---------------------------------------------------------------- build_query
def test_build_query_harp_list():
    assert build_query(DEFINITIVE_SERIES, harpnums=[7115, 377]) == (
        "hmi.sharp_cea_720s[377,7115][? QUALITY < 65536 ?]"
    )


def test_build_query_time_range_with_cadence():
    query = build_query(
        DEFINITIVE_SERIES,
        start=datetime(2014, 1, 31),
        end="2014.02.04_00:00:00_TAI",
        cadence="12h",
    )
    assert query == (
        "hmi.sharp_cea_720s[][2014.01.31_00:00:00_TAI-2014.02.04_00:00:00_TAI@12h]"
        "[? QUALITY < 65536 ?]"
    )


def test_build_query_accepts_iso_times():
    query = build_query(NRT_SERIES, harpnums=[377], start="2011-02-14T00:00", end="2011-02-15")
    assert query == (
        "hmi.sharp_cea_720s_nrt[377][2011.02.14_00:00:00_TAI-2011.02.15_00:00:00_TAI@1h]"
        "[? QUALITY < 65536 ?]"
    )


def test_build_query_strict_quality_and_noaa():
    query = build_query(DEFINITIVE_SERIES, noaa=11158, quality="strict")
    assert query == 'hmi.sharp_cea_720s[][? QUALITY = 0 ?][? NOAA_ARS ~ "11158" ?]'


def test_build_query_several_noaa_numbers():
    query = build_query(DEFINITIVE_SERIES, noaa=[11158, 12673])
    assert query.endswith('[? NOAA_ARS ~ "11158|12673" ?]')


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"series": "hmi.sharp_720s", "harpnums": [377]}, "series 'hmi.sharp_720s' is not one of"),
        ({"harpnums": [377], "cadence": "1x"}, "cadence '1x' is not like 12m, 1h, 12h or 1d"),
        ({"harpnums": [377], "cadence": "0h"}, "cadence '0h' is not like"),
        ({"harpnums": [377], "cadence": "1.5h"}, "cadence '1.5h' is not like"),
        ({"harpnums": [377], "cadence": "5m"}, "cadence '5m' is not a multiple of the native"),
        (
            {"start": "2014.02.04_00:00:00_TAI", "end": "2014.01.31_00:00:00_TAI"},
            r"end 2014.01.31_00:00:00_TAI is before start 2014.02.04_00:00:00_TAI",
        ),
        ({"harpnums": []}, "harpnums is an empty list"),
        ({"harpnums": [377, -1]}, "harpnums: -1 is not a positive integer"),
        ({"harpnums": "377"}, "harpnums '377' must be a list of integers"),
        ({"start": "2014.01.31_00:00:00_TAI"}, "give both start and end"),
        ({"start": "yesterday", "end": "today"}, "start 'yesterday' is not a datetime"),
        ({"harpnums": [377], "quality": "good"}, "quality 'good' is not one of"),
        ({"noaa": 158}, "noaa: 158 is not a five-digit NOAA"),
        ({}, "the query selects the whole series"),
    ],
)
def test_build_query_rejects(kwargs, match):
    kwargs = {"series": DEFINITIVE_SERIES, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_query(kwargs.pop("series"), **kwargs)


def test_incremental_queries_start_one_step_after_newest_and_share_starts():
    queries = incremental_queries(
        DEFINITIVE_SERIES,
        {377: datetime(2011, 2, 15), 378: datetime(2011, 2, 15), 380: datetime(2011, 2, 16)},
        end="2011.02.17_00:00:00_TAI",
        cadence="12h",
    )
    assert queries == [
        "hmi.sharp_cea_720s[377,378][2011.02.15_12:00:00_TAI-2011.02.17_00:00:00_TAI@12h]"
        "[? QUALITY < 65536 ?]",
        "hmi.sharp_cea_720s[380][2011.02.16_12:00:00_TAI-2011.02.17_00:00:00_TAI@12h]"
        "[? QUALITY < 65536 ?]",
    ]


def test_incremental_queries_skip_harps_already_up_to_date():
    queries = incremental_queries(
        DEFINITIVE_SERIES, {377: datetime(2011, 2, 16, 23, 30)}, end=datetime(2011, 2, 17)
    )
    assert queries == []


# ---------------------------------------------------------------- small helpers
def test_mask_email_hides_the_local_part():
    assert mask_email(EMAIL) == "r***@example.org"


def test_prefer_definitive_drops_nrt_twins_and_flags_replacements():
    t0, t1 = datetime(2020, 1, 1, 0), datetime(2020, 1, 1, 1)
    records = pd.DataFrame(
        {
            "series": [NRT_SERIES, NRT_SERIES, NRT_SERIES, DEFINITIVE_SERIES, "synthetic"],
            "harpnum": [1, 1, 2, 1, 1],
            "t_rec": [t0, t1, t0, t0, t0],
        }
    )
    kept = prefer_definitive(records)
    assert list(zip(kept["series"], kept["harpnum"], kept["t_rec"], strict=True)) == [
        (NRT_SERIES, 1, t1),
        (NRT_SERIES, 2, t0),
        (DEFINITIVE_SERIES, 1, t0),
        ("synthetic", 1, t0),
    ]
    assert kept["replaced_nrt"].tolist() == [False, False, True, False]


def test_prefer_definitive_needs_identity_columns():
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['t_rec'\]"):
        prefer_definitive(pd.DataFrame({"series": [], "harpnum": []}))


# ---------------------------------------------------------------- email
def test_missing_email_names_the_setting_and_asks_nothing(fake, tmp_path):
    with pytest.raises(ValueError, match="set SHARPSEEK_JSOC__EMAIL"):
        _download(fake, BUILTIN_QUERY, tmp_path, email=None)
    with pytest.raises(ValueError, match="SHARPSEEK_JSOC__EMAIL"):
        _download(fake, BUILTIN_QUERY, tmp_path, email="  ")
    assert fake.requests == []


def test_unregistered_email_is_refused_before_exporting(fake, tmp_path):
    with pytest.raises(ValueError, match=r"o\*\*\*@example.org is not registered with JSOC"):
        _download(fake, BUILTIN_QUERY, tmp_path, email="other@example.org")
    assert fake.count("exp_request") == 0


# ---------------------------------------------------------------- queries (built-in table)
def test_query_records_parses_keywords(fake):
    records = query_records(_client(fake), BUILTIN_QUERY)
    assert records["t_rec"].tolist() == [datetime(2020, 1, 1, h) for h in range(3)]
    assert records["series"].unique().tolist() == [DEFINITIVE_SERIES]
    assert records["harpnum"].tolist() == [9001] * 3
    # JSOC prints QUALITY in hex; drms under pandas 3 would turn it into NaN.
    assert records["quality"].tolist() == [0, 0, 0]
    assert records["noaa_ars"].tolist() == ["13001"] * 3
    np.testing.assert_allclose(records["usflux"], [1.0e21, 1.1e21, 1.2e21], rtol=1e-12)
    # NAXIS1/2 are FITS structure, not DRMS keywords: unknown until the file is read.
    assert records["naxis1"].isna().all()


def test_incremental_query_returns_only_newer_records_per_harp(fake):
    newest = {9001: datetime(2020, 1, 1, 2), 9002: datetime(2020, 1, 1, 4)}
    records = incremental_query(
        _client(fake), DEFINITIVE_SERIES, newest, end="2020.01.01_05:00:00_TAI"
    )
    got = list(zip(records["harpnum"], records["t_rec"], strict=True))
    assert got == [
        (9001, datetime(2020, 1, 1, 3)),
        (9001, datetime(2020, 1, 1, 4)),
        (9001, datetime(2020, 1, 1, 5)),
        (9002, datetime(2020, 1, 1, 5)),
    ]
    assert records["query"].nunique() == 2
    assert fake.count("rs_list") == 2


def test_make_client_talks_to_the_configured_server(fake):
    client = make_client(JsocSettings(server_url=fake.url.rstrip("/")))
    assert client.pkeys(DEFINITIVE_SERIES) == ["HARPNUM", "T_REC"]
    assert fake.count("series_struct") == 1


# ---------------------------------------------------------------- export and download
def test_export_downloads_readable_files(fake, tmp_path):
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert result.request_id == "JSOC_20250101_001"
    assert result.missing == []
    assert [p.name for p in result.files] == [
        _name(9001, f"2020.01.01_{h:02d}:00:00_TAI") for h in range(3)
    ]
    sharp = read_sharp(result.files[1])
    assert sharp.meta["harpnum"] == 9001
    assert sharp.meta["t_rec"] == datetime(2020, 1, 1, 1)
    assert sharp.data.shape == (30, 40)
    assert np.isnan(sharp.data).any() and np.nanmax(sharp.data) > 1000
    assert not list(tmp_path.glob("*.part"))


def test_export_never_logs_or_stores_the_email(fake, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="sharpseek.data.jsoc"):
        _download(fake, BUILTIN_QUERY, tmp_path)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "sharpseek.data.jsoc")
    assert "r***@example.org" in ours
    assert EMAIL not in ours
    (state,) = tmp_path.glob("jsoc-export-*.json")
    assert EMAIL not in state.read_text()


def test_export_retries_http_500(fake, tmp_path):
    fake.behaviour.http_500_first = 2
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert len(result.files) == 3
    assert fake.file_requests() == 3 + 2


def test_export_retries_a_connection_cut_mid_file(fake, tmp_path):
    fake.behaviour.cut_first = 1
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    first = result.files[0]
    assert fake.file_requests(first.name) == 2
    assert read_sharp(first).meta["t_rec"] == datetime(2020, 1, 1, 0)


def test_export_failure_status_names_request_and_status(fake, tmp_path):
    fake.behaviour.final_status = 4
    with pytest.raises(JsocExportError, match=r"JSOC_20250101_001 failed with status 4") as info:
        _download(fake, BUILTIN_QUERY, tmp_path)
    assert info.value.request_id == "JSOC_20250101_001"
    assert info.value.status == 4


def test_export_timeout_then_rerun_waits_for_the_same_export(fake, tmp_path):
    fake.behaviour.never_finish = True
    with pytest.raises(JsocExportTimeout, match=r"JSOC_20250101_001 still pending .* after 0.05 s"):
        _download(fake, BUILTIN_QUERY, tmp_path, timeout_seconds=0.05)
    fake.behaviour.never_finish = False
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert result.request_id == "JSOC_20250101_001"
    assert len(result.files) == 3
    assert fake.count("exp_request") == 1


def test_export_with_fewer_files_than_records_lists_the_missing(fake, tmp_path, caplog):
    fake.behaviour.drop_last_records = 1
    with caplog.at_level(logging.WARNING, logger="sharpseek.data.jsoc"):
        result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert len(result.files) == 2
    assert result.missing == ["hmi.sharp_cea_720s[9001][2020.01.01_02:00:00_TAI]{Br}"]
    assert "delivered 2 of 3 expected files" in caplog.text


def test_export_nodatafile_counts_as_missing(fake, tmp_path):
    fake.behaviour.nodata_last_records = 2
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert len(result.files) == 1
    assert result.missing == [
        "hmi.sharp_cea_720s[9001][2020.01.01_01:00:00_TAI]{Br}",
        "hmi.sharp_cea_720s[9001][2020.01.01_02:00:00_TAI]{Br}",
    ]


def test_crashed_download_resumes_without_new_export_or_refetching(fake, tmp_path):
    names = [_name(9001, f"2020.01.01_{h:02d}:00:00_TAI") for h in range(3)]
    fake.behaviour.broken_files = {names[1]}
    with pytest.raises(JsocDownloadError, match=names[1]) as info:
        _download(fake, BUILTIN_QUERY, tmp_path, retries=1)
    assert info.value.request_id == "JSOC_20250101_001"
    assert (tmp_path / (names[1] + ".part")).exists()  # as a killed process leaves it
    (state_path,) = tmp_path.glob("jsoc-export-*.json")
    state = json.loads(state_path.read_text())
    assert state["request_id"] == "JSOC_20250101_001"
    assert {n for n, f in state["files"].items() if f["done"]} == {names[0], names[2]}

    fake.behaviour.broken_files = set()
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert [p.name for p in result.files] == names
    assert fake.count("exp_request") == 1
    assert [fake.file_requests(n) for n in names] == [1, 2 + 1, 1]
    assert not list(tmp_path.glob("*.part"))


def test_rerun_after_success_asks_nothing(fake, tmp_path):
    first = _download(fake, BUILTIN_QUERY, tmp_path)
    asked = len(fake.requests)
    again = _download(fake, BUILTIN_QUERY, tmp_path)
    assert again == first
    assert len(fake.requests) == asked


def test_expired_export_is_requested_again_keeping_complete_files(fake, tmp_path):
    first = _download(fake, BUILTIN_QUERY, tmp_path)
    first.files[0].unlink()
    fake.exports.clear()  # JSOC forgot the request (expired): exp_status answers 6
    result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert result.request_id == "JSOC_20250101_002"
    assert fake.count("exp_request") == 2
    assert fake.file_requests(first.files[0].name) == 2
    assert fake.file_requests(first.files[1].name) == 1


def test_unreadable_state_starts_over(fake, tmp_path, caplog):
    _download(fake, BUILTIN_QUERY, tmp_path)
    (state_path,) = tmp_path.glob("jsoc-export-*.json")
    state_path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="sharpseek.data.jsoc"):
        result = _download(fake, BUILTIN_QUERY, tmp_path)
    assert "Ignoring unreadable download state" in caplog.text
    assert result.request_id == "JSOC_20250101_002"
    assert len(result.files) == 3


def test_export_of_no_records_exports_nothing(fake, tmp_path):
    query = build_query(DEFINITIVE_SERIES, harpnums=[9001], start="2021-01-01", end="2021-01-02")
    result = _download(fake, query, tmp_path)
    assert result.files == [] and result.missing == [] and result.request_id == ""
    assert fake.count("exp_request") == 0


def test_export_refuses_other_methods(fake, tmp_path):
    with pytest.raises(ValueError, match="only method='url', protocol='fits'"):
        _download(fake, BUILTIN_QUERY, tmp_path, protocol="as-is")


# ---------------------------------------------------------------- real header table
def test_query_harp_list_finds_the_real_samples(real_fake):
    query = build_query(DEFINITIVE_SERIES, harpnums=[377, 7115])
    records = query_records(_client(real_fake), query)
    assert list(zip(records["harpnum"], records["t_rec"], strict=True)) == [
        (377, datetime(2011, 2, 15, 2, 0)),
        (7115, datetime(2017, 9, 1, 22, 0)),
        (7115, datetime(2017, 9, 6, 12, 0)),
    ]
    np.testing.assert_allclose(records["usflux"], [2.71476e22, 2.953494e21, 4.533103e22])
    assert np.isnan(records["r_value"].iloc[0])  # R_VALUE = nan in the 2011 header


@pytest.mark.parametrize(("cadence", "count"), [("12m", 32), ("1h", 8), ("12h", 1)])
def test_query_cadence_reduces_the_count(real_fake, cadence, count):
    # HARP 1950, 12:00-22:00: 9 hourly records (18:00 has QUALITY 66560, 20:00 and 21:00 are
    # absent), plus the 12-minute slots filled between consecutive hours: 4 x 6 usable.
    query = build_query(
        DEFINITIVE_SERIES,
        harpnums=[1950],
        start="2012.08.19_12:00:00_TAI",
        end="2012.08.19_22:00:00_TAI",
        cadence=cadence,
    )
    assert len(query_records(_client(real_fake), query)) == count


@pytest.mark.parametrize("quality", ["usable", "strict"])
def test_query_quality_filter(real_fake, header_table_path, quality):
    table = pd.read_csv(header_table_path)
    query = build_query(
        DEFINITIVE_SERIES,
        start="2012.01.01_00:00:00_TAI",
        end="2016.01.01_00:00:00_TAI",
        cadence="1h",
        quality=quality,
    )
    records = query_records(_client(real_fake), query)
    keep = table["QUALITY"] < 65536 if quality == "usable" else table["QUALITY"] == 0
    assert len(records) == keep.sum()
    assert 67584 not in set(records["quality"])
    assert (1024 in set(records["quality"])) is (quality == "usable")


@pytest.mark.parametrize(("noaa", "harps"), [(12379, {5738}), (11158, {377}), (12358, {5635})])
def test_query_noaa_filter(real_fake, noaa, harps):
    query = build_query(DEFINITIVE_SERIES, noaa=noaa, cadence="12h")
    records = query_records(_client(real_fake), query)
    assert set(records["harpnum"]) == harps


def test_export_serves_the_real_samples_byte_for_byte(real_fake, samples_dir, tmp_path):
    query = build_query(
        DEFINITIVE_SERIES,
        harpnums=[3700],
        start="2014.01.31_00:00:00_TAI",
        end="2014.02.04_00:00:00_TAI",
        cadence="12m",
    )
    records = query_records(_client(real_fake), query)
    result = _download(real_fake, query, tmp_path)
    assert [p.name for p in result.files] == [
        "hmi.sharp_cea_720s.3700.20140131_024800_TAI.Br.fits",
        "hmi.sharp_cea_720s.3700.20140203_133600_TAI.Br.fits",
    ]
    for path, (_, row) in zip(result.files, records.iterrows(), strict=True):
        assert path.read_bytes() == (samples_dir / path.name).read_bytes()
        meta = read_sharp(path).meta
        for key in ("harpnum", "t_rec", "quality", "noaa_ar", "noaa_ars", "cdelt1"):
            assert meta[key] == row[key], key
        for key in ("usflux", "lat_fwt", "lon_fwt", "crln_obs", "crlt_obs", "r_value"):
            np.testing.assert_allclose(meta[key], row[key], rtol=1e-12, err_msg=key)


def test_export_writes_files_from_real_headers(real_fake, header_table_path, tmp_path):
    query = build_query(
        DEFINITIVE_SERIES,
        harpnums=[5738],
        start="2015.07.08_11:00:00_TAI",
        end="2015.07.08_13:00:00_TAI",
    )
    records = query_records(_client(real_fake), query)
    result = _download(real_fake, query, tmp_path)
    table = pd.read_csv(header_table_path)
    assert len(result.files) == len(records) == 3
    for path, (_, row) in zip(result.files, records.iterrows(), strict=True):
        sharp = read_sharp(path)
        header = table[(table["HARPNUM"] == 5738) & (table["T_REC"] == sharp.header["T_REC"])]
        assert sharp.data.shape == (header["NAXIS2"].item(), header["NAXIS1"].item())
        for key in ("harpnum", "t_rec", "quality", "noaa_ar", "noaa_ars"):
            assert sharp.meta[key] == row[key], key
        for key in ("usflux", "lat_fwt", "lon_fwt", "crval1", "crlt_obs", "r_value"):
            np.testing.assert_allclose(sharp.meta[key], row[key], rtol=1e-12, err_msg=key)
    assert records["quality"].tolist() == [0, 0, 1024]


def test_prefer_definitive_across_both_series(real_fake):
    client = _client(real_fake)
    span = {
        "harpnums": [5738],
        "start": "2015.07.13_22:00:00_TAI",
        "end": "2015.07.14_03:00:00_TAI",
    }
    both = pd.concat(
        [
            query_records(client, build_query(DEFINITIVE_SERIES, **span)),
            query_records(client, build_query(NRT_SERIES, **span)),
        ],
        ignore_index=True,
    )
    kept = prefer_definitive(both)
    assert list(zip(kept["series"], kept["t_rec"].dt.hour, strict=True)) == [
        (DEFINITIVE_SERIES, 22),
        (DEFINITIVE_SERIES, 23),
        (DEFINITIVE_SERIES, 0),
        (NRT_SERIES, 1),
        (NRT_SERIES, 2),
        (NRT_SERIES, 3),
    ]
    assert kept["replaced_nrt"].tolist() == [True, True, True, False, False, False]
