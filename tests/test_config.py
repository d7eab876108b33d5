"""Settings: presets, environment, overrides."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from sharpseek.config import PRESETS, Settings, get_settings


def test_default_home_is_dot_sharpseek(monkeypatch):
    monkeypatch.delenv("SHARPSEEK_HOME", raising=False)
    assert Settings().home == Path(".sharpseek")


def test_home_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARPSEEK_HOME", str(tmp_path))
    assert get_settings().home == tmp_path
    assert get_settings().datasets_dir == tmp_path / "datasets"


def test_tiny_preset_sizes():
    s = Settings(preset="tiny")
    assert s.synthetic.regions == PRESETS["tiny"]["synthetic"]["regions"]
    assert s.synthetic.frames == 12


def test_paper_preset_uses_twelve_hour_cadence():
    assert Settings(preset="paper").synthetic.cadence_hours == 12.0


def test_nested_env_overrides_preset(monkeypatch):
    monkeypatch.setenv("SHARPSEEK_PRESET", "paper")
    monkeypatch.setenv("SHARPSEEK_SYNTHETIC__REGIONS", "7")
    s = Settings()
    assert s.synthetic.regions == 7
    assert s.synthetic.frames == PRESETS["paper"]["synthetic"]["frames"]


def test_keyword_override_beats_preset():
    assert Settings(preset="paper", physics_chunk_size=3).physics_chunk_size == 3


def test_unknown_preset_is_refused():
    with pytest.raises(ValidationError, match="unknown preset 'huge'"):
        Settings(preset="huge")


def test_unknown_field_is_refused():
    with pytest.raises(ValidationError, match="chunky"):
        Settings(chunky=1)


def test_torch_device_auto_is_cpu_without_cuda():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Settings(device="auto").torch_device().type == expected


def test_every_setting_is_documented():
    """docs/configuration.md lists every setting's environment variable (no drift)."""
    from pathlib import Path

    from pydantic import BaseModel

    from sharpseek.config import Settings

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()

    def names(model, env):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                yield from names(value, f"{env}{name.upper()}__")
            else:
                yield f"{env}{name.upper()}"

    missing = [n for n in names(Settings(), "SHARPSEEK_") if f"`{n}`" not in doc]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_sharpseek_config_masks_the_jsoc_email_and_hides_secrets(tmp_path):
    from typer.testing import CliRunner

    from sharpseek.cli.app import app

    env = {
        "SHARPSEEK_JSOC__EMAIL": "researcher@example.org",
        "SHARPSEEK_STORE__SECRET_KEY": "s3cr3t-value",
    }
    result = CliRunner().invoke(app, ["config", "--home", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "r***@example.org" in result.output
    assert "researcher@" not in result.output and "s3cr3t-value" not in result.output
