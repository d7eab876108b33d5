"""Ingestion end to end: local FITS (good and bad), JSOC through the real drms client against
the fake JSOC server, and the CLI's report and exit status."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from fake_jsoc import FakeJsoc, builtin_record_table
from sharpseek.cli.app import app
from sharpseek.config import Settings, StoreSettings
from sharpseek.data.dataset import dataset_versions, load_dataset
from sharpseek.data.ingest_fits import shown_path
from sharpseek.data.ingest_records import derive_mu
from sharpseek.data.jsoc import DEFINITIVE_SERIES, NRT_SERIES
from sharpseek.data.local_store import LocalStore
from sharpseek.data.store import open_store
from sharpseek.pipeline.ingest_plans import plan_ingest_fits, plan_ingest_jsoc, run_ingest_plan

pytest_plugins = ["s3_servers"]

EMAIL = "researcher@example.org"  # registered on the fake JSOC
runner = CliRunner()


@pytest.fixture
def settings(tmp_path):
    return Settings(
        home=tmp_path / "home",
        jsoc={
            "email": EMAIL,
            "retries": 2,
            "backoff_seconds": 0.001,
            "poll_seconds": 0.001,
            "export_timeout_seconds": 5.0,
        },
    )


def ingest_fits(settings, paths):
    """The one ingest road (plan -> shards -> commit) in this process, as `sharpseek ingest
    fits` runs it: the stage's outcome and the dataset version it left."""
    outcome = run_ingest_plan(settings, plan_ingest_fits(settings, paths), progress=False)
    return outcome.outputs, load_dataset(open_store(settings), "sharp")


def ingest_jsoc(settings, **request):
    """`sharpseek ingest jsoc`'s road: plan (ask JSOC, download), shards, commit."""
    outcome = run_ingest_plan(settings, plan_ingest_jsoc(settings, **request), progress=False)
    return outcome.outputs, load_dataset(open_store(settings), "sharp")


def _write_sharp(path, data, **header):
    """A FITS as JSOC exports it: empty primary HDU, Rice-compressed image HDU."""
    hdu = fits.CompImageHDU(np.asarray(data, dtype=np.float32), compression_type="RICE_1")
    base = {
        "HARPNUM": 9100,
        "T_REC": "2020.01.01_00:00:00_TAI",
        "BUNIT": "Mx/cm^2",
        "CDELT1": 0.03,
        "RSUN_REF": 696000000,
        "LAT_FWT": 10.0,
        "LON_FWT": 5.0,
        "CRLT_OBS": 1.0,
    }
    base.update(header)
    for key, value in base.items():
        if value is not None:
            hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def _bipole(ny=60, nx=90):
    y, x = np.mgrid[:ny, :nx]
    return 900 * np.exp(-((x - 30) ** 2 + (y - 30) ** 2) / 40) - 900 * np.exp(
        -((x - 60) ** 2 + (y - 30) ** 2) / 40
    )


def test_real_samples_ingest_and_other_segments_are_left_aside(settings, samples_dir):
    result, ds = ingest_fits(settings, [samples_dir])
    assert result["added"] == 5 and not result["quarantined"]
    assert sorted(ds.manifest["harpnum"].unique()) == [377, 3700, 7115]
    assert ds.manifest["mu"].between(0, 1).all()
    assert (ds.manifest["flux_strong_mx"] / ds.manifest["usflux"]).between(0.9, 4.5).all()
    store = LocalStore(settings.home)
    raw = sorted(o.key for o in store.list("raw/"))
    assert sorted(ds.manifest["raw_key"]) == raw and len(set(raw)) == 5
    for key, source in zip(ds.manifest["raw_key"], ds.manifest["source"], strict=True):
        original = (samples_dir / source.split(":", 1)[1]).read_bytes()
        assert store.get_bytes(key) == original  # kept exactly as received
        assert key.endswith(f"/{hashlib.sha256(original).hexdigest()}.fits")  # by content
    again = run_ingest_plan(settings, plan_ingest_fits(settings, [samples_dir]), progress=False)
    assert again.skipped and "up to date" in again.message  # the ledger knows these files
    assert len(load_dataset(store, "sharp")) == 5
    one_more, ds = ingest_fits(settings, [samples_dir, _write_sharp(
        settings.home.parent / "extra.fits", _bipole(), HARPNUM=9300)])  # fmt: skip
    assert (one_more["added"], one_more["skipped"], len(ds)) == (1, 5, 6)  # held: skipped


def test_mu_is_derived_from_the_flux_weighted_centre():
    assert derive_mu({"lat_fwt": 0.0, "lon_fwt": 0.0, "crlt_obs": 0.0}) == pytest.approx(1.0)
    assert derive_mu({"lat_fwt": 0.0, "lon_fwt": 60.0, "crlt_obs": 0.0}) == pytest.approx(0.5)
    # without LAT_FWT/LON_FWT: CRVAL2 and CRVAL1 - CRLN_OBS
    assert derive_mu({"crval2": 0.0, "crval1": 160.0, "crln_obs": 100.0, "crlt_obs": 0.0}) == (
        pytest.approx(0.5)
    )


BAD_CASES = {
    "not_fits.fits": ("text", "not a readable FITS file"),
    "truncated.fits": ("truncated", "not a readable FITS file"),
    "all_nan.fits": ("nan", "all pixels are NaN"),
    "counts.fits": ("unit", "BUNIT='DN/s' is not a field strength"),
    "tesla.fits": ("tesla", "not in gauss"),
    "tiny.fits": ("small", "under 8 px on a side"),
    "anonymous.fits": ("noharp", "lacks HARPNUM or T_REC"),
    "letters.fits": ("harp-abc", "HARPNUM"),
    "new\nline.fits": ("good-harp", "file name"),
    "byte-\udcff.fits": ("good-harp", "file name"),  # the name's byte 0xff, as os.fsdecode
}


def _bad_file(folder, name, kind):
    path = folder / name
    if kind == "text":
        path.write_text("SIMPLE? no, this is a text file")
    elif kind == "truncated":
        good = _write_sharp(folder / "whole.tmp", _bipole(), HARPNUM=9199)
        path.write_bytes(good.read_bytes()[:4000])
        good.unlink()
    elif kind == "nan":
        _write_sharp(path, np.full((40, 40), np.nan), HARPNUM=9101)
    elif kind == "unit":
        _write_sharp(path, _bipole(), HARPNUM=9102, BUNIT="DN/s")
    elif kind == "tesla":
        _write_sharp(path, _bipole() / 1e4, HARPNUM=9103, BUNIT="T")
    elif kind == "small":
        _write_sharp(path, np.ones((5, 5)), HARPNUM=9104)
    elif kind == "noharp":
        _write_sharp(path, _bipole(), HARPNUM=None)
    elif kind == "harp-abc":
        _write_sharp(path, _bipole(), HARPNUM="abc")
    elif kind == "good-harp":  # a good file whose name no text column can hold
        _write_sharp(path, _bipole(), HARPNUM=9105 + len(name))
    return path


def test_each_bad_file_is_quarantined_with_its_reason_and_good_ones_go_in(settings, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _write_sharp(folder / "good1.fits", _bipole(), HARPNUM=9001)
    _write_sharp(folder / "good2.fits", _bipole(), HARPNUM=9002, BUNIT="G")
    for name, (kind, _) in BAD_CASES.items():
        _bad_file(folder, name, kind)
    result, _ = ingest_fits(settings, [folder])
    assert result["added"] == 2
    reasons = {source.split("/")[-1]: reason for source, reason, _ in result["quarantined"]}
    assert set(reasons) == {shown_path(name) for name in BAD_CASES}
    for name, (_, expected) in BAD_CASES.items():
        assert expected in reasons[shown_path(name)], (name, reasons[shown_path(name)])
    quarantine = load_dataset(LocalStore(settings.home), "sharp").quarantine
    assert len(quarantine) == len(BAD_CASES)


def test_cli_exit_status_says_something_was_quarantined(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_HOME", str(settings.home))
    folder = tmp_path / "in"
    folder.mkdir()
    _write_sharp(folder / "good.fits", _bipole())
    _bad_file(folder, "all_nan.fits", "nan")
    result = runner.invoke(app, ["ingest", "fits", str(folder)], terminal_width=200)
    assert result.exit_code == 3, result.output
    assert "all pixels are NaN" in result.output and "1 added" in result.output
    clean = runner.invoke(app, ["ingest", "fits", str(folder / "good.fits")])
    assert clean.exit_code == 0, clean.output
    assert "0 added, 1 already there" in " ".join(clean.output.split())


def test_cli_ingest_is_recorded_in_the_ledger_and_an_identical_rerun_is_skipped(
    settings, tmp_path, monkeypatch
):
    from sharpseek.pipeline.ledger import Ledger

    monkeypatch.setenv("SHARPSEEK_HOME", str(settings.home))
    folder = tmp_path / "in"
    folder.mkdir()
    _write_sharp(folder / "good.fits", _bipole())
    first = runner.invoke(app, ["ingest", "fits", str(folder)], terminal_width=200)
    assert first.exit_code == 0, first.output
    entry = Ledger(LocalStore(settings.home)).get("ingest-fits-sharp")
    assert entry is not None and entry["outputs"]["added"] == 1  # as a flow run records it
    again = runner.invoke(app, ["ingest", "fits", str(folder)], terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output and "skipped" in again.output
    assert Ledger(LocalStore(settings.home)).get("ingest-fits-sharp") == entry  # not rerun
    assert dataset_versions(LocalStore(settings.home), "sharp") == ["v0001"]  # none added


def test_missing_path_is_reported(settings, tmp_path):
    _write_sharp(tmp_path / "good.fits", _bipole())
    result, _ = ingest_fits(settings, [tmp_path / "good.fits", tmp_path / "nowhere"])
    assert [reason for _, reason, _ in result["quarantined"]] == ["no such file or folder"]
    assert result["added"] == 1


def test_only_missing_paths_are_refused_and_nothing_written(settings, tmp_path):
    with pytest.raises(ValueError, match="nowhere.*no such file or folder"):
        ingest_fits(settings, [tmp_path / "nowhere"])
    assert not settings.home.exists() or not any(settings.home.rglob("*.json"))


# ---------------------------------------------------------------- JSOC
@pytest.fixture
def fake_jsoc(tmp_path):
    server = FakeJsoc(
        {DEFINITIVE_SERIES: builtin_record_table(), NRT_SERIES: builtin_record_table()},
        tmp_path / "jsoc-files",
    ).start()
    yield server
    server.stop()


def _jsoc_settings(settings, server):
    return settings.model_copy(
        update={"jsoc": settings.jsoc.model_copy(update={"server_url": server.url})}
    )


def test_jsoc_ingest_then_incremental_asks_only_for_newer(settings, fake_jsoc):
    s = _jsoc_settings(settings, fake_jsoc)
    first, ds = ingest_jsoc(
        s,
        harpnums=[9001],
        start="2020.01.01_00:00:00_TAI",
        end="2020.01.01_02:00:00_TAI",
    )
    assert first["added"] == 3 and not first["quarantined"]
    assert set(ds.manifest["source"].str.split(":").str[0]) == {"jsoc"}
    later, ds = ingest_jsoc(s, harpnums=[9001], end="2020.01.01_05:00:00_TAI", incremental=True)
    assert later["added"] == 3 and later["skipped"] == 0  # 03:00, 04:00, 05:00 only
    assert len(ds) == 6


def test_definitive_records_replace_nrt_ones_downstream(settings, fake_jsoc):
    s = _jsoc_settings(settings, fake_jsoc)
    window = dict(
        harpnums=[9002],
        start="2020.01.01_00:00:00_TAI",
        end="2020.01.01_03:00:00_TAI",
        incremental=False,
    )
    nrt, _ = ingest_jsoc(s, nrt=True, **window)
    assert nrt["added"] == 4
    definitive, ds = ingest_jsoc(s, **window)
    manifest = ds.manifest
    assert definitive["replaced"] == 4 and len(manifest) == 4
    assert set(manifest["series"]) == {DEFINITIVE_SERIES}


def test_jsoc_export_failure_is_a_clear_cli_error(settings, fake_jsoc, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_HOME", str(settings.home))
    monkeypatch.setenv("SHARPSEEK_JSOC__SERVER_URL", fake_jsoc.url)
    monkeypatch.setenv("SHARPSEEK_JSOC__EMAIL", EMAIL)
    monkeypatch.setenv("SHARPSEEK_JSOC__POLL_SECONDS", "0.001")
    fake_jsoc.behaviour.final_status = 4
    result = runner.invoke(
        app,
        [
            "ingest",
            "jsoc",
            "--harp",
            "9001",
            "--start",
            "2020.01.01_00:00:00_TAI",
            "--end",
            "2020.01.01_01:00:00_TAI",
        ],
    )
    assert result.exit_code == 2
    assert "status 4" in " ".join(result.output.split())


def test_jsoc_without_email_says_which_variable_to_set(settings, fake_jsoc):
    s = _jsoc_settings(settings, fake_jsoc)
    s = s.model_copy(update={"jsoc": s.jsoc.model_copy(update={"email": None})})
    with pytest.raises(ValueError, match="SHARPSEEK_JSOC__EMAIL"):
        ingest_jsoc(
            s,
            harpnums=[9001],
            start="2020.01.01_00:00:00_TAI",
            end="2020.01.01_01:00:00_TAI",
        )


def test_raw_fits_are_kept_by_content_never_by_name(settings, tmp_path):
    """Two frames of one HARP in files of one name keep their own raw bytes; the same bytes
    under another name store nothing new."""
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    first = _write_sharp(one / "Br.fits", _bipole(), T_REC="2020.01.01_00:00:00_TAI")
    second = _write_sharp(two / "Br.fits", _bipole() * 0.5, T_REC="2020.01.01_01:00:00_TAI")
    _, ds = ingest_fits(settings, [first, second])
    store = LocalStore(settings.home)
    keys = list(ds.manifest.sort_values("t_rec")["raw_key"])
    assert len(set(keys)) == 2
    assert [store.get_bytes(k) for k in keys] == [first.read_bytes(), second.read_bytes()]
    renamed = tmp_path / "c" / "hmi.sharp_cea_720s.9100.20200101_000000_TAI.Br.fits"
    renamed.parent.mkdir()
    shutil.copy(first, renamed)
    ingest_fits(settings, [renamed])
    assert sorted(o.key for o in store.list("raw/")) == sorted(keys)  # nothing new stored


def test_same_file_from_two_places_gives_the_same_record(settings, tmp_path, samples_dir):
    """Ingest is a function of the file: the same record, content hash and parameters."""
    _, local = ingest_fits(settings, [next(samples_dir.glob("*3700.20140131*.Br.fits"))])
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(next(samples_dir.glob("*3700.20140131*.Br.fits")), copy)
    other = settings.model_copy(update={"home": tmp_path / "home2"})
    _, again = ingest_fits(other, [copy])
    a, b = local.manifest.iloc[0], again.manifest.iloc[0]
    assert a["record_id"] == b["record_id"] and a["content_hash"] == b["content_hash"]
    assert a["tuf"] == b["tuf"]


@pytest.mark.slow
def test_unreachable_s3_store_is_a_clear_cli_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SHARPSEEK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHARPSEEK_STORE__BACKEND", "s3")
    monkeypatch.setenv("SHARPSEEK_STORE__ENDPOINT", f"127.0.0.1:{port}")
    monkeypatch.setenv("SHARPSEEK_STORE__SECURE", "false")
    monkeypatch.setenv("SHARPSEEK_STORE__ACCESS_KEY", "key-id")
    monkeypatch.setenv("SHARPSEEK_STORE__SECRET_KEY", "very-secret-value")
    _write_sharp(tmp_path / "good.fits", _bipole())
    result = runner.invoke(app, ["ingest", "fits", str(tmp_path / "good.fits")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"127.0.0.1:{port}" in text and "very-secret-value" not in text


def test_dataset_list_and_show_report_versions_and_quarantine(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_HOME", str(settings.home))
    folder = tmp_path / "in"
    folder.mkdir()
    _write_sharp(folder / "good.fits", _bipole())
    _bad_file(folder, "tiny.fits", "small")
    ingest_fits(settings, [folder])
    _write_sharp(folder / "later.fits", _bipole(), T_REC="2020.01.01_01:00:00_TAI")
    ingest_fits(settings, [folder])
    listing = " ".join(runner.invoke(app, ["dataset", "list"], terminal_width=200).output.split())
    assert "sharp │ v0001 │ 1" in listing and "sharp │ v0002 * │ 2" in listing
    shown = runner.invoke(app, ["dataset", "show", "sharp"], terminal_width=200)
    text = " ".join(shown.output.split())
    assert shown.exit_code == 0, shown.output
    assert "sharp/v0002: 2 records" in text and "under 8 px on a" in text
    missing = runner.invoke(app, ["dataset", "show", "nothing"])
    assert missing.exit_code == 2


def test_fits_ingest_into_an_s3_store_keeps_raw_files_there(settings, samples_dir, moto_server):
    import uuid

    from sharpseek.data.s3_store import S3Store

    bucket = "ingest-" + uuid.uuid4().hex[:10]
    store_settings = {"backend": "s3", "endpoint": moto_server.endpoint, "bucket": bucket,
                      "access_key": "k", "secret_key": "s", "secure": False}  # fmt: skip
    settings = settings.model_copy(update={"store": StoreSettings(**store_settings)})
    result, ds = ingest_fits(settings, [samples_dir])
    assert result["added"] == 5
    store = S3Store(moto_server.endpoint, bucket, "k", "s", secure=False)
    assert len([o for o in store.list("raw/")]) == 5
    again = load_dataset(store, "sharp")
    np.testing.assert_array_equal(again.images(), ds.images())


def test_jsoc_harps_without_a_time_range_bring_every_record_of_them(settings, fake_jsoc):
    s = _jsoc_settings(settings, fake_jsoc)
    every, ds = ingest_jsoc(s, harpnums=[9002], incremental=False)
    assert every["added"] == len(ds) > 0 and set(ds.manifest["harpnum"]) == {9002}
    with pytest.raises(ValueError, match="nothing to ask JSOC for"):
        plan_ingest_jsoc(s, incremental=False)


def test_resuming_a_crashed_synthetic_ingest_makes_only_the_shards_it_lacks(tmp_path, monkeypatch):
    """Issue 21: a crashed synthetic ingest, run again, regenerated every frame. Shards are
    content-addressed by recipe and regions and kept once made: the rerun makes only what
    the crash left undone, and commits every frame."""
    from sharpseek.data import ingest
    from sharpseek.pipeline import ingest_plans

    settings = Settings(home=tmp_path / "home", preset="tiny", flows={"ingest_shard_size": 4})
    recipe = {"regions": 6, "frames": 2, "seed": 1}
    made, real = [], ingest.ingest_shard

    def crash_after_two(settings, shard, **kw):
        if len(made) == 2:
            raise KeyboardInterrupt("the machine went down")
        made.append(real(settings, shard, **kw))
        return made[-1]

    monkeypatch.setattr(ingest_plans, "ingest_shard", crash_after_two)  # where the plan runs it
    with pytest.raises(KeyboardInterrupt):
        ingest_plans.run_ingest_plan(
            settings, ingest_plans.plan_ingest_synthetic(settings, **recipe), progress=False
        )
    cached = []

    def spy(settings, shard, **kw):
        out = real(settings, shard, **kw)
        cached.append(out["cached"])
        return out

    monkeypatch.setattr(ingest_plans, "ingest_shard", spy)
    plan = ingest_plans.plan_ingest_synthetic(settings, **recipe)
    outcome = ingest_plans.run_ingest_plan(settings, plan, progress=False)
    assert cached == [True, True, False]  # three shards of two regions; one made again
    assert outcome.outputs["dataset"]["n_records"] == 12
