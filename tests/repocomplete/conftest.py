"""Fixtures of the engine and backend tests.

``tiny_model_dir`` (the "repocomplete"-template tiny model) comes from the root conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_for(tmp_path_factory):
    """Factory: a tiny model whose tokenizer has ``template``'s special tokens (cached per session)."""
    from tests.tiny_model import build_tiny_model

    built: dict[str, Path] = {}

    def build(template: str) -> Path:
        if template not in built:
            built[template] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{template}"), template=template)
        return built[template]

    return build


def make_lora_adapter(base_dir: Path, out_dir: Path, *, seed: int, targets=("q_proj", "v_proj")) -> Path:
    """A random (non-zero) LoRA adapter for the model in ``base_dir``, saved with PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    # init_lora_weights=False: B is random too, so the adapter really changes the outputs
    config = LoraConfig(r=8, lora_alpha=64, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def lora_adapters(tiny_model_dir, tmp_path_factory):
    """Two different LoRA adapters for ``tiny_model_dir``: {"one": path, "two": path}."""
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_lora_adapter(tiny_model_dir, root / name, seed=seed) for name, seed in (("one", 1), ("two", 2))}


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    """A TransformersBackend on the tiny model (shared: tests must not load adapters into it)."""
    from repocomplete.backends.transformers import TransformersBackend

    return TransformersBackend(tiny_model_dir)
