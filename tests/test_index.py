"""Tests of sharpseek.search.index.

Contract tests run against both backends: qdrant-edge-py (the real engine, on disk) and
qdrant-client's local mode (the stand-in for a Qdrant server: same client API, but no HTTP,
no HNSW and no payload-index semantics). Expected results come from numpy brute force over
the same rows and vectors, so they test correctness, not only consistency between backends.
Edge-only tests cover persistence, the pointer file and sharing one folder (snapshots,
the write lock).

The contract tests keep their embedded indexes in /dev/shm (tmpfs) where there is one: the
engine fsyncs about ten times per payload index it creates (33 per collection), which on a
shared, busy disk took seconds per collection. The persistence tests use the real disk.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharpseek.config import Settings
from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES, record_id
from sharpseek.search.index import (
    CollectionInfo,
    EdgeIndex,
    EmptyIndexError,
    EncoderMismatchError,
    IndexBusyError,
    IndexConfig,
    SearchFilter,
    ServerIndex,
    SpaceMissingError,
    build_points,
    index_config,
    iter_batches,
    point_id,
    recall_at_k,
    region_key,
)
from sharpseek.search.index.filters import parse_bounds, to_tai

pytestmark = [
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
]

DIM = 100
BACKENDS = ["edge", "server-local"]


# ----------------------------------------------------------------------------------------------
# data: SHARP-like manifest rows, and vectors clustered by region (frames of a HARP alike)
# ----------------------------------------------------------------------------------------------
def make_rows(
    regions: int = 30, frames: int = 8, *, seed: int = 0, series: str = DEFINITIVE_SERIES
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    harp = np.repeat(np.arange(1, regions + 1), frames)
    frame = np.tile(np.arange(frames), regions)
    start = pd.Timestamp("2011-01-01") + pd.to_timedelta(rng.integers(0, 3000, regions), "D")
    lat = (rng.uniform(5, 35, regions) * rng.choice([-1, 1], regions))[harp - 1]
    n = len(harp)
    tuf = rng.lognormal(12, 1, n)
    tuf[3] = np.inf  # a non-finite value is stored as null
    psep = np.where(rng.random(n) < 0.15, np.nan, rng.uniform(3, 60, n))
    noaa = 11000 + harp
    return pd.DataFrame(
        {
            "record_id": "",
            "series": series,
            "harpnum": harp,
            "t_rec": start[harp - 1] + pd.to_timedelta(frame * 12, "h"),
            "noaa_ar": np.where(harp % 5 == 0, 0, noaa),
            "noaa_ars": [
                f"{a},{a + 500}" if h % 5 else "" for a, h in zip(noaa, harp, strict=True)
            ],
            "quality": np.where(rng.random(n) < 0.8, 0, 1024),
            "lat_fwt": lat + rng.normal(0, 0.2, n),
            "lon_fwt": rng.uniform(-70, 70, n),
            "mu": rng.uniform(0.2, 1.0, n),
            "tuf": tuf,
            "psep": psep,
            "psep_mm": psep * 0.36,
            "r": rng.lognormal(10, 1, n),
            "flux_mx": tuf * 1.4e16,
            "bipolar": ~np.isnan(psep),
            "shard": "datasets/x/shards/abc.npy",
            "shard_index": np.arange(n),
            "crval1": rng.uniform(0, 360, n),  # stored, not indexed
        }
    ).assign(record_id=lambda m: [_rid(r) for r in m.itertuples()])


def _rid(row) -> str:
    return record_id(row.series, row.harpnum, row.t_rec)


def make_vectors(rows: pd.DataFrame, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((int(rows["harpnum"].max()) + 1, DIM))
    noise = 0.6 * rng.standard_normal((len(rows), DIM))
    return (centres[rows["harpnum"].to_numpy()] + noise).astype(np.float32)


def open_backend(kind: str, path, config: IndexConfig | None = None):
    if kind == "edge":
        return EdgeIndex(path, config)
    return ServerIndex.local(config=config)


def brute(rows, vectors, query, mask=None) -> list[str]:
    """Record ids by increasing Euclidean distance (numpy), among ``mask``."""
    d = np.linalg.norm(vectors.astype(np.float64) - query, axis=1)
    order = np.argsort(d, kind="stable")
    if mask is not None:
        order = order[np.asarray(mask)[order]]
    return rows["record_id"].to_numpy()[order].tolist()


def brute_grouped(rows, vectors, query, limit, per_region) -> list[str]:
    ranked = brute(rows, vectors, query)
    harp_of = dict(zip(rows["record_id"], rows["harpnum"], strict=True))
    groups: dict[int, list[str]] = {}
    for rid in ranked:
        group = groups.setdefault(harp_of[rid], [])
        if len(group) < per_region:
            group.append(rid)
    return [rid for group in list(groups.values())[:limit] for rid in group]


ROWS = make_rows()
VECTORS = make_vectors(ROWS)


def assert_same_ranking(hits, expected: list[str], query: np.ndarray) -> None:
    """The hits are the expected record ids in order, except that two frames of one region
    whose distances agree to float32 precision may swap (the engine ranks in float32, numpy
    here in float64: such near-ties have no right order)."""
    got = [h.record_id for h in hits]
    assert len(got) == len(expected) and len(set(got)) == len(got), (got, expected)
    d = np.linalg.norm(VECTORS.astype(np.float64) - query, axis=1)
    distance = dict(zip(ROWS["record_id"], d, strict=True))
    harp = dict(zip(ROWS["record_id"], ROWS["harpnum"], strict=True))
    for position, (a, b) in enumerate(zip(got, expected, strict=True)):
        near_tie = harp[a] == harp[b] and np.isclose(distance[a], distance[b], rtol=1e-6)
        assert a == b or near_tie, (position, a, b, distance[a], distance[b])


SHM = Path("/dev/shm")


@pytest.fixture
def fast_dir(tmp_path):
    """A scratch folder on tmpfs when there is one (see the module docstring)."""
    if not SHM.is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="sharpseek-index-", dir=SHM))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def index(request, fast_dir):
    idx = open_backend(request.param, fast_dir / "index")
    yield idx
    idx.close()


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request, tmp_path_factory):
    """An index with ROWS/VECTORS live under encoder version "enc-a" (read-only tests)."""
    folder = tmp_path_factory.mktemp("filled")
    if SHM.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="sharpseek-index-", dir=SHM))
    idx = open_backend(request.param, folder)
    idx.reindex("enc-a", iter_batches(ROWS, VECTORS, 64), dataset_version="v0001")
    yield idx
    idx.close()
    if folder.is_relative_to(SHM):
        shutil.rmtree(folder, ignore_errors=True)


def query_near(i: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed + i)
    return (VECTORS[i] + 0.3 * rng.standard_normal(DIM)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# points: ids and payloads
# ----------------------------------------------------------------------------------------------
def test_point_id_is_a_deterministic_uuid_of_the_record_id():
    rid = record_id(DEFINITIVE_SERIES, 377, datetime(2011, 2, 15, 0, 0))
    assert point_id(rid) == point_id(rid)
    assert uuid.UUID(point_id(rid)).version == 5


def test_synthetic_and_nrt_records_never_share_a_real_records_id():
    when = datetime(2011, 2, 15)
    ids = {point_id(record_id(s, 377, when)) for s in (DEFINITIVE_SERIES, NRT_SERIES, "synthetic")}
    assert len(ids) == 3


def test_region_key_joins_nrt_and_definitive_but_not_synthetic():
    assert region_key(NRT_SERIES, 377) == region_key(DEFINITIVE_SERIES, 377)
    assert region_key("synthetic", 377) != region_key(DEFINITIVE_SERIES, 377)


def test_build_points_record_ids_match_the_dataset_identity():
    points = build_points(ROWS, VECTORS, dim=DIM, dataset_version="v1", encoder_version="e1")
    assert points.record_ids == [_rid(r) for r in ROWS.itertuples()]


def test_payload_holds_time_noaa_physics_and_versions_as_plain_values():
    points = build_points(ROWS, VECTORS, dim=DIM, dataset_version="v1", encoder_version="e1")
    first = points.payloads[0]
    assert first["t_rec"] == f"{ROWS['t_rec'].iloc[0]:%Y-%m-%dT%H:%M:%S}Z"
    assert first["noaa_ars"] == [11001, 11501]
    assert first["dataset_version"] == "v1" and first["encoder_version"] == "e1"
    assert first["region"] == f"{DEFINITIVE_SERIES}:1"
    assert isinstance(first["harpnum"], int) and isinstance(first["bipolar"], bool)
    assert first["crval1"] == pytest.approx(ROWS["crval1"].iloc[0])
    assert "shard" not in first and "shard_index" not in first


def test_payload_stores_nan_and_inf_as_null():
    points = build_points(ROWS, VECTORS, dim=DIM, dataset_version="v1", encoder_version="e1")
    assert points.payloads[3]["tuf"] is None  # inf
    nan_row = int(np.flatnonzero(ROWS["psep"].isna().to_numpy())[0])
    assert points.payloads[nan_row]["psep"] is None


def test_payload_noaa_list_is_empty_without_a_noaa_number():
    points = build_points(ROWS, VECTORS, dim=DIM, dataset_version="v1", encoder_version="e1")
    harp5 = int(np.flatnonzero(ROWS["harpnum"].to_numpy() == 5)[0])
    assert points.payloads[harp5]["noaa_ars"] == []


def test_build_points_refuses_a_record_id_that_disagrees_with_its_identity():
    rows = ROWS.head(3).copy()
    rows.loc[1, "record_id"] = "synthetic:1:20110101_000000_TAI"
    with pytest.raises(ValueError, match="row 1: record_id"):
        build_points(rows, VECTORS[:3], dim=DIM, dataset_version="v", encoder_version="e")


@pytest.mark.parametrize(
    ("vectors", "match"),
    [
        (np.zeros((3, DIM - 1)), r"shape \(3, 99\); expected \(3, 100\)"),
        (np.zeros((2, DIM)), r"shape \(2, 100\); expected \(3, 100\)"),
        (np.full((3, DIM), np.nan), "NaN or infinite"),
    ],
)
def test_build_points_refuses_bad_vectors(vectors, match):
    with pytest.raises(ValueError, match=match):
        build_points(ROWS.head(3), vectors, dim=DIM, dataset_version="v", encoder_version="e")


# ----------------------------------------------------------------------------------------------
# filter spec
# ----------------------------------------------------------------------------------------------
def test_inverted_range_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="inverted range of 'tuf'"):
        SearchFilter(ranges={"tuf": (5e5, 1e5)})


@pytest.mark.parametrize(
    ("text", "separator", "bounds"),
    [("2e5:", ":", (2e5, None)), (":40", ":", (None, 40.0)), (" -5 ..5", "..", (-5.0, 5.0))],
)
def test_typed_bounds_parse_with_either_side_open(text, separator, bounds):
    assert parse_bounds(text, "--range tuf", separator) == bounds


@pytest.mark.parametrize(
    ("text", "separator", "message"),
    [
        ("5", ":", r"--range tuf '5': write low:high \(either side may be empty\)"),
        ("5:1", "..", r"--range tuf '5:1': write low..high"),
        ("a:1", ":", r"--range tuf 'a:1': 'a' is not a number"),
        ("inf:", ":", r"--range tuf 'inf:': 'inf' must be finite"),
    ],
)
def test_typed_bounds_name_the_input_and_what_is_wrong(text, separator, message):
    with pytest.raises(ValueError, match=message):
        parse_bounds(text, "--range tuf", separator)


def test_inverted_time_range_is_refused():
    with pytest.raises(ValueError, match="inverted time range"):
        SearchFilter(time=("2015-01-01", "2014-01-01"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ranges": {"tuf": (float("nan"), 1.0)}}, "NaN bound"),
        ({"ranges": {"tuf": (None, None)}}, "no bound"),
        ({"mu": (0.9, 0.1)}, "inverted mu"),
        ({"hemisphere": "east"}, "unknown hemisphere 'east'"),
        ({"harpnums": []}, "harpnums is an empty list"),
        ({"noaa": [11158.5]}, "not an integer"),
        ({"equals": {"series": []}}, "empty list"),
        ({"time": ("yesterday-ish", None)}, "not a time"),
    ],
)
def test_bad_filter_specs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchFilter(**kwargs)


def test_aware_times_are_converted_to_tai():
    # TAI - UTC = 35 s from July 2012 to July 2015
    assert to_tai(datetime(2014, 1, 1, tzinfo=UTC)) == pd.Timestamp("2014-01-01 00:00:35")
    assert to_tai("2014-01-01T00:00:00") == pd.Timestamp("2014-01-01")  # naive: TAI already


# ----------------------------------------------------------------------------------------------
# contract: search (both backends, against numpy)
# ----------------------------------------------------------------------------------------------
def test_exact_search_returns_the_numpy_nearest_frames_and_distances(filled):
    query = query_near(17)
    hits = filled.search(query, limit=12, group_by_harp=False, exact=True)
    assert [h.record_id for h in hits] == brute(ROWS, VECTORS, query)[:12]
    expected = np.sort(np.linalg.norm(VECTORS.astype(np.float64) - query, axis=1))[:12]
    np.testing.assert_allclose([h.distance for h in hits], expected, rtol=1e-4)


def test_hits_carry_plain_identity_and_payload(filled):
    hit = filled.search(query_near(0), limit=1)[0]
    row = ROWS.set_index("record_id").loc[hit.record_id]
    assert hit.harpnum == row["harpnum"] and hit.t_rec == row["t_rec"]
    assert hit.payload["encoder_version"] == "enc-a"
    assert hit.payload["dataset_version"] == "v0001"
    assert hit.series == row["series"] and hit.parameter("r") == pytest.approx(row["r"])
    assert hit.parameter("no_such_field") != hit.parameter("no_such_field")  # NaN
    assert hit.image is None and hit.with_image(np.zeros((2, 2))).image.shape == (2, 2)
    assert hit.similarity == pytest.approx(1 / (1 + hit.distance))


def test_search_groups_one_best_frame_per_region_by_default(filled):
    query = query_near(40)
    hits = filled.search(query, limit=6)
    assert [h.record_id for h in hits] == brute_grouped(ROWS, VECTORS, query, 6, 1)
    assert len({h.harpnum for h in hits}) == 6


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    row=st.integers(0, len(ROWS) - 1),
    limit=st.integers(1, 35),
    per_region=st.integers(1, 10),
)
def test_grouped_search_matches_numpy_grouping(filled, row, limit, per_region):
    query = query_near(row)
    hits = filled.search(query, limit=limit, per_region=per_region, exact=True)
    assert_same_ranking(hits, brute_grouped(ROWS, VECTORS, query, limit, per_region), query)


def _noaa_mask(numbers):
    lists = build_points(ROWS, VECTORS, dim=DIM, dataset_version="v", encoder_version="e")
    return np.array([bool(set(p["noaa_ars"]) & set(numbers)) for p in lists.payloads])


t0 = ROWS["t_rec"].min() + pd.Timedelta(days=600)
t1 = t0 + pd.Timedelta(days=1500)
FILTER_CASES = {
    "tuf lower bound": (
        SearchFilter(ranges={"tuf": (2e5, None)}),
        lambda m: np.isfinite(m["tuf"]) & (m["tuf"] >= 2e5),
    ),
    "psep_mm range (NaN never matches)": (
        SearchFilter(ranges={"psep_mm": (5.0, 15.0)}),
        lambda m: (m["psep_mm"] >= 5) & (m["psep_mm"] <= 15),
    ),
    "time window": (
        SearchFilter(time=(t0.to_pydatetime(), t1.isoformat())),
        lambda m: (m["t_rec"] >= t0) & (m["t_rec"] <= t1),
    ),
    "t_rec through ranges": (
        SearchFilter(ranges={"t_rec": (t0, None)}),
        lambda m: m["t_rec"] >= t0,
    ),
    "harpnums": (SearchFilter(harpnums=[3, 7, 11]), lambda m: m["harpnum"].isin([3, 7, 11])),
    "noaa (any of a region's numbers)": (
        SearchFilter(noaa=[11004, 11509, 11010]),
        lambda m: _noaa_mask([11004, 11509, 11010]),
    ),
    "north": (SearchFilter(hemisphere="north"), lambda m: m["lat_fwt"] > 0),
    "south and a latitude band": (
        SearchFilter(hemisphere="south", latitude=(-25, -10)),
        lambda m: (m["lat_fwt"] < 0) & (m["lat_fwt"] >= -25) & (m["lat_fwt"] <= -10),
    ),
    "mu": (SearchFilter(mu=(0.6, 1.0)), lambda m: (m["mu"] >= 0.6) & (m["mu"] <= 1.0)),
    "quality equals": (SearchFilter(equals={"quality": 0}), lambda m: m["quality"] == 0),
    "series equals, excluded harps": (
        SearchFilter(equals={"series": [DEFINITIVE_SERIES]}, exclude_harpnums=[1, 2, 3]),
        lambda m: ~m["harpnum"].isin([1, 2, 3]),
    ),
    "everything at once": (
        SearchFilter(
            ranges={"r": (1e4, None), "flux_mx": (None, 1e22)},
            hemisphere="north",
            mu=(0.3, 1.0),
            time=(t0, None),
        ),
        lambda m: (
            (m["r"] >= 1e4)
            & np.isfinite(m["flux_mx"])
            & (m["flux_mx"] <= 1e22)
            & (m["lat_fwt"] > 0)
            & (m["mu"] >= 0.3)
            & (m["t_rec"] >= t0)
        ),
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filtered_search_matches_numpy_on_the_same_rows(filled, case):
    flt, mask_of = FILTER_CASES[case]
    mask = np.asarray(mask_of(ROWS), dtype=bool)
    assert 0 < mask.sum() < len(ROWS)  # the case really filters
    query = query_near(5)
    hits = filled.search(query, limit=15, filter=flt, group_by_harp=False, exact=True)
    assert [h.record_id for h in hits] == brute(ROWS, VECTORS, query, mask)[:15]


def test_a_filter_matching_nothing_returns_an_empty_list(filled):
    flt = SearchFilter(harpnums=[9999])
    assert filled.search(query_near(0), limit=5, filter=flt) == []


def test_hnsw_request_on_a_small_collection_still_returns_the_nearest(filled):
    query = query_near(9)
    hits = filled.search(query, limit=5, group_by_harp=False, exact=False, hnsw_ef=16)
    assert [h.record_id for h in hits] == brute(ROWS, VECTORS, query)[:5]


def test_recall_at_k_is_one_where_search_is_exact(filled):
    assert recall_at_k(filled, np.stack([query_near(i) for i in range(5)]), k=10) == 1.0


def test_get_returns_stored_records_and_vectors(filled):
    rids = [ROWS["record_id"].iloc[4], "synthetic:1:20110101_000000_TAI"]
    found = filled.get(rids, with_vector=True)
    assert [r.record_id for r in found] == rids[:1]
    np.testing.assert_allclose(found[0].vector, VECTORS[4], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# contract: bad input -> clear errors
# ----------------------------------------------------------------------------------------------
def test_unknown_filter_field_is_refused_by_name(filled):
    with pytest.raises(ValueError, match="unknown filter field 'b_total'"):
        filled.search(query_near(0), filter=SearchFilter(ranges={"b_total": (0, 1)}))


def test_a_stored_but_unindexed_field_is_not_filterable(filled):
    with pytest.raises(ValueError, match="unknown filter field 'crval1'"):
        filled.search(query_near(0), filter=SearchFilter(ranges={"crval1": (0, 1)}))


def test_range_on_a_keyword_field_is_refused(filled):
    with pytest.raises(ValueError, match="'series' is a keyword field"):
        filled.search(query_near(0), filter=SearchFilter(ranges={"series": (0, 1)}))


@pytest.mark.parametrize(
    ("vector", "match"),
    [
        (np.zeros(DIM - 1), r"shape \(99,\); expected \(100,\)"),
        (np.zeros((1, DIM)), r"shape \(1, 100\); expected \(100,\)"),
        (np.r_[np.zeros(DIM - 1), np.nan], "1 NaN or infinite"),
        (np.array(["a"] * DIM), "must be numeric"),
    ],
)
def test_bad_query_vectors_are_refused(filled, vector, match):
    with pytest.raises(ValueError, match=match):
        filled.search(vector)


def test_encoder_mismatch_between_query_and_live_collection_is_refused(filled):
    with pytest.raises(EncoderMismatchError, match="'enc-b'.*'enc-a'"):
        filled.search(query_near(0), encoder_version="enc-b")


def test_bad_limits_are_refused(filled):
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        filled.search(query_near(0), limit=0)
    with pytest.raises(ValueError, match="per_region must be a positive integer"):
        filled.search(query_near(0), per_region=0)


def test_search_on_an_empty_index_says_so(index):
    with pytest.raises(EmptyIndexError, match="no live collection"):
        index.search(np.zeros(DIM))


def test_reindex_with_no_records_fails_and_leaves_nothing_live(index):
    with pytest.raises(ValueError, match="wrote no points"):
        index.reindex("enc-a", [], dataset_version="v1")
    assert index.live() is None


def test_reindex_with_wrong_dimension_vectors_fails_before_switching(index):
    index.reindex("enc-a", [(ROWS.head(10), VECTORS[:10])], dataset_version="v1")
    with pytest.raises(ValueError, match=r"expected \(10, 100\)"):
        index.reindex("enc-b", [(ROWS.head(10), VECTORS[:10, :50])], dataset_version="v1")
    assert index.live().encoder_version == "enc-a"


def test_upsert_with_another_encoder_version_is_refused(index):
    index.reindex("enc-a", [(ROWS.head(10), VECTORS[:10])], dataset_version="v1")
    with pytest.raises(EncoderMismatchError):
        index.upsert_records(ROWS, VECTORS, encoder_version="enc-b", dataset_version="v1")


# ----------------------------------------------------------------------------------------------
# contract: writing
# ----------------------------------------------------------------------------------------------
def test_upsert_adds_only_the_records_the_live_collection_lacks(index):
    index.reindex("enc-a", [(ROWS.iloc[:100], VECTORS[:100])], dataset_version="v1")
    result = index.upsert_records(ROWS, VECTORS, encoder_version="enc-a", dataset_version="v2")
    assert (result.added, result.skipped) == (len(ROWS) - 100, 100)
    assert index.count() == len(ROWS)
    again = index.upsert_records(ROWS, VECTORS, encoder_version="enc-a", dataset_version="v2")
    assert (again.added, again.skipped) == (0, len(ROWS))
    assert index.count() == len(ROWS)
    assert index.live().dataset_versions == ("v1", "v2")


def test_rows_repeated_in_one_call_are_added_once(index):
    rows = pd.concat([ROWS.head(5), ROWS.head(5)], ignore_index=True)
    vectors = np.concatenate([VECTORS[:5], VECTORS[:5]])
    result = index.reindex("enc-a", [(rows, vectors)], dataset_version="v1").writes
    assert (result.added, result.skipped) == (5, 5)
    assert index.count() == 5


def _nrt_twins(rows: pd.DataFrame) -> pd.DataFrame:
    nrt = rows.copy()
    nrt["series"] = NRT_SERIES
    nrt["record_id"] = [_rid(r) for r in nrt.itertuples()]
    return nrt


def test_definitive_records_replace_their_nrt_twins(index):
    base = ROWS[ROWS["harpnum"] > 3]
    definitive = ROWS[ROWS["harpnum"] <= 3]
    nrt = _nrt_twins(definitive)
    vec_def = VECTORS[ROWS["harpnum"].to_numpy() <= 3]
    index.reindex(
        "enc-a",
        [(base, VECTORS[ROWS["harpnum"].to_numpy() > 3]), (nrt, vec_def + 0.01)],
        dataset_version="v1",
    )
    assert index.count() == len(ROWS)
    result = index.replace_nrt(definitive, vec_def, encoder_version="enc-a", dataset_version="v2")
    assert (result.added, result.replaced) == (len(definitive), len(definitive))
    assert index.count() == len(ROWS)
    assert index.get(nrt["record_id"].tolist()) == []
    assert len(index.get(definitive["record_id"].tolist())) == len(definitive)


def test_nrt_records_are_not_added_beside_their_definitive_ones(index):
    definitive = ROWS[ROWS["harpnum"] <= 2]
    vec = VECTORS[: len(definitive)]
    index.reindex("enc-a", [(definitive, vec)], dataset_version="v1")
    result = index.upsert_records(
        _nrt_twins(definitive), vec, encoder_version="enc-a", dataset_version="v2"
    )
    assert (result.added, result.superseded) == (0, len(definitive))
    assert index.count() == len(definitive)


def test_nrt_and_definitive_twins_in_one_call_keep_the_definitive(index):
    definitive = ROWS[ROWS["harpnum"] == 1]
    both = pd.concat([_nrt_twins(definitive), definitive], ignore_index=True)
    vec = np.concatenate([VECTORS[: len(definitive)]] * 2)
    result = index.reindex("enc-a", [(both, vec)], dataset_version="v1").writes
    assert (result.added, result.superseded) == (len(definitive), len(definitive))
    assert {h.payload["series"] for h in index.search(vec[0], limit=3, group_by_harp=False)} == {
        DEFINITIVE_SERIES
    }


def test_replace_nrt_takes_definitive_records_only(index):
    index.reindex("enc-a", [(ROWS.head(4), VECTORS[:4])], dataset_version="v1")
    with pytest.raises(ValueError, match="replace_nrt takes records of"):
        index.replace_nrt(
            _nrt_twins(ROWS.head(4)), VECTORS[:4], encoder_version="enc-a", dataset_version="v"
        )


# ----------------------------------------------------------------------------------------------
# contract: collections per encoder version, alias, reindex
# ----------------------------------------------------------------------------------------------
def test_searches_during_a_reindex_see_only_the_old_collection_then_only_the_new(index):
    index.reindex("enc-a", iter_batches(ROWS, VECTORS, 80), dataset_version="v1")
    new_vectors = make_vectors(ROWS, seed=7)
    query = query_near(3)
    seen: list[set[str]] = []

    def batches():
        for batch in iter_batches(ROWS, new_vectors, 40):
            hits = index.search(query, limit=8, group_by_harp=False)
            assert len(hits) == 8  # never empty
            seen.append({h.payload["encoder_version"] for h in hits})
            yield batch
        hits = index.search(query, limit=8, group_by_harp=False)  # all written, not switched
        seen.append({h.payload["encoder_version"] for h in hits})

    result = index.reindex("enc-b", batches(), dataset_version="v1")
    assert seen and all(s == {"enc-a"} for s in seen)
    assert (result.previous, result.points) == ("sharps--enc-a", len(ROWS))
    after = index.search(query, limit=8, group_by_harp=False, encoder_version="enc-b")
    assert {h.payload["encoder_version"] for h in after} == {"enc-b"}
    assert [h.record_id for h in after] == brute(ROWS, new_vectors, query)[:8]


def test_a_failed_reindex_leaves_the_old_collection_live_and_a_rerun_resumes(index):
    index.reindex("enc-a", [(ROWS, VECTORS)], dataset_version="v1")
    new_vectors = make_vectors(ROWS, seed=7)

    def failing():
        batches = iter_batches(ROWS, new_vectors, 60)
        yield next(batches)
        yield next(batches)
        raise OSError("encoder crashed")

    with pytest.raises(OSError, match="encoder crashed"):
        index.reindex("enc-b", failing(), dataset_version="v1")
    assert index.live().encoder_version == "enc-a"
    assert index.search(query_near(0), limit=3)[0].payload["encoder_version"] == "enc-a"
    status = {c["encoder_version"]: c for c in index.status()["collections"]}
    assert status["enc-b"]["complete"] is False and status["enc-b"]["points"] == 120
    with pytest.raises(ValueError, match="incomplete"):
        index.switch("enc-b")
    result = index.reindex("enc-b", iter_batches(ROWS, new_vectors, 60), dataset_version="v1")
    assert (result.writes.added, result.writes.skipped) == (len(ROWS) - 120, 120)
    assert index.live().encoder_version == "enc-b"


def test_reindexing_the_live_encoder_version_is_refused(index):
    index.reindex("enc-a", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
    with pytest.raises(ValueError, match="already live"):
        index.reindex("enc-a", [(ROWS, VECTORS)], dataset_version="v1")


def test_switch_rolls_back_and_the_live_collection_cannot_be_dropped(index):
    index.reindex("enc-a", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
    index.reindex("enc-b", [(ROWS.head(7), VECTORS[:7])], dataset_version="v1")
    with pytest.raises(ValueError, match="is live"):
        index.drop("enc-b")
    index.switch("enc-a")
    assert (index.live().encoder_version, index.count()) == ("enc-a", 5)
    index.drop("enc-b")
    assert [c["encoder_version"] for c in index.status()["collections"]] == ["enc-a"]


def test_reindex_can_drop_the_previous_collection(index):
    index.reindex("enc-a", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
    index.reindex("enc-b", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1", drop_previous=True)
    assert [c["collection"] for c in index.status()["collections"]] == ["sharps--enc-b"]


@pytest.mark.parametrize("version", ["", "a/b", "has space", "x" * 101])
def test_bad_encoder_versions_are_refused(index, version):
    with pytest.raises(ValueError, match="encoder version"):
        index.reindex(version, [(ROWS.head(2), VECTORS[:2])], dataset_version="v1")


# ----------------------------------------------------------------------------------------------
# embedded backend only: persistence, the pointer file, one process, HNSW
# ----------------------------------------------------------------------------------------------
def test_edge_index_persists_and_reopens_from_its_folder(tmp_path):
    with EdgeIndex(tmp_path) as index:
        index.reindex("enc-a", iter_batches(ROWS, VECTORS, 100), dataset_version="v1")
        before = index.search(query_near(2), limit=5)
    with EdgeIndex(tmp_path) as reopened:
        assert reopened.count() == len(ROWS)
        assert reopened.live().encoder_version == "enc-a"
        assert reopened.search(query_near(2), limit=5) == before
        flt = SearchFilter(ranges={"tuf": (2e5, None)})
        assert reopened.search(query_near(2), limit=3, filter=flt)


def test_edge_pointer_is_a_small_file_replaced_whole(fast_dir):
    with EdgeIndex(fast_dir) as index:
        index.reindex("enc-a", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
        assert json.loads(index.pointer.read_text()) == {"collection": "sharps--enc-a"}
        index.reindex("enc-b", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
        assert json.loads(index.pointer.read_text()) == {"collection": "sharps--enc-b"}
    assert not list(fast_dir.glob(".*.tmp"))  # no temporary file left beside it


def test_edge_search_during_a_concurrent_reindex_never_mixes_or_empties(fast_dir):
    index = EdgeIndex(fast_dir)
    index.reindex("enc-a", [(ROWS, VECTORS)], dataset_version="v1")
    new_vectors = make_vectors(ROWS, seed=9)
    seen: list[frozenset] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def searcher():
        try:
            while not stop.is_set():
                hits = index.search(query_near(1), limit=10, group_by_harp=False)
                seen.append(frozenset(h.payload["encoder_version"] for h in hits))
                assert len(hits) == 10
        except BaseException as err:  # reported below
            errors.append(err)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        index.reindex("enc-b", iter_batches(ROWS, new_vectors, 20), dataset_version="v1")
        for _ in range(200):
            if seen and seen[-1] == {"enc-b"}:
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
        index.close()
    assert not errors
    assert set(seen) <= {frozenset({"enc-a"}), frozenset({"enc-b"})}  # never a mix
    first_b = seen.index(frozenset({"enc-b"}))
    assert all(s == {"enc-b"} for s in seen[first_b:])  # never back to the old one


def test_edge_folder_open_in_another_index_is_searched_from_a_snapshot(fast_dir):
    """A second index on the folder (as another process would open it) searches while the
    first one holds it, sees the first one's writes once they are published, never before,
    and a writer that cannot get the write lock gives up with a clear message."""
    with EdgeIndex(fast_dir) as first:
        first.reindex("enc-a", [(ROWS.head(5), VECTORS[:5])], dataset_version="v1")
        second = EdgeIndex(fast_dir, IndexConfig(write_timeout_s=0.3))
        try:
            assert len(second.search(query_near(0), limit=5, group_by_harp=False)) == 5
            first._begin_write("sharps--enc-a")  # a write under way in the first
            with pytest.raises(IndexBusyError, match=r"being written by pid \d+"):
                second.upsert_records(
                    ROWS.iloc[5:10], VECTORS[5:10], encoder_version="enc-a", dataset_version="v1"
                )
            first._end_write("sharps--enc-a")
            first.upsert_records(
                ROWS.iloc[5:10], VECTORS[5:10], encoder_version="enc-a", dataset_version="v1"
            )
            assert second.count() == 10
            seen = [len(second.search(query_near(7), limit=10, group_by_harp=False))]
            deadline = time.monotonic() + 30
            while seen[-1] != 10 and time.monotonic() < deadline:  # the copy lands soon
                time.sleep(0.01)
                seen.append(len(second.search(query_near(7), limit=10, group_by_harp=False)))
            assert set(seen) <= {5, 10} and seen[-1] == 10  # the old snapshot, then the new
        finally:
            second.close()
    assert not list((fast_dir / "readers").iterdir())  # private copies removed on close


def test_edge_unreadable_pointer_is_an_error_not_an_empty_index(fast_dir):
    index = EdgeIndex(fast_dir)
    index.pointer.write_text("{not json")
    with pytest.raises(RuntimeError, match="unreadable"):
        index.search(query_near(0))


def test_edge_hnsw_recall_is_measured_not_assumed(fast_dir):
    rows = make_rows(regions=100, frames=20, seed=3)
    vectors = make_vectors(rows, seed=3)
    config = IndexConfig(exact_threshold=1000, indexing_threshold_kb=1, full_scan_threshold_kb=1)
    with EdgeIndex(fast_dir, config) as index:
        index.reindex("enc-a", iter_batches(rows, vectors), dataset_version="v1")  # builds HNSW
        rng = np.random.default_rng(0)
        queries = vectors[rng.choice(len(rows), 20)] + 0.5 * rng.standard_normal((20, DIM))
        assert recall_at_k(index, queries, k=10, hnsw_ef=256) >= 0.95
        hits = index.search(queries[0], limit=10, group_by_harp=False)  # auto: HNSW here
        assert len(hits) == 10


# ----------------------------------------------------------------------------------------------
# server backend only: the local mode on disk keeps its alias and collection metadata
# ----------------------------------------------------------------------------------------------
def test_server_local_mode_on_disk_persists_alias_and_metadata(tmp_path):
    index = ServerIndex.local(tmp_path)
    index.reindex("enc-a", iter_batches(ROWS, VECTORS, 120), dataset_version="v1")
    before = index.search(query_near(2), limit=4)
    index.close()
    reopened = ServerIndex.local(tmp_path)
    try:
        assert reopened.live().encoder_version == "enc-a"
        assert reopened.live().complete is True
        assert reopened.search(query_near(2), limit=4) == before
    finally:
        reopened.close()


# ----------------------------------------------------------------------------------------------
# two spaces per frame (named vectors): "region" and "symmetric"
# ----------------------------------------------------------------------------------------------
SPACES = ("region", "symmetric")
#: The "symmetric" vectors: row i gets row n-1-i's region vector, so the two spaces disagree
#: on which frame is nearest to a query (and grouping by region ranks other regions first).
SYMMETRIC = VECTORS[::-1].copy()
IN_SPACE = {"region": VECTORS, "symmetric": SYMMETRIC}


def both_spaces(start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    return {space: vectors[start:stop] for space, vectors in IN_SPACE.items()}


@pytest.fixture(params=BACKENDS)
def two_spaces(request, fast_dir):
    """An empty index whose new collections have the spaces "region" and "symmetric"."""
    idx = open_backend(request.param, fast_dir / "index", IndexConfig(spaces=SPACES))
    yield idx
    idx.close()


@pytest.fixture(scope="module", params=BACKENDS)
def filled_two(request, tmp_path_factory):
    """ROWS live under "enc-a" with both spaces (read-only tests)."""
    folder = tmp_path_factory.mktemp("filled-two")
    if SHM.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="sharpseek-index-", dir=SHM))
    idx = open_backend(request.param, folder, IndexConfig(spaces=SPACES))
    idx.reindex("enc-a", iter_batches(ROWS, IN_SPACE, 64), dataset_version="v0001")
    yield idx
    idx.close()
    if folder.is_relative_to(SHM):
        shutil.rmtree(folder, ignore_errors=True)


def _distances(space: str, query: np.ndarray) -> dict[str, float]:
    d = np.linalg.norm(IN_SPACE[space].astype(np.float64) - query, axis=1)
    return dict(zip(ROWS["record_id"], d, strict=True))


@pytest.mark.parametrize("space", SPACES)
def test_search_in_each_space_finds_the_nearest_frames_in_that_space(filled_two, space):
    query = query_near(5)
    expected = brute(ROWS, IN_SPACE[space], query)
    assert brute(ROWS, VECTORS, query)[0] != brute(ROWS, SYMMETRIC, query)[0]  # they disagree
    hits = filled_two.search(query, limit=8, group_by_harp=False, exact=True, space=space)
    assert hits[0].record_id == expected[0]
    distance = _distances(space, query)
    np.testing.assert_allclose(
        [h.distance for h in hits], [distance[r] for r in expected[:8]], rtol=1e-5
    )
    np.testing.assert_allclose(
        [h.distance for h in hits], [distance[h.record_id] for h in hits], rtol=1e-5
    )


def test_search_defaults_to_the_first_space(filled_two):
    query = query_near(9)
    default = filled_two.search(query, limit=5, group_by_harp=False, exact=True)
    region = filled_two.search(query, limit=5, group_by_harp=False, exact=True, space="region")
    assert default == region


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize(("limit", "per_region"), [(5, 1), (4, 3)])
def test_grouped_search_groups_by_region_in_the_space_searched(
    filled_two, space, limit, per_region
):
    query = query_near(40)
    hits = filled_two.search(query, limit=limit, per_region=per_region, exact=True, space=space)
    expected = brute_grouped(ROWS, IN_SPACE[space], query, limit, per_region)
    harp = dict(zip(ROWS["record_id"], ROWS["harpnum"], strict=True))
    distance = _distances(space, query)
    assert [h.harpnum for h in hits] == [harp[r] for r in expected]
    np.testing.assert_allclose(
        [h.distance for h in hits], [distance[r] for r in expected], rtol=1e-5
    )
    np.testing.assert_allclose(
        [h.distance for h in hits], [distance[h.record_id] for h in hits], rtol=1e-5
    )


def test_recall_at_k_in_either_space_is_one_where_search_is_exact(filled_two):
    for space in SPACES:
        assert recall_at_k(filled_two, IN_SPACE[space][:3], k=5, space=space) == 1.0


def test_get_returns_the_vectors_of_every_space(filled_two):
    rids = ROWS["record_id"].iloc[[4, 7]].tolist()
    found = filled_two.get(rids, with_vector=True)
    assert [r.record_id for r in found] == rids
    for record, row in zip(found, (4, 7), strict=True):
        assert set(record.vectors) == set(SPACES)
        np.testing.assert_allclose(record.vector, VECTORS[row], rtol=1e-6)
        np.testing.assert_allclose(record.vectors["region"], VECTORS[row], rtol=1e-6)
        np.testing.assert_allclose(record.vectors["symmetric"], SYMMETRIC[row], rtol=1e-6)
        assert record.vectors["symmetric"].dtype == np.float32
    assert filled_two.get(rids[:1])[0].vectors is None


def test_get_of_a_single_space_collection_gives_its_vector_as_region(filled):
    record = filled.get([ROWS["record_id"].iloc[4]], with_vector=True)[0]
    assert list(record.vectors) == ["region"]
    np.testing.assert_allclose(record.vectors["region"], record.vector)


def test_status_and_live_name_the_spaces(filled_two, filled):
    assert filled_two.live().spaces == SPACES
    assert filled_two.status()["collections"][0]["spaces"] == list(SPACES)
    assert filled.live().spaces == ("region",)
    assert filled.status()["collections"][0]["spaces"] == ["region"]


def test_a_space_the_live_collection_lacks_is_a_clear_error(filled):
    with pytest.raises(SpaceMissingError) as caught:
        filled.search(query_near(0), space="symmetric")
    message = str(caught.value)
    assert "sharps--enc-a" in message and "'symmetric'" in message
    assert "['region']" in message and "sharpseek index build" in message
    assert isinstance(caught.value, ValueError)
    assert filled.search(query_near(0), space="region") == filled.search(query_near(0))


@pytest.mark.parametrize(
    ("vectors", "match"),
    [
        (VECTORS[:20], r"has spaces \['region', 'symmetric'\] but the vectors were given as one"),
        ({"region": VECTORS[:20]}, r"missing \['symmetric'\], extra \[\]"),
        (
            {**both_spaces(0, 20), "flipped": VECTORS[:20]},
            r"given for \['region', 'symmetric', 'flipped'\] \(missing \[\], extra \['flipped'\]",
        ),
        ({"region": VECTORS[:20], "symmetric": VECTORS[:20, :50]}, r"'symmetric' vectors have"),
    ],
)
def test_vectors_not_matching_the_collections_spaces_are_refused_before_any_write(
    two_spaces, vectors, match
):
    rows = ROWS.head(20)
    with pytest.raises(ValueError, match=match) as caught:
        two_spaces.reindex("enc-a", [(rows, vectors)], dataset_version="v1")
    if "spaces" in match or "missing" in match:
        assert "collection sharps--enc-a" in str(caught.value)
    assert two_spaces.status()["collections"] == []  # not even created
    two_spaces.reindex("enc-a", [(rows, both_spaces(0, 20))], dataset_version="v1")
    with pytest.raises(ValueError, match=match):
        two_spaces.upsert_records(
            ROWS.iloc[20:40],
            {k: v[:20] for k, v in vectors.items()} if isinstance(vectors, dict) else vectors,
            encoder_version="enc-a",
            dataset_version="v2",
        )
    assert two_spaces.count() == 20
    assert two_spaces.live().dataset_versions == ("v1",)


def test_a_single_space_collection_takes_an_array_or_its_one_space(index):
    index.reindex("enc-a", [(ROWS.head(10), VECTORS[:10])], dataset_version="v1")
    result = index.upsert_records(
        ROWS.iloc[10:20], {"region": VECTORS[10:20]}, encoder_version="enc-a", dataset_version="v1"
    )
    assert result.added == 10
    with pytest.raises(ValueError, match=r"has spaces \['region'\].*extra \['symmetric'\]"):
        index.upsert_records(
            ROWS.iloc[20:30], both_spaces(20, 30), encoder_version="enc-a", dataset_version="v1"
        )
    assert index.count() == 20


def test_writes_with_both_spaces_stay_idempotent_and_replace_nrt_twins(two_spaces):
    base = ROWS[ROWS["harpnum"] > 3]
    definitive = ROWS[ROWS["harpnum"] <= 3]
    nrt = _nrt_twins(definitive)
    rows = pd.concat([base, nrt])
    order = np.r_[np.flatnonzero(ROWS["harpnum"] > 3), np.flatnonzero(ROWS["harpnum"] <= 3)]
    vectors = {space: IN_SPACE[space][order] for space in SPACES}
    two_spaces.reindex("enc-a", iter_batches(rows, vectors, 50), dataset_version="v1")
    again = two_spaces.upsert_records(rows, vectors, encoder_version="enc-a", dataset_version="v1")
    assert (again.added, again.skipped) == (0, len(ROWS))
    mask = (ROWS["harpnum"] <= 3).to_numpy()
    definitive_vectors = {space: IN_SPACE[space][mask] for space in SPACES}
    first = two_spaces.replace_nrt(
        definitive, definitive_vectors, encoder_version="enc-a", dataset_version="v2"
    )
    assert (first.added, first.replaced) == (len(definitive), len(definitive))
    second = two_spaces.replace_nrt(
        definitive, definitive_vectors, encoder_version="enc-a", dataset_version="v2"
    )
    assert (second.added, second.skipped, second.replaced) == (0, len(definitive), 0)
    assert two_spaces.count() == len(ROWS)
    row = int(np.flatnonzero(mask)[0])
    hits = two_spaces.search(SYMMETRIC[row], limit=1, group_by_harp=False, space="symmetric")
    assert hits[0].record_id == ROWS["record_id"].iloc[row]
    assert hits[0].series == DEFINITIVE_SERIES


def test_a_collection_info_without_spaces_is_a_single_region_collection(index):
    index.reindex("enc-a", [(ROWS.head(30), VECTORS[:30])], dataset_version="v1")
    name = index.collection_name("enc-a")
    legacy = index.live().to_json()
    del legacy["spaces"]
    if isinstance(index, EdgeIndex):
        (index.path / "collections" / name / "collection.json").write_text(json.dumps(legacy))
    else:
        index.client.update_collection(name, metadata={"sharpseek": legacy})
    index._info_cache.clear()
    assert index.live().spaces == ("region",)
    assert CollectionInfo.from_json(legacy).spaces == ("region",)
    hits = index.search(VECTORS[3], limit=1, group_by_harp=False, exact=True)
    assert hits[0].record_id == ROWS["record_id"].iloc[3]
    added = index.upsert_records(
        ROWS.iloc[30:40], VECTORS[30:40], encoder_version="enc-a", dataset_version="v1"
    )
    assert added.added == 10


def test_collection_info_keeps_its_spaces_through_json():
    info = CollectionInfo("sharps--e", "e", DIM, {"region": "keyword"}, spaces=SPACES)
    assert CollectionInfo.from_json(json.loads(json.dumps(info.to_json()))).spaces == SPACES
    assert info.named_vectors and not CollectionInfo("sharps--e", "e", DIM, {}).named_vectors


@pytest.mark.parametrize(
    ("spaces", "match"),
    [
        ((), "at least one space"),
        (("region", "region"), "name a space twice"),
        (("Region",), r"must match \[a-z\]"),
        (("2d",), r"must match \[a-z\]"),
        (("region-x",), r"must match \[a-z\]"),
        ("region", "sequence of names"),
    ],
)
def test_bad_spaces_are_refused(spaces, match):
    with pytest.raises(ValueError, match=match):
        IndexConfig(spaces=spaces)


def test_index_config_takes_the_spaces_of_the_settings_where_they_have_them(tmp_path):
    settings = Settings(home=tmp_path)
    fields = {k: v for k, v in vars(settings.index).items() if k != "spaces"}
    without = SimpleNamespace(index=SimpleNamespace(**fields))
    assert index_config(without).spaces == ("region",)
    with_spaces = SimpleNamespace(index=SimpleNamespace(**fields, spaces=["region", "symmetric"]))
    assert index_config(with_spaces).spaces == SPACES


def test_iter_batches_cuts_every_space_alike():
    batches = list(iter_batches(ROWS, IN_SPACE, 100))
    assert [len(rows) for rows, _ in batches] == [100, 100, 40]
    rows, vectors = batches[1]
    assert set(vectors) == set(SPACES)
    np.testing.assert_array_equal(vectors["symmetric"], SYMMETRIC[100:200])
    with pytest.raises(ValueError, match="240 rows but 10 'symmetric' vectors"):
        list(iter_batches(ROWS, {"region": VECTORS, "symmetric": SYMMETRIC[:10]}))
