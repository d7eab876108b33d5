"""The `sharpseek` command, end to end on tiny data."""

import numpy as np
import pytest
from typer.testing import CliRunner

from sharpseek.cli.app import app

runner = CliRunner()


def _unwrapped(text: str) -> str:
    """Rich wraps long messages to the terminal width; compare with the wrapping undone."""
    return " ".join(text.split())


COMMANDS = [
    [],
    ["ingest"],
    ["ingest", "synthetic"],
    ["plot"],
    ["plot", "dataset"],
    ["measure"],
    ["demo"],
    ["config"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPSEEK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_ingest_then_plot_dataset(home, monkeypatch, samples_dir):
    monkeypatch.setenv("SHARPSEEK_SAMPLES_DIR", str(samples_dir))
    result = runner.invoke(
        app, ["ingest", "synthetic", "--regions", "6", "--frames", "3", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "18 frames of 6 regions" in result.output
    version_dir = home / "datasets" / "synthetic" / "seed3-r6-f3-c6h-s1"
    assert (version_dir / "manifest.parquet").is_file()

    result = runner.invoke(app, ["plot", "dataset", "--samples", "6"])
    assert result.exit_code == 0, result.output
    assert "KS" in result.output
    figures = sorted(p.name for p in (home / "figures").glob("*.png"))
    assert figures == sorted(
        f"synthetic-seed3-r6-f3-c6h-s1-{kind}.png"
        for kind in ("grid", "realism", "real-vs-dataset")
    )


def test_rerun_of_same_recipe_reuses_the_dataset(home):
    args = ["ingest", "synthetic", "--regions", "2", "--frames", "2"]
    assert runner.invoke(app, args).exit_code == 0
    manifest = home / "datasets" / "synthetic" / "seed0-r2-f2-c6h-s1" / "manifest.parquet"
    first = manifest.stat().st_mtime_ns
    assert runner.invoke(app, args).exit_code == 0
    assert manifest.stat().st_mtime_ns == first


def test_plot_without_dataset_says_how_to_make_one(home):
    result = runner.invoke(app, ["plot", "dataset"])
    assert result.exit_code == 2
    assert "sharpseek ingest synthetic" in _unwrapped(result.output)


def test_measure_real_fits_prints_the_library_values(br_sample_paths):
    from sharpseek.science.measure import measure_files

    expected = measure_files(br_sample_paths[:1])[0]
    result = runner.invoke(app, ["measure", str(br_sample_paths[0])], terminal_width=200)
    assert result.exit_code == 0, result.output
    for key in ("tuf", "psep", "flux_strong_mx", "psep_mm"):
        line = next(line for line in result.output.splitlines() if f" {key} " in line)
        assert f"{expected[key]:.4g}" in line


def test_measure_npy_of_wrong_shape_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((3, 64, 64), dtype=np.float32))
    result = runner.invoke(app, ["measure", str(path)])
    assert result.exit_code == 2
    text = _unwrapped(result.output)
    assert "expected a model-space array of shape (128, 128)" in text
    assert "got (3, 64, 64)" in text


def test_measure_unknown_suffix_is_refused(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"not really")
    result = runner.invoke(app, ["measure", str(path)])
    assert result.exit_code == 2
    assert "not a FITS or .npy file" in _unwrapped(result.output)


def test_invalid_option_value_is_a_usage_error():
    result = runner.invoke(app, ["ingest", "synthetic", "--regions", "0"])
    assert result.exit_code == 2
