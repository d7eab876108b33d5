"""Versioned datasets in the store: shards + manifest, appends, idempotence, crash and resume,
NRT replacement, quarantine — on a local folder and on a real S3 server (moto)."""

import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest

from sharpseek.data.dataset import (
    PatchDataset,
    PatchRecord,
    Quarantined,
    dataset_versions,
    latest_version,
    load_dataset,
    open_dataset,
    record_id,
)
from sharpseek.data.dataset_writer import append_records, write_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.data.s3_store import S3Store

pytest_plugins = ["s3_servers"]

T0 = datetime(2014, 1, 31, 2, 48)


def _record(i, *, series="hmi.sharp_cea_720s", harps=3, seed=0):
    rng = np.random.default_rng(seed + i)
    return PatchRecord(
        image=rng.uniform(-1, 1, (128, 128)).astype(np.float32),
        meta={"series": series, "harpnum": 1 + i % harps, "t_rec": T0 + timedelta(hours=i)},
        columns={"scale_x": 2.0, "flux_mx": 1e21 * (i + 1)},
    )


def _records(n, start=0, **kw):
    return [_record(i, **kw) for i in range(start, start + n)]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "home")
    server = request.getfixturevalue("moto_server")
    bucket = "ds-" + uuid.uuid4().hex[:12]
    return S3Store(server.endpoint, bucket, "testing", "testing", secure=False, retries=1)


def test_record_id_names_series_harp_and_t_rec():
    assert record_id("hmi.sharp_cea_720s", 377, datetime(2011, 2, 15, 2)) == (
        "hmi.sharp_cea_720s:377:20110215_020000_TAI"
    )


def test_roundtrip_keeps_order_images_and_columns(store):
    records = _records(10)
    result = append_records(store, "sharp", records, provenance={"x": 1}, shard_size=4)
    ds = load_dataset(store, "sharp")
    assert result.added == 10 and ds.version == "v0001" == latest_version(store, "sharp")
    assert ds.manifest["shard"].nunique() == 3
    expected = np.stack([r.image for r in records]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(ds.images(), expected)
    np.testing.assert_array_equal(ds.images([7, 1]), expected[[7, 1]])
    assert ds.manifest["flux_mx"].tolist() == [1e21 * (i + 1) for i in range(10)]
    assert ds.info["provenance"] == {"x": 1}
    assert ds.manifest["content_hash"].nunique() == 10


def test_append_references_old_shards_and_writes_only_new_ones(store):
    append_records(store, "sharp", _records(8), provenance={}, shard_size=4)
    first = load_dataset(store, "sharp")
    result = append_records(store, "sharp", _records(3, start=8), provenance={}, shard_size=4)
    second = result.dataset
    assert second.version == "v0002" and len(second) == 11 and result.added == 3
    old_shards = set(first.manifest["shard"])
    assert old_shards < set(second.manifest["shard"])
    assert len(set(second.manifest["shard"]) - old_shards) == 1
    assert dataset_versions(store, "sharp") == ["v0001", "v0002"]
    assert len(load_dataset(store, "sharp", "v0001")) == 8  # old versions stay readable


def test_rerun_with_the_same_records_adds_nothing(store):
    append_records(store, "sharp", _records(5), provenance={})
    result = append_records(store, "sharp", _records(5), provenance={})
    assert (result.added, result.skipped, len(result.dataset)) == (0, 5, 5)
    # nothing new: no identical version is written (the hourly ingest finds nothing most hours)
    assert result.unchanged and result.dataset.version == "v0001"
    assert dataset_versions(store, "sharp") == ["v0001"]
    grown = append_records(store, "sharp", _records(6), provenance={})
    assert not grown.unchanged and grown.dataset.version == "v0002" and grown.added == 1


def test_repeated_record_in_one_input_is_taken_once(store):
    rec = _record(0)
    result = append_records(store, "sharp", [rec, rec], provenance={})
    assert (result.added, result.skipped) == (1, 1)


def test_crash_mid_ingest_then_rerun_loses_and_duplicates_nothing(store):
    def crashing():
        yield from _records(6)
        raise RuntimeError("crash mid-ingest")

    with pytest.raises(RuntimeError, match="crash mid-ingest"):
        append_records(store, "sharp", crashing(), provenance={}, shard_size=4)
    assert latest_version(store, "sharp") is None  # nothing that looks finished
    result = append_records(store, "sharp", _records(9), provenance={}, shard_size=4)
    ds = result.dataset
    assert result.recovered == 4  # the first shard was finished before the crash
    assert result.added == 9 and result.skipped == 4
    assert sorted(ds.manifest["record_id"]) == sorted(r.record_id for r in _records(9))
    expected = {r.record_id: r.image.astype(np.float16) for r in _records(9)}
    for rid, image in zip(ds.manifest["record_id"], ds.images(), strict=True):
        np.testing.assert_array_equal(image, expected[rid].astype(np.float32))
    assert not list(store.list("datasets/sharp/journal/"))


def test_definitive_record_replaces_near_real_time_one(store):
    nrt = _records(4, series="hmi.sharp_cea_720s_nrt")
    append_records(store, "sharp", nrt, provenance={})
    definitive = _records(2, series="hmi.sharp_cea_720s")
    result = append_records(store, "sharp", definitive, provenance={})
    series = result.dataset.manifest.sort_values("t_rec")["series"].tolist()
    assert result.replaced == 2 and len(result.dataset) == 4
    assert series == ["hmi.sharp_cea_720s"] * 2 + ["hmi.sharp_cea_720s_nrt"] * 2
    # a late NRT copy of a record held as definitive is not taken
    again = append_records(store, "sharp", nrt[:1], provenance={})
    assert again.added == 0 and again.skipped == 1


def test_quarantine_is_kept_with_reason_and_good_records_go_in(store):
    items = [_record(0), Quarantined("bad.fits", "not a readable FITS file"), _record(1)]
    result = append_records(store, "sharp", items, provenance={})
    ds = load_dataset(store, "sharp")
    assert len(ds) == 2 and len(result.quarantined) == 1
    assert ds.quarantine[["source", "reason"]].values.tolist() == [
        ["bad.fits", "not a readable FITS file"]
    ]
    assert ds.info["n_quarantined"] == 1


def test_quarantined_record_leaves_quarantine_once_ingested(store):
    late = _record(5)
    append_records(
        store, "sharp", [Quarantined("x.fits", "export missed it", late.record_id)], provenance={}
    )
    ds = append_records(store, "sharp", [late], provenance={}).dataset
    assert len(ds.quarantine) == 0 and len(ds) == 1


def test_wrong_image_shape_names_the_record(store):
    rec = PatchRecord(np.zeros((64, 64)), {"series": "synthetic", "harpnum": 5, "t_rec": T0})
    with pytest.raises(ValueError, match=r"synthetic:5:.*shape \(64, 64\), expected \(128, 128\)"):
        append_records(store, "s", [rec], provenance={})


def test_existing_version_is_not_silently_replaced(tmp_path):
    write_dataset(tmp_path, "s", "v", _records(2), provenance={})
    with pytest.raises(FileExistsError, match="dataset s/v already exists"):
        write_dataset(tmp_path, "s", "v", _records(2), provenance={})
    ds = write_dataset(tmp_path, "s", "v", _records(3), provenance={}, overwrite=True)
    assert len(ds) == 3 and len(open_dataset(tmp_path / "datasets" / "s" / "v")) == 3


def test_open_incomplete_folder_says_what_is_missing(tmp_path):
    (tmp_path / "datasets" / "s" / "v").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a complete sharpseek dataset"):
        open_dataset(tmp_path / "datasets" / "s" / "v")


def test_missing_dataset_is_a_clear_error(store):
    with pytest.raises(FileNotFoundError, match="no complete version of dataset 'nothing'"):
        load_dataset(store, "nothing")


def test_annotation_sees_stored_float16_images_and_rows(tmp_path):
    seen = []

    def annotate(images, rows):
        seen.append((images.dtype, len(rows), rows[0]["harpnum"]))
        return {"mean_b": images.mean(axis=(1, 2))}

    ds = write_dataset(
        tmp_path, "s", "v", _records(5), provenance={}, shard_size=3, annotate=annotate
    )
    assert seen == [(np.float32, 3, 1), (np.float32, 2, 1)]
    np.testing.assert_allclose(ds.manifest["mean_b"], ds.images().mean(axis=(1, 2)), rtol=1e-6)


def test_patch_dataset_items_and_columns(store):
    ds = append_records(store, "sharp", _records(6), provenance={}, shard_size=4).dataset
    items = PatchDataset(ds, rows=[5, 0], columns=["flux_mx"])
    image, values = items[0]
    assert image.shape == (1, 128, 128) and image.dtype.is_floating_point
    np.testing.assert_array_equal(image[0].numpy(), ds.images([5])[0])
    assert values.tolist() == [pytest.approx(6e21, rel=1e-6)]
    assert len(items) == 2


def test_patch_dataset_works_in_dataloader_workers(tmp_path):
    import torch

    ds = write_dataset(tmp_path, "s", "v", _records(8), provenance={}, shard_size=3)
    loader = torch.utils.data.DataLoader(PatchDataset(ds), batch_size=4, num_workers=2)
    batches = list(loader)
    assert [b.shape for b in batches] == [(4, 1, 128, 128)] * 2
    np.testing.assert_array_equal(torch.cat(batches)[:, 0].numpy(), ds.images())


@pytest.mark.parametrize("name", ["../../etc", "", "a/b", "..", ".hidden", "x" * 65, "a b"])
def test_a_dataset_name_outside_the_rule_is_refused_before_anything_is_written(tmp_path, name):
    from sharpseek.data.dataset import check_dataset_name, load_dataset
    from sharpseek.data.dataset_writer import append_records
    from sharpseek.data.local_store import LocalStore

    store = LocalStore(tmp_path / "home")
    with pytest.raises(ValueError, match="dataset name .*letters, digits"):
        check_dataset_name(name)
    with pytest.raises(ValueError, match="dataset name"):
        append_records(store, name, [], provenance={})
    with pytest.raises(ValueError, match="dataset name"):
        load_dataset(store, name)
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*"))


@pytest.mark.parametrize("name", ["sharp", "synthetic", "sharp-2014_v2", "Br.500"])
def test_ordinary_dataset_names_pass(name):
    from sharpseek.data.dataset import check_dataset_name

    assert check_dataset_name(name) == name


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "fits", ".", "--dataset", "../../etc"],
        ["ingest", "fits", ".", "--dataset", ""],
        ["dataset", "show", "a/b"],
        ["plot", "dataset", "--dataset", "../x"],
    ],
)
def test_cli_refuses_a_bad_dataset_name_with_exit_2_and_the_rule(tmp_path, args):
    from typer.testing import CliRunner

    from sharpseek.cli.app import app

    home = tmp_path / "home"
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert "dataset name" in result.output and "Traceback" not in result.output
    assert not home.exists() or not any(home.rglob("*"))


def test_a_journal_entry_gone_between_listing_and_reading_is_not_an_error(tmp_path):
    """Found by benchmarks/bench_soak.py on S3: two writers of one next version share its
    journal; one committed and deleted its entry while the other listed then read it, and
    the good ingest failed with ObjectNotFound. A vanished entry is another writer's, now
    committed or withdrawn: skipped."""
    import io

    import pandas as pd

    from sharpseek.data.dataset_writer import _read_journal

    store = LocalStore(tmp_path)
    prefix = "datasets/sharp/journal/v0002/"
    shard = "shards/one/done.json"
    store.put_bytes(shard, b"{}")
    frame = io.BytesIO()
    pd.DataFrame([{"record_id": "r1", "shard": shard}]).to_parquet(frame, index=False)
    store.put_bytes(prefix + "kept.parquet", frame.getvalue())
    store.put_bytes(prefix + "gone.parquet", frame.getvalue())
    listed = list(store.list(prefix))
    store.delete(prefix + "gone.parquet")  # the other writer, between list and read
    store.list = lambda p: iter(listed)  # what the first listing saw
    keys, rows = _read_journal(store, prefix, set())
    assert keys == [prefix + "kept.parquet"] and [r["record_id"] for r in rows] == ["r1"]
