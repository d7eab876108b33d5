"""Frames mostly off the disk or NaN are left out of training and the index, by a rule in the
settings recorded (with the model-space clip) in every dataset version."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.config import Settings
from sharpseek.data.dataset import load_dataset
from sharpseek.data.exclusion import exclusion_counts, exclusion_reasons, usable_rows
from sharpseek.data.store import open_store
from sharpseek.pipeline.ingest_plans import plan_ingest_fits, run_ingest_plan
from sharpseek.training.common import training_split

runner = CliRunner()


def write_frame(path, field, harp, lon=5.0):
    hdu = fits.CompImageHDU(np.asarray(field, dtype=np.float32), compression_type="RICE_1")
    cards = {"HARPNUM": harp, "T_REC": "2020.01.01_00:00:00_TAI", "BUNIT": "Mx/cm^2",
             "CDELT1": 0.03, "RSUN_REF": 696000000, "LAT_FWT": 10.0, "LON_FWT": lon,
             "CRLT_OBS": 1.0}  # fmt: skip
    for key, value in cards.items():
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def bipole(ny=60, nx=90):
    y, x = np.mgrid[:ny, :nx]
    return 2500 * np.exp(-((x - 30) ** 2 + (y - 30) ** 2) / 40) - 900 * np.exp(
        -((x - 60) ** 2 + (y - 30) ** 2) / 40
    )


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    mostly_nan = bipole()
    mostly_nan[:, :60] = np.nan  # two thirds NaN
    write_frame(folder / "a.fits", bipole(), 9001)
    write_frame(folder / "b.fits", mostly_nan, 9002)
    write_frame(folder / "c.fits", bipole(), 9003, lon=95.0)  # centre beyond the limb
    write_frame(folder / "d.fits", bipole(), 9004)
    return folder


def ingest(settings, folder):
    run_ingest_plan(settings, plan_ingest_fits(settings, [folder]), progress=False)
    return load_dataset(open_store(settings), "sharp")


def test_reasons_follow_the_rule():
    reasons = exclusion_reasons(
        [0.0, 0.6, 0.0, 0.6, 0.0], [0.9, 0.9, -0.1, -0.1, np.nan], max_nan_fraction=0.5, min_mu=0.0
    )
    assert reasons.tolist() == ["", "nan_fraction>0.5", "mu<0", "nan_fraction>0.5", ""]


def test_ingest_marks_frames_training_leaves_out_and_records_the_rule(tmp_path, frames):
    settings = Settings(home=tmp_path / "home")
    ds = ingest(settings, frames)
    by_harp = dict(zip(ds.manifest["harpnum"], ds.manifest["excluded"], strict=True))
    assert by_harp == {9001: "", 9002: "nan_fraction>0.5", 9003: "mu<0", 9004: ""}
    assert exclusion_counts(ds.manifest) == {"nan_fraction>0.5": 1, "mu<0": 1}
    quality = ds.info["provenance"]["quality"]
    assert quality == {"field_clip_gauss": 1000.0, "max_nan_fraction": 0.5, "min_mu": 0.0}
    train, held = training_split(ds, 0.0, 0, 1)
    kept = set(ds.manifest["harpnum"].to_numpy()[np.concatenate([train, held])])
    assert kept == {9001, 9004}
    assert usable_rows(ds.manifest).sum() == 2


def test_thresholds_are_settings(tmp_path, frames):
    settings = Settings(home=tmp_path / "home", quality={"max_nan_fraction": 0.9, "min_mu": -1})
    ds = ingest(settings, frames)
    assert usable_rows(ds.manifest).all()


def test_clip_is_a_setting_applied_to_model_space(tmp_path, frames):
    settings = Settings(home=tmp_path / "home", quality={"field_clip_gauss": 500.0})
    ds = ingest(settings, frames)
    images = ds.images(list(range(len(ds))))
    assert float(np.abs(images).max()) == pytest.approx(0.5, abs=1e-3)
    assert ds.info["provenance"]["quality"]["field_clip_gauss"] == 500.0
    # the physical fluxes come from the unclipped field: the same as with the default clip
    default = ingest(Settings(home=tmp_path / "other"), frames)
    assert ds.manifest["flux_mx"].tolist() == default.manifest["flux_mx"].tolist()
    assert (ds.manifest["tuf"] < default.manifest["tuf"]).all()  # model space saturates more


def test_a_clip_above_the_models_range_is_refused():
    with pytest.raises(ValueError, match="field_clip_gauss"):
        Settings(quality={"field_clip_gauss": 2000.0})


def test_dataset_show_counts_the_frames_left_out(tmp_path, frames, monkeypatch):
    home = tmp_path / "home"
    ingest(Settings(home=home), frames)
    result = runner.invoke(app, ["dataset", "show", "sharp", "--home", str(home)],
                           terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "left out of training and the index: 2 of 4 frames" in text
    assert "nan_fraction>0.5: 1" in text and "mu<0: 1" in text
    assert "clipped at +-1000 G" in text
