"""The pipeline library without Prefect: fingerprints, the ledger, shards, index plans."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from sharpseek.config import Settings
from sharpseek.data.dataset import load_dataset
from sharpseek.data.store import open_store
from sharpseek.pipeline import index_plans, ingest_plans
from sharpseek.pipeline import ledger as pipeline_ledger
from sharpseek.pipeline import stages as lib
from sharpseek.search.spaces import space_vectors

pytest_plugins = ["model_fixtures"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def ingest_synthetic(settings, **recipe):
    """A synthetic dataset through the one ingest road, in this process; the dataset."""
    plan = ingest_plans.plan_ingest_synthetic(settings, **recipe)
    outputs = ingest_plans.run_ingest_plan(settings, plan, progress=False).outputs
    return load_dataset(open_store(settings), "synthetic", outputs["version"])


def ingest_fits(settings, paths):
    """FITS files through the one ingest road, in this process: the stage's outcome."""
    return ingest_plans.run_ingest_plan(
        settings, ingest_plans.plan_ingest_fits(settings, paths), progress=False
    )


def _manifest(ids, hashes):
    return pd.DataFrame({"record_id": ids, "content_hash": hashes})


def test_fingerprint_is_canonical_and_sensitive():
    a = pipeline_ledger.fingerprint({"x": 1, "y": [1, 2]})
    assert a == pipeline_ledger.fingerprint({"y": [1, 2], "x": 1})  # key order does not matter
    assert a != pipeline_ledger.fingerprint({"x": 2, "y": [1, 2]})
    assert len(a) == 16


def test_dataset_digest_is_about_content_not_order():
    m = _manifest(["a", "b", "c"], ["1", "2", "3"])
    assert pipeline_ledger.dataset_digest(m) == pipeline_ledger.dataset_digest(m.iloc[::-1])
    assert pipeline_ledger.dataset_digest(m) != pipeline_ledger.dataset_digest(
        _manifest(["a", "b", "c"], ["1", "2", "4"])
    )
    assert pipeline_ledger.dataset_digest(m) != pipeline_ledger.dataset_digest(m.iloc[:2])


def test_files_digest_follows_bytes(tmp_path):
    f = tmp_path / "a.fits"
    f.write_bytes(b"one")
    first = pipeline_ledger.files_digest([f])
    f.write_bytes(b"two")
    assert pipeline_ledger.files_digest([f]) != first


@pytest.mark.parametrize("n, size", [(0, 3), (1, 3), (7, 3), (9, 3), (10, 100)])
def test_plan_shards_covers_each_row_once(n, size):
    m = _manifest([f"r{i}" for i in range(n)], [f"h{i}" for i in range(n)])
    rows = list(range(n))[::-1]
    shards = index_plans.plan_shards(
        m, rows, dataset="d", version="v1", encoder_version="e1", shard_size=size
    )
    flat = [r for s in shards for r in s.rows]
    assert sorted(flat) == sorted(rows) and len(flat) == n
    assert all(1 <= len(s) <= size for s in shards)
    assert len(shards) == -(-n // size)
    again = index_plans.plan_shards(
        m, rows, dataset="d", version="v1", encoder_version="e1", shard_size=size
    )
    assert [s.key for s in again] == [s.key for s in shards]  # deterministic keys
    other = index_plans.plan_shards(
        m, rows, dataset="d", version="v1", encoder_version="e2", shard_size=size
    )
    assert not {s.key for s in other} & {s.key for s in shards}  # per encoder version


def test_plan_shards_rejects_zero_size():
    with pytest.raises(ValueError, match="shard_size"):
        index_plans.plan_shards(
            _manifest([], []), [], dataset="d", version="v", encoder_version="e", shard_size=0
        )


def test_ledger_skips_only_matching_fingerprint_with_outputs(tmp_path):
    store = open_store(Settings(home=tmp_path / "home"))
    ledger = pipeline_ledger.Ledger(store)
    assert ledger.current("s", "fp1") is None
    store.put_bytes("out/x", b"1")
    ledger.record("s", "fp1", {"in": 1}, {"key": "out/x"})
    exists = lambda out: store.exists(out["key"])  # noqa: E731
    assert ledger.current("s", "fp1", exists=exists)["outputs"] == {"key": "out/x"}
    assert ledger.current("s", "fp2", exists=exists) is None  # inputs changed
    store.delete("out/x")
    assert ledger.current("s", "fp1", exists=exists) is None  # output deleted: rerun


def test_fits_stage_skips_unchanged_files_without_a_new_version(tmp_path, br_sample_paths):
    settings = Settings(home=tmp_path / "home")
    first = ingest_fits(settings, br_sample_paths[:2])
    assert not first.skipped and first.outputs["added"] == 2
    second = ingest_fits(settings, br_sample_paths[:2])
    assert second.skipped
    from sharpseek.data.dataset import dataset_versions

    assert dataset_versions(open_store(settings), "sharp") == [first.outputs["version"]]
    third = ingest_fits(settings, br_sample_paths[:3])
    assert not third.skipped and third.outputs["added"] == 1


def _with_clip(settings, clip):
    return settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"field_clip_gauss": clip})}
    )


def test_fits_into_a_dataset_made_under_another_clip_is_refused(tmp_path, br_sample_paths):
    """The clip changes what model space holds: adding frames under another clip would mix
    two clips in one dataset, and the same files would look "up to date"; refused, naming
    both settings, and nothing is written. Another dataset name takes them."""
    settings = Settings(home=tmp_path / "home")
    first = ingest_fits(settings, br_sample_paths[:1])
    other = _with_clip(settings, 500.0)
    with pytest.raises(ValueError, match="sharp/v0001 was made with quality.*another --dataset"):
        ingest_fits(other, br_sample_paths[:1])
    from sharpseek.data.dataset import dataset_versions

    assert dataset_versions(open_store(settings), "sharp") == [first.outputs["version"]]
    plan = ingest_plans.plan_ingest_fits(other, br_sample_paths[:1], dataset="sharp500")
    outcome = ingest_plans.run_ingest_plan(other, plan, progress=False)
    ds = load_dataset(open_store(settings), "sharp500", outcome.outputs["version"])
    assert ds.info["provenance"]["quality"]["field_clip_gauss"] == 500.0


def test_cli_ingest_under_another_clip_exits_2_with_one_line(tmp_path, br_sample_paths):
    from typer.testing import CliRunner

    from sharpseek.cli.app import app

    home = str(tmp_path / "home")
    runner = CliRunner()
    args = ["ingest", "fits", str(br_sample_paths[0]), "--home", home]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args, env={"SHARPSEEK_QUALITY__FIELD_CLIP_GAUSS": "500"})
    assert result.exit_code == 2, result.output
    assert "made with quality settings" in result.output and "Traceback" not in result.output


def test_synthetic_recipe_made_under_another_clip_is_refused_not_reused(tmp_path):
    settings = Settings(home=tmp_path / "home")
    ingest_synthetic(settings, regions=1, frames=2, seed=3)
    with pytest.raises(ValueError, match="quality settings.*--overwrite"):
        ingest_plans.plan_ingest_synthetic(_with_clip(settings, 500.0), regions=1, frames=2, seed=3)
    plan = ingest_plans.plan_ingest_synthetic(
        _with_clip(settings, 500.0), regions=1, frames=2, seed=3, overwrite=True
    )
    ds = load_dataset(open_store(settings), "synthetic", ingest_plans.run_ingest_plan(
        _with_clip(settings, 500.0), plan, progress=False).outputs["version"])  # fmt: skip
    assert ds.info["provenance"]["quality"]["field_clip_gauss"] == 500.0
    assert float(np.abs(ds.images()).max()) <= 0.5 + 1e-3


def test_an_index_of_before_the_spaces_is_rebuilt_beside_it_with_both(untrained_home):
    """A live collection of the same encoder with the region space only (an index built
    before the symmetric space existed) is not updated in place: the plan fills a new
    collection with both spaces, which goes live; the old one stays for a rollback."""
    from sharpseek.search.index import SpaceMissingError

    region_only = untrained_home.model_copy(
        update={"index": untrained_home.index.model_copy(update={"spaces": ("region",)})}
    )
    ingest_synthetic(untrained_home, regions=2, frames=3, seed=1)
    old = index_plans.plan_index(region_only, datasets=["synthetic"])
    index_plans.run_index_plan(region_only, old, progress=False)
    with index_plans.open_settings_index(region_only) as index:
        assert index.live().spaces == ("region",)
        with pytest.raises(SpaceMissingError, match="symmetric"):
            index.search(np.zeros(index.live().dim, np.float32), space="symmetric")
    # a generated query is refused at once, naming the fix, before any map is fitted
    from sharpseek.data.store import open_store
    from sharpseek.search.searcher import Searcher

    with Searcher(untrained_home) as searcher:
        with pytest.raises(SpaceMissingError, match="sharpseek index build"):
            searcher.latent_query(3)
        assert not list(open_store(untrained_home).list("query-maps/"))
    plan = index_plans.plan_index(untrained_home, datasets=["synthetic"])
    assert plan.mode == "reindex" and plan.n_frames == 6  # same encoder, new collection
    outcome = index_plans.run_index_plan(untrained_home, plan, progress=False)
    with index_plans.open_settings_index(untrained_home) as index:
        live = index.live()
        assert live.spaces == ("region", "symmetric") and outcome.live_after == live.name
        assert live.name.endswith("--region-symmetric") and live.name != old.live_before
        assert len(index.status()["collections"]) == 2
        assert index.search(np.zeros(live.dim, np.float32), space="symmetric", limit=2)
    assert index_plans.plan_index(untrained_home, datasets=["synthetic"]).mode == "none"


def test_index_plan_then_update_embeds_exactly_the_new_frames(untrained_home):
    settings = untrained_home.model_copy(
        update={"flows": untrained_home.flows.model_copy(update={"shard_size": 7})}
    )
    ingest_synthetic(settings, regions=3, frames=4, seed=1)
    plan = index_plans.plan_index(settings, datasets=["synthetic"])
    assert plan.mode == "reindex" and plan.n_frames == 12 and len(plan.shards) == 2
    with pytest.raises(RuntimeError, match="not embedded"):
        index_plans.apply_index_plan(settings, plan)  # nothing written before every shard exists
    # the shards embed side by side, as the thread runner maps them (one per core)
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda s: index_plans.embed_shard(settings, s, plan.encoder_key), plan.shards)
        )
    assert not any(r["cached"] for r in results)
    assert index_plans.embed_shard(settings, plan.shards[0], plan.encoder_key)["cached"]
    outcome = index_plans.apply_index_plan(settings, plan)
    assert (outcome.mode, outcome.added, outcome.points_after) == ("reindex", 12, 12)

    # the stored vectors are the encoder's embeddings of exactly those frames
    from sharpseek.data.dataset import load_dataset
    from sharpseek.models.inference import EncoderModel

    store = open_store(settings)
    ds = load_dataset(store, "synthetic")
    shard = plan.shards[1]
    stored = dict(np.load(store.open_read(shard.key)))
    encoder = EncoderModel.from_checkpoint(plan.encoder_key, store=store)
    direct = space_vectors(encoder.embed, ds.images(shard.rows))  # both spaces
    assert set(stored) == set(direct) == {"region", "symmetric"}
    for space in direct:
        np.testing.assert_allclose(stored[space], direct[space], rtol=1e-5, atol=1e-6)

    assert index_plans.plan_index(settings, datasets=["synthetic"]).mode == "none"
    # a longer recipe is another dataset version with one more frame per region
    ingest_synthetic(settings, regions=3, frames=5, seed=1)
    update = index_plans.plan_index(settings, datasets=["synthetic"])
    new_ids = set(load_dataset(store, "synthetic").manifest["record_id"]) - set(
        ds.manifest["record_id"]
    )
    assert update.mode == "update" and update.n_frames == len(new_ids) > 0
    for s in update.shards:
        index_plans.embed_shard(settings, s, update.encoder_key)
    done = index_plans.apply_index_plan(settings, update)
    assert done.added == len(new_ids) and done.points_after == 12 + len(new_ids)


# ----------------------------------------------------------------------------------------------
# sharded ingest
# ----------------------------------------------------------------------------------------------
def _ingest_settings(home, shard_frames: int) -> Settings:
    return Settings(
        home=home,
        synthetic={"regions": 5, "frames": 3, "seed": 4},
        flows={"ingest_shard_size": shard_frames},
    )


def _assert_same_dataset(single, sharded):
    """Same records, in the same order, with the same columns, values and images."""
    pd.testing.assert_frame_equal(single.manifest, sharded.manifest)
    np.testing.assert_array_equal(single.images(), sharded.images())


def test_plan_synthetic_shards_covers_each_region_once():
    from sharpseek.data.ingest import plan_synthetic_shards

    shards = plan_synthetic_shards(regions=7, frames=3, cadence_hours=6.0, seed=0, shard_frames=7)
    assert [(s.first_region, s.stop_region) for s in shards] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert len({s.key for s in shards}) == 4
    other_seed = plan_synthetic_shards(regions=7, frames=3, cadence_hours=6.0, seed=1,
                                       shard_frames=7)  # fmt: skip
    assert not {s.key for s in other_seed} & {s.key for s in shards}
    one_each = plan_synthetic_shards(regions=2, frames=30, cadence_hours=6.0, seed=0,
                                     shard_frames=7)  # fmt: skip
    assert [len(s) for s in one_each] == [1, 1]  # never less than a whole region


def test_sharded_synthetic_ingest_equals_single_process(tmp_path):
    settings = _ingest_settings(tmp_path / "sharded", shard_frames=7)  # 3 shards: 2 + 2 + 1
    single = ingest_synthetic(_ingest_settings(tmp_path / "single", 1000))  # one shard
    plan = ingest_plans.plan_ingest_synthetic(settings)
    assert len(plan.shards) == 3 and plan.done is None
    outcome = ingest_plans.run_ingest_plan(settings, plan, progress=False)
    assert not outcome.skipped and outcome.outputs["dataset"]["n_records"] == 15
    from sharpseek.data.dataset import load_dataset

    store = open_store(settings)
    _assert_same_dataset(single, load_dataset(store, "synthetic"))
    assert not list(store.list("pipeline/ingest/", recursive=True))  # staged shards removed
    assert ingest_plans.plan_ingest_synthetic(settings).done is not None  # up to date: no shards


def test_crash_before_the_commit_neither_duplicates_nor_drops(tmp_path):
    from sharpseek.data.dataset import dataset_versions, load_dataset
    from sharpseek.data.ingest import commit_ingest_shards, ingest_shard

    settings = _ingest_settings(tmp_path / "sharded", shard_frames=4)  # 5 shards of 1 region
    store = open_store(settings)
    plan = ingest_plans.plan_ingest_synthetic(settings)
    made = [ingest_shard(settings, s) for s in plan.shards[:2]]  # then the run dies
    assert [m["cached"] for m in made] == [False, False]
    with pytest.raises(RuntimeError, match="3 of 5 ingest shards .* not made"):
        commit_ingest_shards(store, "synthetic", plan.shards, provenance={}, base=None,
                             version=plan.version)  # fmt: skip
    assert dataset_versions(store, "synthetic") == []  # nothing written

    rerun = ingest_plans.plan_ingest_synthetic(settings)
    assert [s.key for s in rerun.shards] == [s.key for s in plan.shards]
    again = [ingest_shard(settings, s) for s in rerun.shards]
    assert [a["cached"] for a in again] == [True, True, False, False, False]
    ingest_plans.commit_ingest(settings, rerun)
    single = ingest_synthetic(_ingest_settings(tmp_path / "single", 1000))
    sharded = load_dataset(store, "synthetic")
    assert sharded.manifest["record_id"].is_unique
    _assert_same_dataset(single, sharded)


def test_sharded_fits_ingest_equals_single_process(tmp_path, br_sample_paths):
    settings = _ingest_settings(tmp_path / "sharded", shard_frames=2)
    paths = [*br_sample_paths, tmp_path / "missing.fits"]
    plan = ingest_plans.plan_ingest_fits(settings, paths)
    assert len(plan.shards) == -(-len(br_sample_paths) // 2) and len(plan.leading) == 1
    outcome = ingest_plans.run_ingest_plan(settings, plan, progress=False)
    assert outcome.outputs["added"] == len(br_sample_paths)
    assert [q[0] for q in outcome.outputs["quarantined"]] == [str(tmp_path / "missing.fits")]
    single_settings = _ingest_settings(tmp_path / "single", shard_frames=1000)  # one shard
    assert len(ingest_plans.plan_ingest_fits(single_settings, paths).shards) == 1
    ingest_fits(single_settings, paths)
    single = load_dataset(open_store(single_settings), "sharp")
    sharded = load_dataset(open_store(settings), "sharp")
    _assert_same_dataset(single, sharded)
    pd.testing.assert_frame_equal(
        single.quarantine.drop(columns="when"), sharded.quarantine.drop(columns="when")
    )


def test_archives_stage_rebuilds_after_the_directions_change(untrained_home):
    """The generator's archive packs its directions: a recalibration (a new
    DirectionSet.version, same GAN) rebuilds the archives instead of reusing stale ones."""
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.pipeline.stages import archives_stage
    from sharpseek.science.directions import DirectionSet, fit_directions

    settings, store = untrained_home, open_store(untrained_home)
    generator = GeneratorModel.from_settings(settings)
    fit_directions(
        generator.generate, gan_version=generator.version, latent_dim=generator.latent_dim, n=60
    ).save(store)
    assert not archives_stage(settings).skipped
    assert archives_stage(settings).skipped
    directions = DirectionSet.load(store, generator.version)
    directions.calibration["tuf"] = {"eps": [0.0], "tuf": {"median": [1.0], "p16": [0.5],
                                                         "p84": [1.5]}}  # fmt: skip
    directions.save(store)
    assert not archives_stage(settings).skipped


# ----------------------------------------------------------------------------------------------
# the index road's modes (`sharpseek index build|update`) and the models behind it
# ----------------------------------------------------------------------------------------------
def test_build_refuses_a_live_version_and_update_needs_a_live_one(untrained_home):
    from sharpseek.search.index import EmptyIndexError

    settings = untrained_home
    ingest_synthetic(settings, regions=2, frames=2, seed=1)
    with pytest.raises(EmptyIndexError, match="nothing is live yet"):
        index_plans.plan_index(settings, datasets=["synthetic"], mode="update")
    plan = index_plans.plan_index(settings, datasets=["synthetic"], mode="reindex")
    outcome = index_plans.run_index_plan(settings, plan, progress=False)
    assert (outcome.mode, outcome.points_after) == ("reindex", 4)
    with pytest.raises(ValueError, match="already live.*sharpseek index update"):
        index_plans.plan_index(settings, datasets=["synthetic"], mode="reindex")
    update = index_plans.plan_index(settings, datasets=["synthetic"], mode="update")
    assert update.mode == "none"
    assert index_plans.run_index_plan(settings, update, progress=False).points_after == 4


def test_index_cli_build_then_update_take_the_pipeline_road(untrained_home):
    from typer.testing import CliRunner

    from sharpseek.cli.app import app
    from sharpseek.data.dataset import load_dataset

    runner = CliRunner()
    first = ingest_synthetic(untrained_home, regions=2, frames=2, seed=1)
    built = runner.invoke(app, ["index", "build", "--no-progress"], terminal_width=200)
    assert built.exit_code == 0, built.output
    assert "added 4" in built.output and f"synthetic/{first.version}" in built.output
    # the vectors are in the store under the pipeline's shard keys (what the flows reuse)
    plan_keys = list(open_store(untrained_home).list(index_plans.EMBEDDINGS_PREFIX + "/"))
    assert plan_keys
    again = runner.invoke(app, ["index", "build", "--no-progress"], terminal_width=200)
    assert again.exit_code == 2 and "already live" in " ".join(again.output.split())
    ingest_synthetic(untrained_home, regions=2, frames=3, seed=1)  # one more frame a region
    updated = runner.invoke(app, ["index", "update", "--no-progress"], terminal_width=200)
    assert updated.exit_code == 0, updated.output
    assert "added 2" in updated.output and "holds 6 points" in updated.output
    assert len(load_dataset(open_store(untrained_home), "synthetic")) == 6


class _FakeServer:
    """A model backend standing in for TorchServe: serves ``version``, embeds to ``value``."""

    def __init__(self, version, value):
        self.version, self.value, self.calls = version, value, 0

    def versions(self):
        return {"gan": "g", "encoder": self.version, "directions": None}

    def embed(self, images):
        self.calls += 1
        return np.full((len(images), 3), self.value, np.float32)

    def close(self):
        pass


@pytest.mark.parametrize("serves_the_plans_version", [True, False])
def test_embedding_uses_torchserve_only_when_it_serves_the_plans_encoder(
    untrained_home, monkeypatch, serves_the_plans_version
):
    settings = untrained_home.model_copy(
        update={"serve": untrained_home.serve.model_copy(update={"backend": "torchserve"})}
    )
    ingest_synthetic(settings, regions=1, frames=2, seed=1)
    plan = index_plans.plan_index(settings, datasets=["synthetic"])
    served = plan.encoder_version if serves_the_plans_version else "another-encoder"
    server = _FakeServer(served, 7.0)
    monkeypatch.setattr(index_plans, "open_backend", lambda s: server)  # the embedding's backend
    index_plans._BACKENDS.clear()
    index_plans.embed_shard(settings, plan.shards[0], plan.encoder_key)
    stored = dict(np.load(open_store(settings).open_read(plan.shards[0].key)))
    assert set(stored) == {"region", "symmetric"}  # both spaces (an .npz)
    if serves_the_plans_version:  # 16 symmetries, the first one the region vector
        assert server.calls == 16 and all((v == 7.0).all() for v in stored.values())
    else:  # another version: the checkpoint of the plan's version, in this process
        assert server.calls == 0 and all(v.shape[1] != 3 for v in stored.values())
    index_plans._BACKENDS.clear()


def test_embedding_refuses_a_checkpoint_of_another_version(untrained_home):
    index_plans._BACKENDS.clear()
    key = lib.model_keys(untrained_home)["encoder"]
    with pytest.raises(ValueError, match="must all come from one encoder"):
        index_plans.embedding_backend(untrained_home, key, "not-this-version")


def test_directions_stage_generates_through_the_backend_as_the_generator_would(untrained_home):
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.science.directions import DirectionSet, fit_directions

    settings = untrained_home.model_copy(
        update={
            "directions": untrained_home.directions.model_copy(
                update={"samples": 200, "calibration_n_z": 4, "calibration_steps": 3}
            )
        }
    )
    outcome = lib.directions_stage(settings, progress=False)
    assert not outcome.skipped
    model = GeneratorModel.from_settings(settings)
    stored = DirectionSet.load(open_store(settings), model.version)
    direct = fit_directions(
        model.generate,
        gan_version=model.version,
        latent_dim=model.latent_dim,
        n=200,
        method=stored.method,  # the settings' method (the tiny preset's)
    )
    for name, boundary in direct.boundaries.items():
        np.testing.assert_allclose(stored.boundaries[name].normal, boundary.normal, rtol=1e-6)
    assert lib.directions_stage(settings, progress=False).skipped


def test_a_run_whose_config_predates_an_option_at_its_default_is_adopted_not_retrained(tmp_path):
    settings = Settings(home=tmp_path / "home", preset="tiny")
    ingest_synthetic(settings, regions=12, frames=4, seed=0)  # a batch of 32 to train on
    first = lib.train_stage(settings, "gan", epochs=1, progress=False)
    assert not first.skipped
    store = open_store(settings)
    run = lib.RunStore(store, "gan", first.outputs["run"])
    ckpt = lib.load_checkpoint(run.key("last.pt"), store=store, kind="gan")
    weights = {k: v.clone() for k, v in ckpt["generator"].items()}
    # the run as the version before `balance_weight` wrote it, its ledger record gone
    del ckpt["config"]["balance_weight"]
    run.save(ckpt, ["last.pt"])
    store.delete(pipeline_ledger.Ledger.key("train-gan"))
    again = lib.train_stage(settings, "gan", epochs=1, progress=False)
    assert again.skipped and "finished run found; adopted" in again.message
    kept = lib.load_checkpoint(run.key("last.pt"), store=store, kind="gan")["generator"]
    assert all(torch.equal(kept[k], weights[k]) for k in weights)
    # a field missing where the run differs from its default is another recipe: stale
    current = lib.gan_train_config("tiny", epochs=1).to_dict()
    older = {k: v for k, v in current.items() if k != "code_weight"}
    stored = lib._stored_config("gan", {"config": older})
    assert stored["code_weight"] == 0.0 and current["code_weight"] == 3.0
    # a field this version does not know is compared as stored (never equal)
    newer = {**current, "field_of_a_later_version": 1}
    assert lib._stored_config("gan", {"config": newer}) == lib._plain(newer)
