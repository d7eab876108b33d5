"""The look-alike flare outlook (issue 23): no leakage over random timelines, the counts, and
the index path against the pure rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import test_flares as TF
from sharpseek.config import Settings
from sharpseek.search.outlook import look_alike_outlook, outlook_cutoff, query_outlook

T0 = pd.Timestamp("2014-01-01T00:00:00")
M1 = 1e-5


@st.composite
def timelines(draw):
    """Frames of a few regions at random hours, random outcomes (flux or unknown), random
    distances; a query time and region (or none, as a generated query)."""
    n = draw(st.integers(1, 40))
    regions = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    hours = draw(st.lists(st.integers(0, 24 * 10), min_size=n, max_size=n))
    outcome = draw(
        st.lists(
            st.one_of(st.none(), st.sampled_from([0.0, 1e-6, 5e-6, M1, 3e-5, 2e-4])),
            min_size=n,
            max_size=n,
        )
    )
    distance = draw(st.lists(st.floats(0, 10, allow_nan=False), min_size=n, max_size=n))
    table = pd.DataFrame(
        {
            "record_id": [f"hmi:{r}:{i}" for i, r in enumerate(regions)],
            "region": [f"hmi:{r}" for r in regions],
            "t_rec": [T0 + pd.Timedelta(hours=h) for h in hours],  # exact 24 h edges are common
            "distance": distance,
            "outcome_24h_status": ["unknown" if v is None else "known" for v in outcome],
            "outcome_24h_max_flux": outcome,
        }
    )
    record = draw(st.booleans())
    query_t = T0 + pd.Timedelta(hours=draw(st.integers(0, 24 * 12))) if record else None
    query_region = f"hmi:{draw(st.integers(0, 7))}" if record else None
    k = draw(st.integers(1, 10))
    return table, query_t, query_region, k


@settings(max_examples=150, deadline=None)
@given(timelines())
def test_an_outlook_never_uses_a_frame_whose_outcome_was_open_nor_its_own_region(case):
    table, query_t, query_region, k = case
    out = look_alike_outlook(table, k=k, query_t_rec=query_t, query_region=query_region)
    used = pd.DataFrame(out.neighbours)
    if query_t is not None:
        for n in out.neighbours:  # the whole outcome window lies before the query's T_REC
            assert n["t_rec"] + pd.Timedelta(hours=24) <= query_t
            assert n["region"] != query_region
    # one frame per region, at most k, nearest first
    assert len(used) <= k and (used.empty or used["region"].is_unique)
    assert list(used.get("distance", [])) == sorted(used.get("distance", []))
    # the counts are those of a brute-force reading of the same rule
    eligible = table.copy()
    if query_t is not None:
        eligible = eligible[
            (eligible["t_rec"] + pd.Timedelta(hours=24) <= query_t)
            & (eligible["region"] != query_region)
        ]
    best = eligible.sort_values("distance", kind="stable").groupby("region", sort=False).head(1)
    chosen = best.sort_values("distance", kind="stable").head(k)
    assert set(used.get("record_id", [])) == set(chosen["record_id"])
    known = chosen["outcome_24h_status"] == "known"
    assert out.known == int(known.sum()) and out.unknown == int((~known).sum())
    assert out.flared == int((chosen["outcome_24h_max_flux"][known] >= M1).sum())
    assert out.share is None if not out.known else 0 <= out.share <= 1


def test_counts_threshold_and_words():
    table = pd.DataFrame(
        {
            "record_id": ["a", "b", "c", "d"],
            "region": ["r1", "r2", "r3", "r1"],
            "t_rec": [T0] * 4,
            "distance": [0.1, 0.2, 0.3, 0.05],
            "outcome_24h_status": ["known", "known", "unknown", "known"],
            "outcome_24h_max_flux": [0.0, 2e-4, None, 3e-5],
            "outcome_24h_max_class": ["none", "X2.0", None, "M3.0"],
        }
    )
    out = look_alike_outlook(table, k=3)
    assert [n["record_id"] for n in out.neighbours] == ["d", "b", "c"]  # r1's nearest frame
    assert (out.flared, out.known, out.unknown, out.share) == (2, 2, 1, 1.0)
    assert "2 of 2 look-alike regions (100 %)" in out.text() and "1 more" in out.text()
    x = look_alike_outlook(table, k=3, threshold="X")
    assert (x.flared, x.threshold) == (1, "X")
    record = look_alike_outlook(table, k=3, query_t_rec=T0 + pd.Timedelta(hours=23))
    assert record.known + record.unknown == 0 and "no look-alike region" in record.text()
    assert json.dumps(out.to_json())  # plain JSON
    assert outlook_cutoff("2014-01-02T00:00:00", 24) == T0
    with pytest.raises(ValueError, match="unknown GOES class|class"):
        look_alike_outlook(table, k=3, threshold="K")


@pytest.fixture
def flare_settings(tmp_path):
    """The frames and catalogue of tests/test_flares.py in an embedded index, payloads
    written."""
    from sharpseek.pipeline.flare_steps import flares_stage
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.index import iter_batches

    (tmp_path / "flares.csv").write_text(TF.FLARES_CSV)
    (tmp_path / "harps.csv").write_text(TF.HARPS_CSV)
    settings_ = Settings(
        home=tmp_path / "home",
        index={"spaces": ("region",)},  # random 4-d vectors: one space
        flares={"source": str(tmp_path / "flares.csv"), "harps": str(tmp_path / "harps.csv")},
    )
    rows = pd.DataFrame(
        {
            "series": ["hmi.sharp_cea_720s"] * len(TF.FRAMES) + ["synthetic"],
            "harpnum": [h for h, _ in TF.FRAMES] + [100],
            "t_rec": pd.to_datetime([t for _, t in TF.FRAMES] + ["2016-12-30T00:00:36"]),
            "tuf": np.linspace(1, 2, len(TF.FRAMES) + 1),
        }
    )
    vectors = np.random.default_rng(0).standard_normal((len(rows), 4)).astype(np.float32)
    with open_settings_index(settings_, dim=4) as index:
        index.reindex("enc", iter_batches(rows, vectors), dataset_version="v0001")
    flares_stage(settings_)
    return settings_


def test_the_index_path_equals_the_rule_on_every_frame(flare_settings):
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.outlook import hits_candidates

    with open_settings_index(flare_settings) as index:
        every = index.search(np.zeros(4, np.float32), limit=100, group_by_harp=False)
        rids = [TF.rid(*f) for f in TF.FRAMES]
        for rid in rids:
            vector = index.get([rid], with_vector=True)[0].vector
            t_rec = pd.Timestamp(TF.FRAMES[rids.index(rid)][1])
            region = f"hmi.sharp_cea_720s:{TF.FRAMES[rids.index(rid)][0]}"
            got = query_outlook(index, vector, k=5, query_t_rec=t_rec, query_region=region)
            # the same rule on every frame with flare fields, distances recomputed
            table = hits_candidates(every)
            table = table[table["outcome_24h_status"].isin(["known", "unknown"])].copy()
            stored = {
                r.record_id: r.vector for r in index.get(list(table["record_id"]), with_vector=True)
            }
            table["distance"] = [
                float(np.linalg.norm(stored[r] - vector)) for r in table["record_id"]
            ]
            want = look_alike_outlook(table, k=5, query_t_rec=t_rec, query_region=region)
            assert [n["record_id"] for n in got.neighbours] == [
                n["record_id"] for n in want.neighbours
            ]
            assert (got.flared, got.known, got.unknown) == (want.flared, want.known, want.unknown)
        # the last frame (HARP 104, 2017-02-01) sees HARPs 100 (M1.0 outcome at 12-30, or C at
        # 12-31), 102 (X9.3) and 101 (unknown: no NOAA number); the synthetic frame has none
        last = query_outlook(
            index,
            index.get([rids[-1]], with_vector=True)[0].vector,
            k=10,
            query_t_rec=pd.Timestamp(TF.FRAMES[-1][1]),
            query_region="hmi.sharp_cea_720s:104",
        )
    assert {n["region"] for n in last.neighbours} == {
        "hmi.sharp_cea_720s:100",
        "hmi.sharp_cea_720s:101",
        "hmi.sharp_cea_720s:102",
    }
    assert last.known == 2 and last.unknown == 1 and last.flared >= 1


def test_cli_search_outlook_text_and_json(flare_settings, monkeypatch):
    from sharpseek.cli.app import app

    runner = CliRunner()
    home = str(flare_settings.home)
    monkeypatch.setenv("SHARPSEEK_FLARES__SOURCE", flare_settings.flares.source)
    monkeypatch.setenv("SHARPSEEK_FLARES__HARPS", flare_settings.flares.harps)
    rid = TF.rid(*TF.FRAMES[-1])
    out = runner.invoke(app, ["search", "--record", rid, "--outlook", "--json", "--home", home])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)["outlook"]
    assert data["known"] == 2 and data["unknown"] == 1 and data["caveat"]
    assert data["cutoff"] == "2017-01-31T00:00:00"
    text = runner.invoke(app, ["search", "--record", rid, "--outlook", "--home", home])
    assert text.exit_code == 0, text.output
    assert "look-alike regions" in text.output and "not a forecast" in text.output


def test_evaluate_outlook_finds_skill_where_the_embedding_carries_it():
    """Regions with a propensity to flare: R follows it and so does one embedding axis. The
    outlook and the R rule show skill on both splits; climatology has none by construction."""
    from sharpseek.search.evaluate_outlook import evaluate_outlook

    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for region in range(80):
        propensity = rng.uniform(0, 1)
        start = T0 + pd.Timedelta(days=int(rng.integers(0, 60)))  # many earlier neighbours
        for k in range(10):
            flared = rng.uniform() < 0.05 + 0.8 * propensity**2
            rows.append(
                {
                    "record_id": f"synthetic:{region}:{k}",
                    "region": f"synthetic:{region}",
                    "t_rec": start + pd.Timedelta(hours=6 * k),
                    "outcome_24h_status": "known" if k < 8 else "unknown",
                    "outcome_24h_max_flux": (2e-5 if flared else 1e-6) if k < 8 else None,
                    "rule_r": propensity + 0.1 * rng.normal(),
                }
            )
            vectors.append([propensity + 0.05 * rng.normal(), *(0.1 * rng.normal(size=2))])
    table = pd.DataFrame(rows)
    result = evaluate_outlook(
        table, np.asarray(vectors, np.float32), ks=(5, 10), max_queries=400, n_boot=200
    )
    for split in ("chronological", "held_out"):
        methods = result[split]["methods"]
        assert methods["climatology"]["tss"] == 0
        assert methods["outlook"]["tss"] > 0.2 and methods["r_rule"]["tss"] > 0.2
        assert methods["outlook"]["brier"] < methods["climatology"]["brier"]
        for m in methods.values():
            low, high = m["brier_ci"]
            assert low <= m["brier"] <= high
    assert result["known"] == 640 and result["held_out"]["held_out_regions"] == 40


def test_a_record_query_counts_regions_of_its_own_kind(tmp_path):
    """Synthetic and real frames with outcomes in one index: a real record's outlook counts
    real regions only, a synthetic record's synthetic ones; an image query both, and says so."""
    from sharpseek.pipeline.index_plans import open_settings_index
    from sharpseek.search.index import iter_batches

    settings_ = Settings(home=tmp_path / "home", index={"spaces": ("region",)})
    rows = pd.DataFrame(
        {
            "series": ["hmi.sharp_cea_720s"] * 3 + ["synthetic"] * 3,
            "harpnum": [1, 2, 3, 1, 2, 3],
            "t_rec": pd.to_datetime(["2014-01-01"] * 6) + pd.to_timedelta([0, 0, 48] * 2, "h"),
        }
    )
    vectors = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    fields = {"outcome_24h_status": "keyword", "outcome_24h_max_flux": "float"}
    with open_settings_index(settings_, dim=4) as index:
        index.reindex("enc", iter_batches(rows, vectors), dataset_version="v0001")
        ids = [r["record_id"] for r in index.scan(["series"])]
        index.update_payloads(
            {i: {"outcome_24h_status": "known", "outcome_24h_max_flux": 2e-5} for i in ids},
            fields=fields,
        )
    with open_settings_index(settings_) as index:  # a reader sees the write once reopened
        query = vectors[2]
        t = pd.Timestamp("2014-01-03")
        real = query_outlook(index, query, k=10, query_t_rec=t, query_region="x", kind="real")
        synthetic = query_outlook(index, query, k=10, query_t_rec=t, kind="synthetic")
        both = query_outlook(index, query, k=10)
    assert {n["region"] for n in real.neighbours} == {
        "hmi.sharp_cea_720s:1",
        "hmi.sharp_cea_720s:2",
    }
    assert {n["region"] for n in synthetic.neighbours} == {"synthetic:1", "synthetic:2"}
    assert len(both.neighbours) == 6 and "3 of the 6 are synthetic" in both.text()
    assert "real regions only" in real.text() and real.to_json()["kind"] == "real"
