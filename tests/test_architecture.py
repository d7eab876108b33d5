"""How the modules may import each other (pyproject.toml's [tool.importlinter] contracts):
the sub-packages are layers (cli > pipeline | ui > search > serving | training > science >
models > data > physics > config), and models and serving rebuild models from checkpoints
without the training code."""

import subprocess
import sys
from pathlib import Path

pytest_plugins = ["model_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-logo", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_models_load_for_inference_without_the_training_code(untrained_home):
    """What a TorchServe worker does: both models from their checkpoints, in a fresh
    interpreter that never imports sharpseek.training."""
    code = """
import sys

from sharpseek.config import Settings
from sharpseek.models.inference import EncoderModel, GeneratorModel

generator = GeneratorModel.from_settings(Settings())
EncoderModel.from_settings(Settings()).embed(generator.generate(generator.latent([0, 1])))
print(sorted(m for m in sys.modules if m.startswith("sharpseek.training")))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_command_line_starts_without_the_heavy_library():
    """Why the CLI imports the library inside its commands (docs/architecture.md): the
    command tree alone must not load torch, pandas, astropy, qdrant, matplotlib or scipy, so
    `sharpseek --help` and a mistyped command answer in under a second (measured 0.8 s,
    against 12 s with every library module the commands use imported at their top)."""
    code = """
import sys

import sharpseek.cli.app

heavy = ("torch", "pandas", "astropy", "qdrant_client", "matplotlib", "scipy", "prefect")
print(sorted(m for m in heavy if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
