"""The base-model identity an adapter records (``repocomplete-adapter.json``) is checked when it is served."""

from __future__ import annotations

import json

import pytest

from repocomplete.errors import AdapterError
from repocomplete.model_resolution import weights_sha256


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter of the tiny model, saved by peft (no metadata of ours yet)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("adapter") / "lora"
    model.save_pretrained(out)
    return out


def _record(adapter, **base) -> None:
    (adapter / "repocomplete-adapter.json").write_text(json.dumps({"base_model": {"spec": "qwen2.5-coder-0.5b", **base}}))


def _backend(model_dir, **kwargs):
    from repocomplete.backends.transformers import TransformersBackend

    return TransformersBackend(model_dir, device="cpu", threads=1, **kwargs)


def test_weights_sha256_changes_with_any_weight_byte(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert weights_sha256(copy) == weights_sha256(tiny_model_dir)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert weights_sha256(copy) != weights_sha256(tiny_model_dir)


def test_the_gguf_source_hash_decides_when_both_sides_know_one(tiny_model_dir, lora_dir):
    backend = _backend(tiny_model_dir, source_sha256="b" * 64)
    _record(lora_dir, source_sha256="a" * 64, hash=weights_sha256(tiny_model_dir))
    with pytest.raises(AdapterError, match=r"trained on base model 'qwen2.5-coder-0.5b' \(sha256 aaaaaaaaaaaa\).*"
                                           r"serve it with --model qwen2.5-coder-0.5b"):
        backend.load_adapter("mine", str(lora_dir))
    _record(lora_dir, source_sha256="b" * 64, hash="0" * 64)
    backend.load_adapter("mine", str(lora_dir))          # same GGUF source: the folder hash is not needed
    assert backend.adapters() == ["mine"]


def test_the_folder_hash_decides_otherwise_and_old_adapters_still_load(tiny_model_dir, lora_dir):
    backend = _backend(tiny_model_dir)
    _record(lora_dir, source_sha256="b" * 64, hash="0" * 64)
    with pytest.raises(AdapterError, match="sha256 000000000000"):
        backend.load_adapter("mine", str(lora_dir))
    _record(lora_dir, hash=weights_sha256(tiny_model_dir))
    backend.load_adapter("mine", str(lora_dir))
    (lora_dir / "repocomplete-adapter.json").unlink()     # a plain peft adapter: shapes and name only
    backend.load_adapter("other", str(lora_dir))
    assert backend.adapters() == ["mine", "other"]
