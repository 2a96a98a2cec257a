"""GGUF models: the FIM template from the file's own tokenizer, the one-time transformers folder,
and completions through `--model FILE.gguf` / `--model NAME` (tiny Qwen2 models written in the test)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repocomplete.backends.gguf import PREPARED_JSON, gguf_metadata, gguf_template_name, read_prepared
from repocomplete.errors import ConfigError, ModelNotFoundError
from repocomplete.model_resolution import resolve_model
from tests.repocomplete.tiny_gguf import catalog_entry, write_tiny_qwen_gguf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_qwen_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen.gguf")


@pytest.mark.parametrize(("family", "filename"), [
    ("qwen", "model.gguf"),
    # the name says Qwen, the tokenizer says StarCoder2: the tokenizer decides
    ("starcoder", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("deepseek", "starcoder.gguf"),
])
def test_the_fim_template_comes_from_the_gguf_tokenizer_not_the_name(tmp_path, family, filename):
    path = write_tiny_qwen_gguf(tmp_path / filename, template=family, vocab_size=300)
    assert gguf_template_name(path) == family
    meta = gguf_metadata(path)
    assert meta["architecture"] == "qwen2" and meta["name"] == "Tiny Qwen2 test model"


def test_a_gguf_whose_sentinels_are_plain_tokens_has_no_template(tmp_path):
    path = write_tiny_qwen_gguf(tmp_path / "qwen2.5-coder.gguf", vocab_size=300, special_type=1)
    assert gguf_template_name(path) is None


def test_a_file_that_is_not_gguf_is_a_one_line_error(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(bogus), cache=tmp_path / "cache")
    assert "not a readable GGUF file" in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "cache" / "prepared").glob("*"))


def test_prepared_once_with_its_source_hash_and_the_same_weights(tiny_gguf, tmp_path):
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    cache = tmp_path / "cache"
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    killed = cache / "prepared" / f".{digest[:16]}-k1ll3d"  # what a preparation killed mid-way leaves
    (killed / "half").mkdir(parents=True)
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    resolved = resolve_model(str(tiny_gguf), cache=cache)
    assert not killed.exists()
    assert resolved.path == cache / "prepared" / digest[:16] and resolved.sha256 == digest
    assert resolved.template == "qwen" and resolved.source == tiny_gguf.resolve()
    record = read_prepared(resolved.path)
    assert record["source_sha256"] == digest and record["source_file"] == "tiny-qwen.gguf"
    config = json.loads((resolved.path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "qwen2"
    weights = load_file(resolved.path / "model.safetensors")
    tensors = {t.name: t for t in GGUFReader(str(tiny_gguf)).tensors}
    assert (weights["model.embed_tokens.weight"] == tensors["token_embd.weight"].data).all()
    assert (weights["model.layers.1.self_attn.k_proj.bias"] == tensors["blk.1.attn_k.bias"].data).all()
    assert not [p for p in resolved.path.parent.iterdir() if p.name.startswith(".")]  # no staging left

    stamp = (resolved.path / PREPARED_JSON).stat().st_mtime_ns
    again = resolve_model(str(tiny_gguf), cache=cache)
    assert again.path == resolved.path and (again.path / PREPARED_JSON).stat().st_mtime_ns == stamp


def test_an_architecture_transformers_cannot_load_leaves_nothing_behind(tmp_path):
    path = write_tiny_qwen_gguf(tmp_path / "odd.gguf", vocab_size=300, architecture="rwkv6")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(path), cache=tmp_path / "cache")
    assert "rwkv6" in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "cache" / "prepared").iterdir())


def _complete(env: dict, model: str, source: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "repocomplete", "complete", str(source), "--line", "2", "--col", "12",
                           "--model", model, "--max-tokens", "4", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_complete_with_a_gguf_file_and_with_a_catalogue_name(tiny_gguf, tmp_path):
    source = tmp_path / "add.py"
    source.write_text("def add(a, b):\n    return \n")
    (tmp_path / "catalog.json").write_text(json.dumps([catalog_entry("tiny-qwen", tiny_gguf.read_bytes())]))
    env = {**os.environ, "REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "REPOCOMPLETE_CATALOG": str(tmp_path / "catalog.json")}

    by_file = _complete(env, str(tiny_gguf), source)
    assert by_file["template"] == "qwen" and by_file["model"] == "tiny-qwen"
    assert by_file["usage"]["completion_tokens"] >= 1 and "<|fim" not in by_file["text"]

    pulled = subprocess.run([sys.executable, "-m", "repocomplete", "models", "pull", "tiny-qwen", "--from", str(tiny_gguf)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    by_name = _complete(env, "tiny-qwen", source)
    assert by_name["model"] == "tiny-qwen" and by_name["model_label"].startswith("tiny-qwen (0.1M, GGUF F32)")
    assert by_name["text"] == by_file["text"]  # the same file, the same prepared folder, greedy
    assert len(list((tmp_path / "cache" / "prepared").iterdir())) == 1


def test_the_catalogue_entry_decides_the_fim_order(tiny_gguf, tmp_path, monkeypatch):
    """A catalogue model is served in the layout measured best for it (both Qwen2.5-Coder models: SPM),
    whether named or given as its file (found by hash); configuring fim_order still wins."""
    from repocomplete.catalog import catalog
    from repocomplete.config import load_engine_config
    from repocomplete.engine import Engine
    from repocomplete.model_store import pull

    assert catalog()["qwen2.5-coder-0.5b"].fim_order == "spm"
    assert catalog()["qwen2.5-coder-1.5b"].fim_order == "spm"
    (tmp_path / "catalog.json").write_text(json.dumps([{**catalog_entry("tiny-spm", tiny_gguf.read_bytes()),
                                                        "fim_order": "spm"}]))
    monkeypatch.setenv("REPOCOMPLETE_CATALOG", str(tmp_path / "catalog.json"))
    cache = tmp_path / "cache"
    pull(catalog()["tiny-spm"], cache=cache, from_file=tiny_gguf)
    assert resolve_model("tiny-spm", cache=cache).fim_order == "spm"
    assert resolve_model(str(tiny_gguf), cache=cache).fim_order == "spm"  # the same bytes by another name
    for spec in ("tiny-spm", str(tiny_gguf)):
        engine = Engine.from_config(load_engine_config(model=spec, cache_dir=str(cache)))
        assert engine.fim_order == "spm" and engine.info()["fim_order"] == "spm"
    configured = Engine.from_config(load_engine_config(model="tiny-spm", cache_dir=str(cache), fim_order="psm"))
    assert configured.fim_order == "psm"
    other = write_tiny_qwen_gguf(tmp_path / "other.gguf", vocab_size=300, seed=9)
    assert resolve_model(str(other), cache=cache).fim_order is None  # not a catalogue file: the model's own, else PSM
    (tmp_path / "catalog.json").write_text(json.dumps([{**catalog_entry("tiny-odd", b"x"), "fim_order": "sideways"}]))
    with pytest.raises(ConfigError, match="fim_order"):
        catalog()


def test_the_catalogue_entry_decides_the_prompt_layout(tiny_gguf, tmp_path, monkeypatch):
    """A catalogue model's measured prompt shares reach the engine, named or given as its file; the
    config still wins, and a layout that leaves no sense is refused when the catalogue is read."""
    from repocomplete.catalog import catalog
    from repocomplete.config import load_engine_config
    from repocomplete.engine import Engine
    from repocomplete.model_store import pull

    layout = {"cpu_budget": 1280, "prefix_share": 0.6, "suffix_share": 0.2}
    (tmp_path / "catalog.json").write_text(json.dumps([{**catalog_entry("tiny-wide", tiny_gguf.read_bytes()),
                                                        "prompt_layout": layout}]))
    monkeypatch.setenv("REPOCOMPLETE_CATALOG", str(tmp_path / "catalog.json"))
    cache = tmp_path / "cache"
    pull(catalog()["tiny-wide"], cache=cache, from_file=tiny_gguf)
    assert resolve_model("tiny-wide", cache=cache).prompt_layout.cpu_budget == 1280
    for spec in ("tiny-wide", str(tiny_gguf)):
        engine = Engine.from_config(load_engine_config(model=spec, cache_dir=str(cache)))
        assert (engine.prefix_share, engine.suffix_share) == (0.6, 0.2)
        assert engine.info()["prompt"]["prefix_share"] == 0.6
    configured = Engine.from_config(load_engine_config(model="tiny-wide", cache_dir=str(cache), prefix_share=0.7))
    assert (configured.prefix_share, configured.suffix_share) == (0.7, 0.2)
    plain = Engine.from_config(load_engine_config(model=str(write_tiny_qwen_gguf(tmp_path / "o.gguf", vocab_size=300,
                                                                                  seed=9)), cache_dir=str(cache)))
    assert (plain.prefix_share, plain.suffix_share) == (0.5, 0.25)  # not a catalogue file: the engine's own
    for bad in ({"prefix_share": 0.9, "suffix_share": 0.3}, {"cpu_budget": 0}):
        (tmp_path / "catalog.json").write_text(json.dumps([{**catalog_entry("tiny-odd", b"x"), "prompt_layout": bad}]))
        with pytest.raises(ConfigError, match="prompt_layout"):
            catalog()
