"""Tests of sharpseek.search.searcher, sharpseek.search.evaluate_retrieval, its report
(sharpseek.search.retrieval_report) and their CLI (issue 6).

One small home per module: untrained tiny models (seconds), a synthetic dataset of 12
regions x 4 frames, and an embedded index built from it. Expected results come from numpy
brute force over the encoder's embeddings of the same images, and from slow obvious
implementations (baselines, correlations).
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.spatial import distance  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sharpseek.config import Settings  # noqa: E402
from sharpseek.data.images import ImageInputError, export_png, load_image, read_png
from sharpseek.search.baselines import PhysicsBaseline, baseline_features, filter_mask
from sharpseek.search.index import EmptyIndexError, EncoderMismatchError, SearchFilter  # noqa: E402
from sharpseek.search.index.points import region_key  # noqa: E402
from sharpseek.search.results import jsoc_url, results_to_json
from sharpseek.search.searcher import Searcher
from sharpseek.search.spaces import space_vectors

pytest_plugins = ["model_fixtures"]
torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """(settings, dataset, embeddings of its frames): index built, env pointing at it."""
    from ingest_fixtures import synthetic_dataset
    from model_fixtures import write_untrained_checkpoints
    from sharpseek.pipeline.index_plans import plan_index, run_index_plan

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("search") / "home"
    mp.setenv("SHARPSEEK_HOME", str(root))
    settings = Settings(home=root, preset="tiny")
    write_untrained_checkpoints(settings)
    ds = synthetic_dataset(settings, regions=12, frames=4)
    plan = plan_index(settings, datasets=["synthetic"], mode="reindex")  # `sharpseek index build`
    run_index_plan(settings, plan, progress=False)
    with Searcher(settings) as searcher:
        encoder = searcher.backend.encoder  # the in-process backend's EncoderModel
        vectors = encoder.embed(ds.images())
    yield settings, ds, vectors
    mp.undo()


@pytest.fixture
def searcher(home):
    with Searcher(home[0]) as s:
        yield s


def numpy_grouped(vectors, manifest, query, k, per_region=1, mask=None):
    """Record ids of the best ``per_region`` frames of the ``k`` nearest regions."""
    d = np.linalg.norm(vectors.astype(np.float64) - query.astype(np.float64), axis=1)
    order = np.argsort(d, kind="stable")
    if mask is not None:
        order = order[mask[order]]
    groups: dict[str, list[str]] = {}
    for i in order:
        region = region_key(manifest["series"].iloc[i], int(manifest["harpnum"].iloc[i]))
        if region not in groups and len(groups) == k:
            continue
        group = groups.setdefault(region, [])
        if len(group) < per_region:
            group.append(manifest["record_id"].iloc[i])
    return [r for g in groups.values() for r in g]


def slow_reranked(image, record_ids, vectors, query_vector, manifest, images, k):
    """The picture re-ranking of candidates (nearest first) written out: embedding distance
    over its median plus 3 x the gradient picture's distance (8 px blocks, nearest of the
    query's 16 symmetries; tests/test_picture.py's loops) over its median; the first ``k``
    record ids."""
    from test_picture import slow_picture_distance

    rows = [int(np.flatnonzero(manifest["record_id"].to_numpy() == r)[0]) for r in record_ids]
    d = np.array([np.linalg.norm(vectors[r].astype(float) - query_vector) for r in rows])
    p = np.array([slow_picture_distance(image, images[r], 8, "gradient") for r in rows])
    score = d / np.median(d) + 3.0 * p / np.median(p)
    return [record_ids[i] for i in np.argsort(score, kind="stable")[:k]]


# ---------------------------------------------------------------------------------------------
# images in and out


def test_png_round_trip_keeps_gauss_and_orientation(tmp_path):
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(0, 0.4, (128, 128)), -1, 1).astype(np.float32)
    image[0, :] = -1.0  # bottom row (south) strongly negative
    path = export_png(image, tmp_path / "q.png", description="test")
    back = read_png(path)
    # 16-bit levels over 2000 G: at most half a level (0.0153 G) off, in model units
    assert np.abs(back - image).max() <= 1.0 / 65535 + 1e-7
    assert np.all(back[0] == -1.0)
    from PIL import Image

    with Image.open(path) as picture:  # the picture's top row is the image's last row
        assert np.asarray(picture)[-1].max() == 0


def test_a_colour_mapped_png_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "figure.png"
    plt.imsave(path, np.random.default_rng(0).normal(size=(128, 128)), cmap="RdBu_r")
    with pytest.raises(ImageInputError, match="cannot be turned back into gauss"):
        load_image(path)


@pytest.mark.parametrize(
    ("array", "units", "match"),
    [
        (np.zeros((64, 64)), "model", r"\(128, 128\)"),
        (np.zeros((2, 3, 64)), "gauss", "2-D"),
        (np.full((128, 128), np.nan), "gauss", "NaN"),
        (np.full((128, 128), 500.0), "model", "is it in gauss"),
        (np.array([["a"]]), "gauss", "numeric"),
    ],
)
def test_bad_images_are_refused(array, units, match):
    with pytest.raises(ImageInputError, match=match):
        load_image(array, units=units)


def test_gauss_arrays_and_fits_are_preprocessed_as_ingestion_does(tmp_path):
    from astropy.io import fits

    from sharpseek.data.preprocess import to_model_space

    br = np.random.default_rng(1).normal(0, 300, (90, 210))
    np.save(tmp_path / "br.npy", br)
    expected = to_model_space(br).image
    assert np.array_equal(load_image(tmp_path / "br.npy"), expected)
    with_nan = br.copy()
    with_nan[:5] = np.nan  # off-disk pixels in a FITS file are normal: they become 0 G
    fits.PrimaryHDU(with_nan).writeto(tmp_path / "x.Br.fits")
    assert np.array_equal(load_image(tmp_path / "x.Br.fits"), to_model_space(with_nan).image)
    with pytest.raises(ImageInputError, match="unknown image type"):
        (tmp_path / "x.jpg").write_bytes(b"0")
        load_image(tmp_path / "x.jpg")


def test_a_real_query_is_clipped_as_ingestion_clips_it(tmp_path):
    """A FITS or gauss query under quality.field_clip_gauss = 500 G saturates as ingested
    frames do (b within +-0.5); a model-space query is taken as it is."""
    from astropy.io import fits

    from sharpseek.data.preprocess import clip_field, to_model_space

    br = np.random.default_rng(2).normal(0, 800, (100, 240))
    fits.PrimaryHDU(br).writeto(tmp_path / "x.Br.fits")
    for source in (tmp_path / "x.Br.fits", br):
        clipped = load_image(source, field_clip_gauss=500.0)
        assert np.abs(clipped).max() == pytest.approx(0.5)
        assert np.array_equal(clipped, clip_field(to_model_space(br).image, 500.0))
    model = np.full((128, 128), 0.9, np.float32)
    assert np.array_equal(load_image(model, units="model", field_clip_gauss=500.0), model)
    with pytest.raises(ValueError, match="field_clip_gauss"):
        clip_field(model, 1500.0)


def test_jsoc_link_for_real_records_only():
    url = jsoc_url("hmi.sharp_cea_720s", 377, pd.Timestamp("2011-02-15 01:36"))
    assert url.startswith("http://jsoc.stanford.edu/ajax/lookdata.html?ds=hmi.sharp_cea_720s")
    assert "%5B377%5D%5B2011.02.15_01%3A36%3A00_TAI%5D" in url
    assert jsoc_url("synthetic", 1, pd.Timestamp("2020-01-01")) is None


# ---------------------------------------------------------------------------------------------
# baselines and filters on tables


def test_baselines_match_slow_obvious_distances():
    rng = np.random.default_rng(2)
    real = pd.DataFrame(
        {
            "tuf": rng.lognormal(12, 1, 50),
            "r": rng.lognormal(10, 1, 50),
            "psep": np.where(rng.random(50) < 0.2, np.nan, rng.uniform(2, 40, 50)),
        }
    )
    query = pd.DataFrame({"tuf": [2e5, 5e4], "r": [3e4, 1e3], "psep": [10.0, np.nan]})
    base = PhysicsBaseline.fit(real)
    x = baseline_features(real)
    q = baseline_features(query)
    assert x[np.isnan(real["psep"]).to_numpy(), 2].tolist() == [0.0] * int(
        real["psep"].isna().sum()
    )
    vi = np.linalg.inv(np.cov(x, rowvar=False))
    mean, std = x.mean(0), x.std(0)
    for i in range(2):
        for j in range(50):
            maha = distance.mahalanobis(q[i], x[j], vi)
            euc = np.sqrt((((q[i] - mean) / std - (x[j] - mean) / std) ** 2).sum())
            assert base.distances(q, "mahalanobis")[i, j] == pytest.approx(maha, rel=1e-6)
            assert base.distances(q, "euclidean")[i, j] == pytest.approx(euc, rel=1e-9)
    with pytest.raises(ValueError, match="unknown baseline metric"):
        base.distances(q, "cosine")


def test_correlations_match_scipy_on_finite_pairs():
    from sharpseek.search.evaluate_retrieval import correlations

    rng = np.random.default_rng(3)
    a = pd.DataFrame({"tuf": rng.normal(size=30), "psep": rng.normal(size=30)})
    b = pd.DataFrame({"tuf": a["tuf"] + rng.normal(size=30), "psep": rng.normal(size=30)})
    a.loc[[2, 5], "psep"] = np.nan
    rows = {r["parameter"]: r for r in correlations(a, b, ("tuf", "psep"))}
    assert rows["tuf"]["pearson"] == pytest.approx(stats.pearsonr(a["tuf"], b["tuf"])[0])
    ok = a["psep"].notna()
    assert rows["psep"]["n"] == 28
    assert rows["psep"]["spearman"] == pytest.approx(
        stats.spearmanr(a["psep"][ok], b["psep"][ok])[0]
    )


# ---------------------------------------------------------------------------------------------
# search on the index


def test_image_query_finds_the_numpy_nearest_regions_with_physics_side_by_side(home, searcher):
    settings, ds, vectors = home
    image = ds.images([5])[0]
    query = searcher.image_query(image)
    assert np.allclose(query.vector, vectors[5], atol=1e-5)
    frame = searcher.search(query, k=4)
    assert frame["record_id"].tolist() == numpy_grouped(vectors, ds.manifest, query.vector, 4)
    assert frame["region"].nunique() == 4
    assert frame["rank"].tolist() == [1, 2, 3, 4]
    assert frame["record_id"].iloc[0] == ds.manifest["record_id"].iloc[5]  # itself first
    assert frame["distance"].iloc[0] == pytest.approx(0.0, abs=1e-4)
    by_id = ds.manifest.set_index("record_id")
    for _, row in frame.iterrows():
        assert row["match_tuf"] == pytest.approx(by_id.loc[row["record_id"], "tuf"])
        assert row["query_tuf"] == pytest.approx(ds.manifest["tuf"].iloc[5], rel=1e-4)
        assert row["jsoc_url"] is None  # synthetic


def test_per_region_and_filter_agree_with_numpy_and_filter_mask(home, searcher):
    settings, ds, vectors = home
    query = searcher.image_query(ds.images([0])[0])
    spec = SearchFilter(
        ranges={"tuf": (float(ds.manifest["tuf"].median()), None)},
        hemisphere="north",
        mu=(0.3, 1.0),
    )
    mask = filter_mask(ds.manifest, spec)
    assert 0 < mask.sum() < len(mask)
    frame = searcher.search(query, k=3, per_region=2, filter=spec)
    assert frame["record_id"].tolist() == numpy_grouped(
        vectors, ds.manifest, query.vector, 3, per_region=2, mask=mask
    )
    assert (frame["lat_fwt"] > 0).all() and (frame["mu"] >= 0.3).all()
    ungrouped = searcher.search(query, k=5, group_by_region=False)
    d = np.linalg.norm(vectors - query.vector, axis=1)
    assert (
        ungrouped["record_id"].tolist() == ds.manifest["record_id"].iloc[np.argsort(d)[:5]].tolist()
    )


def test_record_query_uses_the_stored_vector_and_leaves_its_region_out(home, searcher):
    settings, ds, vectors = home
    rid = ds.manifest["record_id"].iloc[9]
    query = searcher.record_query(rid)
    assert np.allclose(query.vector, vectors[9], atol=1e-5)
    frame = searcher.search(query, k=3)
    own = region_key("synthetic", int(ds.manifest["harpnum"].iloc[9]))
    assert own not in set(frame["region"])
    mask = filter_mask(ds.manifest, SearchFilter(exclude_regions=[own]))
    assert frame["record_id"].tolist() == numpy_grouped(
        vectors, ds.manifest, query.vector, 3, mask=mask
    )
    with pytest.raises(KeyError, match="not in the live collection"):
        searcher.record_query("synthetic:999:20200101_000000_TAI")


def test_latent_query_with_shift_moves_z_along_the_stored_direction(home, searcher):
    from sharpseek.science.directions import Boundary, DirectionSet, LabelRule

    gen = searcher.backend.generator
    with pytest.raises(ValueError, match="without directions"):  # none fitted yet: refused
        searcher.latent_query(3, shifts={"tuf": 1.0})
    normal = np.zeros(gen.latent_dim)
    normal[0] = 1.0
    rule = LabelRule("median", 0.0, None)
    boundary = Boundary("tuf", normal, 0.0, 0.9, rule, 10, 7, 3, gen.version)
    DirectionSet(gen.version, {"tuf": boundary}, 10, 0, gen.latent_dim).save(searcher.store)
    query = searcher.latent_query(3, shifts={"tuf": 2.5})
    expected = gen.latent([3])[0] + 2.5 * normal
    assert np.allclose(query.latent, expected)
    encoder = searcher.backend.encoder
    image = gen.generate(expected[None].astype(np.float32))
    raw = space_vectors(encoder.embed, image, "symmetric")
    # a generated query: its symmetric vector moved by the stored query map of these models
    assert query.space == "symmetric" and searcher.query_map.space == "symmetric"
    assert np.allclose(query.vector, searcher.query_map.apply(raw)[0], atol=1e-5)
    assert query.description == "seed 3, tuf +2.5"
    # ... and it is searched among the frames' symmetric vectors: its 10 nearest regions
    # (of 12 here), re-ranked by their picture
    _, ds, _ = home
    assert home[0].retrieval.rerank_candidates == 10
    symmetric = space_vectors(encoder.embed, ds.images(), "symmetric")
    hits = searcher.hits(query, k=3)
    candidates = numpy_grouped(symmetric, ds.manifest, query.vector, 10)
    expected_ids = slow_reranked(
        query.image, candidates, symmetric, query.vector, ds.manifest, ds.images(), 3
    )
    assert [h.record_id for h in hits] == expected_ids
    # with the re-ranking off, the embedding order
    settings = home[0].model_copy(
        update={"retrieval": home[0].retrieval.model_copy(update={"rerank_candidates": 0})}
    )
    with Searcher(settings, backend=searcher.backend, index=searcher.index) as plain:
        ids = [h.record_id for h in plain.hits(plain.latent_query(3, shifts={"tuf": 2.5}), k=3)]
    assert ids == numpy_grouped(symmetric, ds.manifest, query.vector, 3)
    # two frames per region: regions in the order of their best-scored frame, each with its
    # two nearest frames
    pairs = [h.record_id for h in searcher.hits(query, k=3, per_region=2)]
    grouped = numpy_grouped(symmetric, ds.manifest, query.vector, 10, per_region=2)
    ranked = slow_reranked(
        query.image, grouped, symmetric, query.vector, ds.manifest, ds.images(), len(grouped)
    )
    harp = ds.manifest.set_index("record_id")["harpnum"]
    first_regions = list(dict.fromkeys(harp[r] for r in ranked))[:3]
    assert pairs == [r for h in first_regions for r in grouped if harp[r] == h]


def test_nearest_regions_gives_each_image_its_k_regions(home, searcher):
    settings, ds, vectors = home
    results = searcher.nearest_regions(ds.images([1, 20]), k=2, generated=False)
    assert len(results) == 2
    for frame, row in zip(results, (1, 20), strict=True):
        assert frame["record_id"].tolist() == numpy_grouped(vectors, ds.manifest, vectors[row], 2)
    with pytest.raises(ImageInputError):
        searcher.nearest_regions(np.full((1, 128, 128), np.nan))


def test_encoder_mismatch_and_empty_index_are_errors(home, searcher, tmp_path):
    settings, ds, _ = home
    query = searcher.image_query(ds.images([0])[0])
    query.encoder_version = "another-encoder-e0001-00000000"
    with pytest.raises(EncoderMismatchError):
        searcher.search(query)
    empty = settings.model_copy(
        update={"index": settings.index.model_copy(update={"path": tmp_path})}
    )
    with Searcher(empty) as other, pytest.raises(EmptyIndexError):
        other.search(searcher.image_query(ds.images([0])[0]))


def test_results_to_json_puts_parameters_side_by_side(home, searcher):
    settings, ds, _ = home
    frame = searcher.search(searcher.image_query(ds.images([2])[0]), k=2)
    data = json.loads(json.dumps(results_to_json(frame)))
    assert data["query"]["kind"] == "image"
    parameters = data["results"][0]["parameters"]
    assert set(parameters["tuf"]) == {"query", "match", "space"}
    assert parameters["tuf"]["space"] == "model" and parameters["tilt_cea"]["space"] == "native"
    # a generated (model-space) query has no native grid: null; the indexed match has values
    assert parameters["tilt_cea"]["query"] is None
    assert parameters["r_jsoc"]["match"] is not None
    assert "score" not in data["results"][0]
    assert [r["distance"] for r in data["results"]] == pytest.approx(frame["distance"].tolist())


def test_search_is_a_table_of_the_index_hits(home, searcher):
    settings, ds, vectors = home
    query = searcher.image_query(ds.images([7])[0])
    hits = searcher.hits(query, k=3)
    frame = searcher.search(query, k=3)
    assert [h.record_id for h in hits] == frame["record_id"].tolist()
    assert [h.distance for h in hits] == frame["distance"].tolist()
    expected = np.linalg.norm(vectors.astype(np.float64) - query.vector, axis=1)
    by_id = dict(zip(ds.manifest["record_id"], expected, strict=True))
    assert [h.distance for h in hits] == pytest.approx(
        [by_id[h.record_id] for h in hits], rel=1e-4, abs=1e-4
    )
    assert [h.parameter("tuf") for h in hits] == frame["match_tuf"].tolist()


def test_baseline_search_groups_regions_and_matches_the_metric(home, searcher):
    settings, ds, _ = home
    query = searcher.image_query(ds.images([4])[0])
    frame = searcher.baseline_search(query, ds.manifest, metric="mahalanobis", k=3)
    assert frame["region"].nunique() == 3
    assert frame["distance"].is_monotonic_increasing
    base = PhysicsBaseline.fit(ds.manifest)
    d = base.distances(baseline_features(pd.DataFrame([query.parameters])), "mahalanobis")[0]
    assert frame["distance"].iloc[0] == pytest.approx(d.min())


# ---------------------------------------------------------------------------------------------
# CLI


def _cli(*args):
    from sharpseek.cli.app import app

    return runner.invoke(app, list(args))


def test_cli_search_json_and_index_status(home):
    result = _cli("search", "--seed", "1", "-k", "3", "--json", "--hemisphere", "north")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["results"]) == 3 and all(r["lat_fwt"] > 0 for r in data["results"])
    assert data["query"]["space"] == "symmetric"  # a generated query
    status = _cli("index", "status", "--json")
    assert status.exit_code == 0
    collection = json.loads(status.output)["collections"][0]
    assert collection["points"] == 48 and collection["spaces"] == ["region", "symmetric"]
    from sharpseek.cli import index_access

    wide = pytest.MonkeyPatch()  # a wide terminal, whatever width the console started with
    wide.setattr(index_access.console, "width", 220)
    try:
        table = _cli("index", "status")
    finally:
        wide.undo()
    assert table.exit_code == 0 and "region, symmetric" in table.output
    update = _cli("index", "update", "--no-progress")
    assert update.exit_code == 0 and "added 0" in update.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "1", "--range", "nosuch=1:2"], "unknown filter field 'nosuch'"),
        (["--seed", "1", "--range", "tuf=5:1"], "inverted range"),
        (["--seed", "1", "--mu", "0.9:0.1"], "inverted mu"),
        (["--seed", "1", "--record", "x"], "exactly one query"),
        (["--seed", "1", "--hemisphere", "east"], "unknown hemisphere"),
        (["--record", "synthetic:999:20200101_000000_TAI"], "not in the live collection"),
        (["--seed", "1", "--shift", "tuf"], "--shift 'tuf': write PARAMETER=EPS"),
        (["--seed", "1", "--shift", "tuf=big"], "--shift 'tuf=big': write PARAMETER=EPS"),
        (["--record", "x", "--shift", "tuf=1"], "--shift and --hold apply to a --seed query"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(home, args, message):
    result = _cli("search", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_cli_refuses_an_arbitrary_png_and_an_image_with_nans(home, tmp_path):
    plt.imsave(tmp_path / "fig.png", np.ones((8, 8)))
    result = _cli("search", "--image", str(tmp_path / "fig.png"))
    assert result.exit_code == 2 and "cannot be turned back into gauss" in " ".join(
        result.output.split()
    )
    np.save(tmp_path / "nan.npy", np.full((50, 60), np.nan))
    result = _cli("search", "--image", str(tmp_path / "nan.npy"))
    assert result.exit_code == 2 and "NaN" in result.output


def test_cli_saved_query_png_searches_like_the_seed(home, tmp_path):
    png = tmp_path / "q.png"
    first = _cli("search", "--seed", "4", "--json", "--save-query-png", str(png))
    again = _cli("search", "--image", str(png), "--json")
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    ids = [r["record_id"] for r in json.loads(first.output.split("query image")[0])["results"]]
    assert ids == [r["record_id"] for r in json.loads(again.output)["results"]]


def test_cli_searches_with_a_png_exported_by_the_ui(home, searcher, tmp_path):
    from sharpseek.data.images import png_bytes

    settings, ds, _ = home
    png = tmp_path / "seed-6.png"
    png.write_bytes(png_bytes(ds.images([6])[0]))  # the UI's Export page writes these bytes
    result = _cli("search", "--image", str(png), "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    expected = searcher.search(searcher.image_query(load_image(png)), k=3)
    assert [r["record_id"] for r in json.loads(result.output)["results"]] == expected[
        "record_id"
    ].tolist()


def test_cli_evaluate_retrieval_writes_a_labelled_report(home, tmp_path):
    result = _cli(
        "evaluate", "retrieval", "--queries", "30", "--out", str(tmp_path), "--no-progress"
    )
    assert result.exit_code == 0, result.output
    report = (tmp_path / "retrieval.md").read_text()
    assert "**synthetic**" in report and "12 regions" in report
    assert "in the **symmetric** space" in report
    assert "0.78 (0.79)" in report  # the paper's TUF beside ours
    for name in ("eval-fig7.png", "eval-fig8.png", "eval-fig9.png", "retrieval.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert "eval-hubness.png" in report and "Seeds 100000..100029" in report
    assert (tmp_path / "eval-hubness.png").stat().st_size > 0
    data = json.loads((tmp_path / "retrieval.json").read_text())
    assert list(data["blocks"]) == ["0", "100000"]
    settings, ds, vectors = home
    for block, first in (("0", 0), ("100000", 100000)):
        got = data["blocks"][block]
        assert {r["method"] for r in got["correlations"]} == {"simsiam", "euclidean", "mahalanobis"}
        assert all(r["pearson_lo"] <= r["pearson"] <= r["pearson_hi"] for r in got["correlations"]
                   if r["pearson"] is not None)  # fmt: skip
        assert [m["seed"] for m in got["matches"]] == list(range(first, first + 30))
        from sharpseek.serving.backends import open_backend

        with open_backend(settings) as backend, Searcher(settings, backend=backend) as own:
            images = backend.generate(seeds=[first, first + 7]).images
            q = own.query_map.apply(space_vectors(backend.embed, images, "symmetric"))
            frames = space_vectors(backend.embed, ds.images(), "symmetric")
        # each query's SimSiam match: the first of its 10 nearest regions' best frames (of
        # 12 regions here) re-ranked by their picture, as the search does
        for image, qi, row in zip(images, q, (got["matches"][0], got["matches"][7]), strict=True):
            candidates = numpy_grouped(frames, ds.manifest, qi.astype(float), 10)
            best = slow_reranked(image, candidates, frames, qi, ds.manifest, ds.images(), 1)
            assert row["simsiam"] == best[0]
        hub = got["hubness"]["simsiam"]
        counts = {}
        for m in got["matches"]:
            counts[m["simsiam"]] = counts.get(m["simsiam"], 0) + 1
        assert hub["distinct_nearest"] == len(counts)
        assert hub["top5_share"] == pytest.approx(sum(sorted(counts.values())[::-1][:5]) / 30)


def test_catalogue_hook_gives_each_ar_its_nearest_real_sharps(home, searcher, tmp_path):
    from sharpseek.search.searcher import nearest_sharps

    settings, ds, vectors = home
    images = ds.images([3, 30]) * 1.5  # a balanced AR may exceed 1000 G: clipped, as the model sees
    found = nearest_sharps(2, searcher=searcher)(images)
    clipped = np.clip(images, -1, 1)
    # catalogue ARs are generated: searched in the generated space, moved by its map
    assert searcher.query_space(generated=True) == "symmetric"
    embed = searcher.backend.encoder.embed
    expected_vectors = searcher.query_map.apply(space_vectors(embed, clipped, "symmetric"))
    frames = space_vectors(embed, ds.images(), "symmetric")
    # ... and their nearest regions re-ranked by the picture, as every generated query's
    expected = [
        slow_reranked(
            image, numpy_grouped(frames, ds.manifest, v, 10), frames, v, ds.manifest, ds.images(), 2
        )
        for image, v in zip(clipped, expected_vectors, strict=True)
    ]
    assert found == expected
    empty = settings.model_copy(
        update={"index": settings.index.model_copy(update={"path": tmp_path / "none"})}
    )
    assert nearest_sharps(2, settings=empty)(images) == [[], []]


def test_held_out_same_region_counts_only_held_out_frames_and_regions(home):
    from sharpseek.science.evaluate import pca_features, same_region_retrieval
    from sharpseek.search.evaluate_retrieval import _nearest, held_out_same_region

    settings, ds, vectors = home
    real = ds.manifest.reset_index(drop=True)
    harps = sorted(real["harpnum"].unique())
    held_harps = harps[:4]  # 4 regions x 4 frames = 16 frames
    baseline = PhysicsBaseline.fit(real)
    out = held_out_same_region(vectors, baseline, real, ds.images, held_harps, seed=0)
    rows = np.flatnonzero(real["harpnum"].isin(held_harps).to_numpy())
    assert (out["frames"], out["regions"]) == (len(rows), 4)
    h, t = real["harpnum"].to_numpy()[rows], real["t_rec"].to_numpy()[rows]
    assert out["simsiam"] == same_region_retrieval(vectors[rows], h, t)
    others = np.flatnonzero(~real["harpnum"].isin(held_harps).to_numpy())
    pca = pca_features(ds.images(rows), ds.images(others), n_components=vectors.shape[1])
    assert out["pca"] == pytest.approx(same_region_retrieval(pca, h, t))
    assert held_out_same_region(vectors, baseline, real, ds.images, harps[:1]) == {}  # 4 < 11
    # the k nearest, nearest first, by a plain sort
    q = vectors[:5].astype(np.float64) + 0.01
    got = _nearest(q, vectors, k=10)
    for qi, row in zip(q, got, strict=True):
        d = np.linalg.norm(vectors.astype(np.float64) - qi, axis=1)
        assert row.tolist() == np.argsort(d, kind="stable")[:10].tolist()


def test_a_real_query_carries_its_native_values_and_a_generated_one_none(
    home, searcher, br_sample_paths
):
    from sharpseek.science.measure import measure_files

    path = br_sample_paths[0]
    real = searcher.image_query(path)
    (expected,) = measure_files([path])
    for key in ("psep_mm", "tilt_cea", "r_jsoc", "flux_imbalance"):
        assert real.parameters[key] == pytest.approx(expected[key], rel=1e-12, nan_ok=True)
    settings, ds, _ = home
    model = searcher.image_query(ds.images([0])[0])
    assert "tilt_cea" not in model.parameters  # a model-space image has no native grid
    record = searcher.record_query(ds.manifest["record_id"].iloc[0])
    assert record.parameters["tilt_cea"] == pytest.approx(
        ds.manifest["tilt_cea"].iloc[0], nan_ok=True
    )
    assert record.parameters["r_jsoc_segment"] == "Br"


def test_complex_and_too_small_queries_are_refused_as_ingest_refuses_them(tmp_path):
    from astropy.io import fits

    complex_npy = tmp_path / "c.npy"
    np.save(complex_npy, np.zeros((128, 128), np.complex64))
    with pytest.raises(ImageInputError, match="complex"):
        load_image(complex_npy, units="model")
    with pytest.raises(ImageInputError, match="complex"):
        load_image(np.ones((40, 60), np.complex128))
    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "tiny.Br.fits")
    with pytest.raises(ImageInputError, match=r"tiny.Br.fits: patch is 4x4 px, under 8 px"):
        load_image(tmp_path / "tiny.Br.fits")
    with pytest.raises(ImageInputError, match="patch is 30x5 px"):
        load_image(np.ones((5, 30)))
    assert load_image(np.ones((8, 8))).shape == (128, 128)  # the smallest side ingest keeps


def test_the_query_map_is_fitted_once_stored_and_used_for_generated_queries_only(home, searcher):
    from sharpseek.search.query_map import GeneratedQueryMap

    settings, ds, vectors = home
    fitted = searcher.query_map
    versions = searcher.versions()
    assert fitted.check(versions["encoder"], versions["gan"]) is None
    dataset = f"{ds.name}/{ds.version}"
    key = GeneratedQueryMap.key(versions["encoder"], versions["gan"], dataset, "symmetric")
    assert searcher.store.exists(key) and fitted.space == "symmetric"
    assert (fitted.first_seed, fitted.generated) == (10**6, 1000)  # outside both eval blocks
    assert fitted.frames == {"dataset": f"{ds.name}/{ds.version}", "count": len(ds.manifest),
                             "requested": 2000}  # fmt: skip
    # frames measured as the index holds them, in the symmetric space
    symmetric = space_vectors(searcher.backend.embed, ds.images(), "symmetric")
    assert np.allclose(fitted.mean_frames, symmetric.astype(np.float64).mean(0), atol=1e-5)
    with Searcher(settings) as again:  # loaded from the store, not refitted
        assert again.query_map.to_json() == fitted.to_json()
    image = ds.images([5])[0]
    real = searcher.image_query(image)  # a real patch: searched as embedded, region space
    assert np.allclose(real.vector, vectors[5], atol=1e-5) and real.space == "region"
    generated = searcher.image_query(image, generated=True)
    assert np.allclose(generated.vector, fitted.apply(symmetric[5]), atol=1e-5)
    assert generated.space == "symmetric"
    off = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"query_map": False})}
    )
    with Searcher(off) as plain:
        assert plain.query_map is None
        query = plain.latent_query(3)  # unmapped, still in the generated space
        raw = space_vectors(plain.backend.embed, query.image[None], "symmetric")[0]
        assert np.allclose(query.vector, raw, atol=1e-6)


def test_the_pipeline_fits_the_query_map_once(home):
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.stages import query_map_stage

    settings, ds, _ = home
    first = query_map_stage(settings)
    store = open_store(settings)
    store.delete(first.outputs["key"])
    fitted = query_map_stage(settings)
    assert not fitted.skipped and fitted.message.endswith(": fitted")
    assert store.exists(fitted.outputs["key"])
    again = query_map_stage(settings)
    assert again.skipped and again.message.endswith("(stored)")
