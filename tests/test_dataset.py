"""The dataset writer and reader: sharded float16 images plus a Parquet manifest."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from sharpseek.dataset import PatchRecord, latest_version, open_dataset, record_id, write_dataset

T0 = datetime(2014, 1, 31, 2, 48)


def _records(n, *, seed=0, harps=3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield PatchRecord(
            image=rng.uniform(-1, 1, (128, 128)).astype(np.float32),
            meta={
                "series": "synthetic",
                "harpnum": 1 + i % harps,
                "t_rec": T0 + timedelta(hours=i),
            },
            columns={"scale_x": 2.0, "truth_flux_mx": 1e21 * (i + 1)},
        )


def test_record_id_names_series_harp_and_t_rec():
    assert record_id("hmi.sharp_cea_720s", 377, datetime(2011, 2, 15, 2)) == (
        "hmi.sharp_cea_720s:377:20110215_020000_TAI"
    )


def test_roundtrip_keeps_order_images_and_columns(tmp_path):
    records = list(_records(10))
    ds = write_dataset(
        tmp_path, "synthetic", "v1", iter(records), provenance={"x": 1}, shard_size=4
    )
    again = open_dataset(tmp_path / "synthetic" / "v1")
    assert len(again) == 10
    assert sorted(again.manifest["shard"].unique()) == [
        "images-00000.npy",
        "images-00001.npy",
        "images-00002.npy",
    ]
    images = again.images()
    expected = np.stack([r.image for r in records]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(images, expected)
    assert again.manifest["truth_flux_mx"].tolist() == [1e21 * (i + 1) for i in range(10)]
    assert again.info["provenance"] == {"x": 1}
    assert ds.version == again.version == "v1"


def test_images_of_selected_rows_in_requested_order(tmp_path):
    records = list(_records(9))
    ds = write_dataset(tmp_path, "s", "v", iter(records), provenance={}, shard_size=4)
    picked = ds.images([7, 1, 4])
    for out, row in zip(picked, [7, 1, 4], strict=True):
        np.testing.assert_array_equal(out, records[row].image.astype(np.float16).astype(np.float32))


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


def test_duplicate_record_is_refused(tmp_path):
    rec = next(_records(1))
    with pytest.raises(ValueError, match="duplicate record synthetic:1:20140131_024800_TAI"):
        write_dataset(tmp_path, "s", "v", [rec, rec], provenance={})
    assert not (tmp_path / "s" / "v").exists()


def test_wrong_image_shape_names_the_record(tmp_path):
    rec = PatchRecord(np.zeros((64, 64)), {"series": "synthetic", "harpnum": 5, "t_rec": T0})
    with pytest.raises(ValueError, match=r"synthetic:5:.*shape \(64, 64\), expected \(128, 128\)"):
        write_dataset(tmp_path, "s", "v", [rec], provenance={})


def test_existing_version_is_not_silently_replaced(tmp_path):
    write_dataset(tmp_path, "s", "v", _records(2), provenance={})
    with pytest.raises(FileExistsError, match="dataset s/v already exists"):
        write_dataset(tmp_path, "s", "v", _records(2), provenance={})
    write_dataset(tmp_path, "s", "v", _records(3), provenance={}, overwrite=True)
    assert len(open_dataset(tmp_path / "s" / "v")) == 3


def test_interrupted_write_leaves_no_complete_looking_version(tmp_path):
    def broken():
        yield from _records(3)
        raise RuntimeError("crash mid-ingest")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path, "s", "v", broken(), provenance={}, shard_size=2)
    assert not (tmp_path / "s" / "v").exists()
    assert latest_version(tmp_path, "s") is None
    # a rerun cleans the partial folder and completes
    ds = write_dataset(tmp_path, "s", "v", _records(3), provenance={}, shard_size=2)
    assert len(ds) == 3
    assert latest_version(tmp_path, "s") == tmp_path / "s" / "v"


def test_open_incomplete_folder_says_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete sharpseek dataset"):
        open_dataset(tmp_path / "empty")
