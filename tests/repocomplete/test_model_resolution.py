"""Model resolution: the embedded default, local directories, the offline hub cache."""

from __future__ import annotations

import pytest

from repocomplete import model_resolution
from repocomplete.errors import ModelNotFoundError
from repocomplete.model_resolution import resolve_model


def test_local_directory(tiny_model_dir):
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.path == tiny_model_dir.resolve() and resolved.is_tiny and not resolved.is_default
    assert "tiny untrained" in resolved.label


def test_default_without_embedded_model_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(model_resolution, "DEFAULT_MODEL_DIR", tmp_path / "no-default-model")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("default")
    assert "\n" not in str(err.value) and "embedded default model is missing" in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing is built or written as a stand-in


def test_the_embedded_default_is_shipped():
    resolved = resolve_model(None)
    assert resolved.is_default and not resolved.is_tiny and model_resolution.has_weights(resolved.path)


def test_default_uses_the_embedded_model_when_built(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(model_resolution, "DEFAULT_MODEL_DIR", tiny_model_dir)
    resolved = resolve_model("default")
    assert resolved.path == tiny_model_dir and resolved.is_default and resolved.label == "embedded default model"


@pytest.mark.parametrize("spec", ["/nonexistent/model-dir", "./nope", "some-org/not-cached-model"])
def test_missing_models_are_one_line_errors(spec, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec)
    assert "\n" not in str(err.value) and spec in str(err.value)


def test_a_directory_without_weights_is_not_a_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        resolve_model(str(tmp_path))


def test_hub_id_from_the_local_cache(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    commit = "0" * 40
    snapshot = tmp_path / "hub" / "models--acme--tiny-coder" / "snapshots" / commit
    shutil.copytree(tiny_model_dir, snapshot)
    (tmp_path / "hub" / "models--acme--tiny-coder" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny-coder" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = resolve_model("acme/tiny-coder")
    assert resolved.path == snapshot and resolved.label == "acme/tiny-coder"
