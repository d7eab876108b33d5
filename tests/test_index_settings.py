"""The index section of the settings feeds IndexConfig and open_index (issue 6)."""

from __future__ import annotations

import pytest

from sharpseek.config import Settings
from sharpseek.search.index import EdgeIndex, SearchFilter, index_config, open_index_from_settings


def test_index_settings_feed_the_index_config(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARPSEEK_INDEX__HNSW_EF", "128")
    monkeypatch.setenv("SHARPSEEK_INDEX__COLLECTION", "frames")
    settings = Settings(home=tmp_path)
    config = index_config(settings)
    assert (config.name, config.hnsw_ef, config.dim) == ("frames", 128, 100)
    assert config.exact_threshold == 1_000_000  # the default puts 1,000,000 points on HNSW
    assert settings.index_dir == tmp_path / "index"
    with open_index_from_settings(settings) as index:
        assert isinstance(index, EdgeIndex) and index.path == tmp_path / "index"


def test_api_key_comes_from_the_environment_and_never_shows(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARPSEEK_INDEX__API_KEY", "s3cret-key")
    settings = Settings(home=tmp_path)
    assert settings.index.api_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(settings) and "s3cret-key" not in str(settings.model_dump())


def test_server_backend_without_url_is_a_clear_error(tmp_path):
    settings = Settings(home=tmp_path, index={"backend": "server"})
    with pytest.raises(ValueError, match="needs the Qdrant URL"):
        open_index_from_settings(settings)


def test_exclude_regions_becomes_a_must_not_condition():
    must, must_not = SearchFilter(exclude_regions=["synthetic:3"]).conditions({"region": "keyword"})
    assert must == [] and must_not[0].key == "region" and must_not[0].value == ("synthetic:3",)
    with pytest.raises(ValueError, match="region keys"):
        SearchFilter(exclude_regions=[3])
