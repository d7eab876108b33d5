"""The directions commands end to end on an untrained, seeded tiny GAN (seconds): fit, show,
shift (eps and physical targets), generate a catalogue, invert, plot; and every bad input
exits with code 2 and one line. What the directions mean physically is tested with
generators of known physics in test_directions.py and test_catalogue.py; an untrained GAN
makes no bipoles, so only its field-strength and texture parameters get directions here."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.config import Settings

pytest_plugins = ["model_fixtures"]
torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home with untrained checkpoints and directions fitted on 240 images."""
    from model_fixtures import write_untrained_checkpoints

    path = tmp_path_factory.mktemp("home")
    settings = Settings(home=path, preset="tiny")
    write_untrained_checkpoints(settings)
    result = runner.invoke(
        app,
        ["directions", "fit", "--n", "240", "--calibration-n-z", "6", "--no-progress",
         "--home", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


def run(home, *args):
    return runner.invoke(app, [*args, "--home", str(home)])


def test_fit_stores_directions_with_calibration_per_gan_version(home):
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.science.directions import DirectionSet

    settings = Settings(home=home, preset="tiny")
    version = GeneratorModel.from_settings(settings).version
    ds = DirectionSet.load(open_store(settings), version)
    assert ds.n_samples == 240 and "tuf" in ds.boundaries and "tuf" in ds.calibration
    assert len(ds.calibration["tuf"]["eps"]) == settings.directions.calibration_steps
    assert 0.5 <= ds["tuf"].accuracy <= 1.0


def test_fit_is_the_pipeline_step_recorded_in_its_ledger_and_skipped_when_up_to_date(home):
    """`sharpseek directions fit` and the pipeline's directions step are one road: the CLI's
    fit is in the ledger, an identical refit is skipped, and the pipeline step with the same
    recipe finds it up to date (one stored set, one version)."""
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.pipeline import ledger as pipeline_ledger
    from sharpseek.pipeline import stages as pipeline
    from sharpseek.science.directions import DirectionSet

    settings = Settings(home=home, preset="tiny")
    store = open_store(settings)
    version = GeneratorModel.from_settings(settings).version
    before = DirectionSet.load(store, version).version
    entry = pipeline_ledger.Ledger(store).get("directions")
    assert entry is not None and entry["inputs"]["samples"] == 240
    result = run(home, "directions", "fit", "--n", "240", "--calibration-n-z", "6",
                 "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    again = pipeline.directions_stage(settings, samples=240, calibration_n_z=6, progress=False)
    assert again.skipped and DirectionSet.load(store, version).version == before


def test_show_lists_parameters_with_accuracy_threshold_and_n(home):
    result = run(home, "directions", "show")
    assert result.exit_code == 0, result.output
    assert "tuf" in result.output and "median" in result.output and "240" in result.output


def test_shift_prints_before_and_after_and_writes_a_png(home, tmp_path):
    out = tmp_path / "shift.png"
    result = run(home, "shift", "--seed", "4", "--shift", "tuf=1.5", "--hold", "sigma",
                 "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tuf eps = +1.5 holding sigma" in result.output and "sigma (held)" in result.output
    assert "is deprecated" not in result.output
    assert out.stat().st_size > 1000


def test_along_is_a_deprecated_alias_of_shift_that_still_works(home, tmp_path):
    new = run(home, "shift", "--seed", "4", "--shift", "tuf=1.5", "--out", str(tmp_path / "a.png"))
    old = run(home, "shift", "--seed", "4", "--along", "tuf=1.5", "--out", str(tmp_path / "b.png"))
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert "warning: --along is deprecated" in old.stderr and "use --shift" in old.stderr
    assert "is deprecated" not in old.stdout
    assert old.stdout.replace("b.png", "a.png") == new.stdout  # the same shift, the same table


def test_shift_to_a_physical_target_reports_requested_and_achieved(home, tmp_path):
    result = run(home, "shift", "--seed", "4", "--target", "tuf=x1.001", "--hold", "grad",
                 "--out", str(tmp_path / "t.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "requested against achieved" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shift", "flux=1"], "no direction for 'flux'; known: "),
        (["--shift", "tuf=1", "--hold", "tuf"], "cannot hold ['tuf']"),
        (["--shift", "tuf"], "--shift 'tuf': write PARAMETER=EPS"),
        (["--along", "tuf"], "--along 'tuf': write PARAMETER=EPS"),
        (["--shift", "tuf=1", "--target", "tuf=x2"], "give either --shift"),
        (["--target", "tuf=bigger"], "not understood"),
        ([], "give either --shift"),
    ],
)
def test_shift_bad_input_exits_2_with_one_line(home, args, message):
    result = run(home, "shift", "--seed", "1", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_directions_of_another_gan_version_are_refused(home, tmp_path):
    """A home whose only directions belong to another GAN: no silent reuse."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(home, other)
    folder = next((other / "directions").iterdir())
    folder.rename(folder.with_name("tiny-seed0-e0099-00000000"))
    result = run(other, "shift", "--seed", "1", "--shift", "tuf=1")
    assert result.exit_code == 2
    assert "stored only for other GAN versions: tiny-seed0-e0099-00000000" in result.output
    # a file that claims another version than its folder is refused too
    path = other / "directions" / "tiny-seed0-e0099-00000000" / "directions.json"
    current = folder.name
    data = json.loads(path.read_text())
    (other / "directions" / current).mkdir()
    (other / "directions" / current / "directions.json").write_text(json.dumps(data | {
        "gan_version": "tiny-seed0-e0099-00000000"}))  # fmt: skip
    result = run(other, "directions", "show")
    assert result.exit_code == 2 and "fitted for GAN version" in result.output


def test_generate_exports_fits_and_csv(home, tmp_path):
    from astropy.io import fits

    out = tmp_path / "cat.fits"
    result = run(home, "generate", "--count", "3", "--where", "tuf>p50", "--lat", "-12",
                 "--lon", "5", "--pixel-mm", "0.5", "--no-progress",
                 "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    with fits.open(out) as hdul:
        assert len(hdul) == 4 and hdul[1].header["CRVAL2"] == -12.0
        assert hdul[1].header["PIXMM"] == 0.5 and "Z099" in hdul[1].header
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "tilt=5"], "range 'tilt=5' not understood"),
        (["--where", "flux>1"], "unknown parameter 'flux'"),
        (["--lat", "100"], "latitude 100.0 deg"),
        (["--lat", "1", "--lat", "2"], "--lat: give one value or 3"),
        (["--hemisphere", "east"], "choose north or south"),
        (["--lat", "0", "--anti-joy"], "need a hemisphere"),
    ],
)
def test_generate_bad_input_exits_2_with_one_line(home, tmp_path, args, message):
    result = run(home, "generate", "--count", "3", "--no-progress", "--out",
                 str(tmp_path / "c.fits"), *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_generate_balance_of_a_single_polarity_exits_2_with_one_line(home, tmp_path, monkeypatch):
    from sharpseek.models.gan import Generator

    # A generator that draws positive field only, distinct per z (the untrained tiny one
    # draws both signs).
    def positive(self, z):
        return 0.01 + 0.3 * torch.nn.functional.interpolate(z[:, :64].abs().view(-1, 1, 8, 8), 128)

    monkeypatch.setattr(Generator, "forward", positive)
    result = run(home, "generate", "--count", "3", "--no-progress", "--out",
                 str(tmp_path / "c.fits"), "--balance")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cannot balance an AR with a single polarity" in result.output
    assert "Traceback" not in result.output


def test_generate_that_cannot_be_met_says_so(home, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_DIRECTIONS__MAX_CANDIDATES", "300")
    # no image of a 128 px patch has its polarities 1,000 px apart
    result = run(home, "generate", "--count", "2", "--anti-joy", "--where", "psep>1000",
                 "--no-progress", "--out", str(tmp_path / "c.fits"))  # fmt: skip
    assert result.exit_code == 2 and "found only 0 of 2" in result.output


def test_invert_a_model_space_npy_writes_the_three_panels(home, tmp_path):
    from sharpseek.models.inference import GeneratorModel

    model = GeneratorModel.from_settings(Settings(home=home, preset="tiny"))
    path = tmp_path / "ar.npy"
    np.save(path, model.generate(model.latent(2))[0])
    out = tmp_path / "inv.png"
    result = run(home, "invert", str(path), "--starts", "2", "--steps", "30", "--no-progress",
                 "--out", str(out), "--save-z", str(tmp_path / "z.npy"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reconstruction RMS" in result.output and out.stat().st_size > 1000
    assert np.load(tmp_path / "z.npy").shape == (model.latent_dim,)


def test_invert_a_real_sharp_reports_its_mu(home, tmp_path, br_sample_paths):
    result = run(home, "invert", str(br_sample_paths[0]), "--starts", "1", "--steps", "3",
                 "--no-progress", "--out", str(tmp_path / "r.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "at mu = 0." in result.output
    # the real frame is quoted on its native grid; its reconstruction is a generated image
    text = " ".join(result.output.split())
    assert "the real patch: native CEA grid: psep_mm" in text
    assert "its reconstruction (generated): model space: TUF" in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.fits", None, "no such file"),
        ("a.txt", b"hello", "expected a .fits SHARP Br segment or a .npy"),
        ("b.npy", np.zeros((3, 3)), "model-space (128, 128) image"),
        ("c.fits", b"not fits at all", "cannot read a Br image"),
    ],
)
def test_invert_bad_files_exit_2(home, tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    result = run(home, "invert", str(path), "--steps", "1", "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_plot_directions_draws_figures_4_5_and_calibration(home, tmp_path):
    result = run(home, "plot", "directions", "--parameter", "tuf", "--hold", "grad",
                 "--out-dir", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == [
        "directions-2d-tuf.png",
        "directions-calibration.png",
        "directions-strips-tuf.png",
    ]


def test_evaluate_directions_reports_both_seed_blocks(home, tmp_path):
    from ingest_fixtures import synthetic_dataset

    synthetic_dataset(Settings(home=home, preset="tiny"), regions=4, frames=2, seed=0)
    out = tmp_path / "directions.json"
    result = run(home, "evaluate", "directions", "--seeds", "12", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["blocks"]) == ["0", "100000"] and report["eps"] == 1.5
    assert report["blocks"]["100000"]["seeds"] == [100000, 100011]
    assert set(report["iqr"]) == {"tuf", "r", "psep"} and report["iqr"]["tuf"] > 0
    # the table says how many start images were bipolar with R > 0, as the report counts them
    for block in ("0", "100000"):
        selected = report["blocks"][block]["selected"]
        assert 0 <= selected <= 12
    selected = report["blocks"]["0"]["selected"]
    assert f"seeds 0..11: {selected} bipolar with R > 0" in " ".join(result.output.split())


def _strengths(home):
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.science.directions import DirectionSet, configured_strength

    settings = Settings(home=home, preset="tiny")
    ds = DirectionSet.load(open_store(settings), GeneratorModel.from_settings(settings).version)
    return {p: configured_strength(ds, p, settings.directions) for p in ds.boundaries}


def test_show_marks_weak_directions_with_accuracy_and_calibration(home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = run(home, "directions", "show")
    assert result.exit_code == 0, result.output
    assert "+1.5: rises" in result.output and "strength" in result.output
    assert "weak: +1.5 alone raises the parameter in < 90%" in result.output
    for name, strength in _strengths(home).items():
        row = next(line for line in result.output.splitlines() if line.startswith(f"│ {name} "))
        assert ("weak" in row) == strength.weak and f"{strength.accuracy:.3f}" in row


def test_shift_along_a_weak_direction_says_so(home, tmp_path):
    strengths = _strengths(home)
    name = next((p for p, s in strengths.items() if s.weak), "tuf")
    out = str(tmp_path / "s.png")
    result = run(home, "shift", "--seed", "4", "--shift", f"{name}=1.5", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"{name}: {strengths[name].summary()}" in " ".join(result.output.split())
    assert (f"the {name} direction is weak" in result.output) == strengths[name].weak


def test_fit_by_ridge_with_eps_in_sigma_is_stored_and_refits(home, tmp_path, monkeypatch):
    """The method is part of the recipe: changing it in the settings refits, and the stored
    set says how it was fitted."""
    import shutil

    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel
    from sharpseek.science.directions import DirectionMethod, DirectionSet

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("SHARPSEEK_DIRECTIONS__FIT", "ridge")
    monkeypatch.setenv("SHARPSEEK_DIRECTIONS__STEP", "sigma")
    result = run(copy, "directions", "fit", "--n", "240", "--calibration-n-z", "6",
                 "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output and "ridge on log parameter" in result.output
    settings = Settings(home=copy, preset="tiny")
    ds = DirectionSet.load(open_store(settings), GeneratorModel.from_settings(settings).version)
    expected = DirectionMethod(fit="ridge", step="sigma", hold="measured")  # the tiny hold
    assert ds.method == expected and ds.format == 2


def test_flare_direction_without_an_index_exits_2_naming_it(home):
    result = run(home, "directions", "flare", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "index" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_shifting_along_an_unfitted_flare_direction_names_the_known_ones(home, tmp_path):
    result = run(
        home, "shift", "--seed", "1", "--shift", "flare=1.5", "--out", str(tmp_path / "a.png")
    )
    assert result.exit_code == 2, result.output
    assert "no direction for 'flare'" in result.output and "tuf" in result.output
