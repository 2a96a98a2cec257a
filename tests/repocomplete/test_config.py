"""Configuration precedence: defaults < TOML < environment < overrides; unknown keys and bad types fail."""

from __future__ import annotations

from typing import Literal

import pytest

from repocomplete.config import EngineConfig, describe, load_config
from repocomplete.errors import ConfigError


@pytest.fixture
def toml_file(tmp_path):
    path = tmp_path / "repocomplete.toml"
    path.write_text(
        '[engine]\nmodel = "/models/a"\nbackend = "fake"\ncontext_tokens = 1000\nmax_retries = 5\n'
        'sources = ["bm25", "import"]\n[engine.adapters]\nmine = "/adapters/mine"\n'
    )
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in ("MODEL", "BACKEND", "CONTEXT_TOKENS", "KV_CACHE", "SOURCES", "ADAPTERS", "MAX_RETRIES"):
        monkeypatch.delenv(f"REPOCOMPLETE_{key}", raising=False)


def test_defaults_then_toml_then_env_then_overrides(toml_file, monkeypatch):
    assert load_config(EngineConfig, env_prefix=None) == EngineConfig()
    cfg = load_config(EngineConfig, toml_path=toml_file, section="engine")
    assert (cfg.model, cfg.backend, cfg.context_tokens, cfg.max_retries) == ("/models/a", "fake", 1000, 5)
    assert cfg.adapters == {"mine": "/adapters/mine"} and cfg.sources == ["bm25", "import"]

    monkeypatch.setenv("REPOCOMPLETE_CONTEXT_TOKENS", "700")
    monkeypatch.setenv("REPOCOMPLETE_KV_CACHE", "false")
    monkeypatch.setenv("REPOCOMPLETE_SOURCES", "bm25,jaccard")
    monkeypatch.setenv("REPOCOMPLETE_ADAPTERS", "a=/x,b=/y")
    cfg = load_config(EngineConfig, toml_path=toml_file, section="engine")
    assert cfg.context_tokens == 700 and cfg.kv_cache is False and cfg.model == "/models/a"
    assert cfg.sources == ["bm25", "jaccard"] and cfg.adapters == {"a": "/x", "b": "/y"}

    cfg = load_config(EngineConfig, toml_path=toml_file, section="engine", overrides={"context_tokens": 300, "model": None})
    assert cfg.context_tokens == 300 and cfg.model == "/models/a"  # None = flag not given


def test_unknown_key_names_valid_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('modle = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(EngineConfig, toml_path=path)
    assert "modle" in str(err.value) and "context_tokens" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="valid keys"):
        load_config(EngineConfig, overrides={"bogus": 1})


@pytest.mark.parametrize(
    ("source", "key", "value"),
    [("toml", "context_tokens", '"many"'), ("toml", "backend", '"vllm"'), ("toml", "kv_cache", "3"),
     ("env", "CONTEXT_TOKENS", "12.5"), ("env", "KV_CACHE", "maybe"), ("env", "BACKEND", "nope")],
)
def test_bad_types_are_config_errors(tmp_path, monkeypatch, source, key, value):
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = {value}\n" if source == "toml" else "")
    if source == "env":
        monkeypatch.setenv(f"REPOCOMPLETE_{key}", value)
    with pytest.raises(ConfigError) as err:
        load_config(EngineConfig, toml_path=path)
    assert key.lower() in str(err.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(EngineConfig, toml_path=bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(EngineConfig, toml_path=tmp_path / "missing.toml")


def test_every_field_has_help():
    rows = describe(EngineConfig)
    assert {r["name"] for r in rows} >= {"model", "backend", "adapters", "kv_cache", "openai_url"}
    assert all(r["help"] for r in rows)


def test_backend_choices_come_from_the_backend_registry(monkeypatch):
    from repocomplete import backends

    monkeypatch.setitem(backends._REGISTRY, "echo", backends.BackendEntry("echo", lambda config: None, local_model=False))
    assert "echo" in backends.backend_names()
    assert load_config(EngineConfig, env_prefix=None, overrides={"backend": "echo"}).backend == "echo"
    with pytest.raises(ConfigError, match="choose from: transformers, openai, fake, echo"):
        load_config(EngineConfig, env_prefix=None, overrides={"backend": "nope"})


@pytest.mark.parametrize(("spec", "parsed"), [
    ("mine=/adapters/x", ("mine", "/adapters/x")),
    ("/adapters/json-lora", ("json-lora", "/adapters/json-lora")),
    ("relative/dir", ("dir", "relative/dir")),
    ("name= path ", ("name", "path")),
])
def test_adapter_specs(spec, parsed):
    from repocomplete.config import parse_adapter

    assert parse_adapter(spec) == parsed


@pytest.mark.parametrize("spec", ["=path", "name=", "="])
def test_bad_adapter_specs_are_one_line_errors(spec):
    from repocomplete.config import parse_adapter, parse_adapters

    with pytest.raises(ConfigError, match="NAME=PATH or PATH"):
        parse_adapters(["ok=/x", spec])
    with pytest.raises(ConfigError):
        parse_adapter(spec)


def test_engine_config_from_file_env_and_overrides(tmp_path, monkeypatch):
    from repocomplete.config import load_engine_config

    path = tmp_path / "c.toml"
    path.write_text('[engine]\nmodel = "from-file"\ncontext_tokens = 100\n')
    monkeypatch.setenv("REPOCOMPLETE_CONTEXT_TOKENS", "200")
    config = load_engine_config(path, model=None, backend="fake")
    assert (config.model, config.context_tokens, config.backend) == ("from-file", 200, "fake")


def test_flags_are_generated_from_the_fields_and_override_only_when_given(tmp_path, monkeypatch):
    import argparse
    import dataclasses as dc

    from repocomplete.config import add_config_flags, flag_overrides, setting

    @dc.dataclass
    class Demo:
        port: int = setting(8765, "TCP port")
        hosts: list[str] = setting(help="names accepted", factory=list)
        quiet: bool = setting(False, "say less")
        level: Literal["a", "b"] = setting("a", "how much")

    flags = {"port": "--port", "hosts": "--host", "quiet": "--quiet", "level": "--level"}
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Demo, flags)
    text = parser.format_help()
    assert "TCP port (default: 8765)" in text and "names accepted (repeatable)" in text and "{a,b}" in text
    args = parser.parse_args(["--host", "x", "--host", "y", "--quiet"])
    assert flag_overrides(args, flags) == {"port": None, "hosts": ["x", "y"], "quiet": True, "level": None}
    path = tmp_path / "c.toml"
    path.write_text("[s]\nport = 9000\n")
    loaded = load_config(Demo, toml_path=path, section="s", env_prefix=None, overrides=flag_overrides(args, flags))
    assert (loaded.port, loaded.hosts, loaded.quiet, loaded.level) == (9000, ["x", "y"], True, "a")
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "many"])
