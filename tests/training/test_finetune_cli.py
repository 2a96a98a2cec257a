"""``repocomplete finetune`` as a user runs it: real subprocesses on a tiny model and a real repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repocomplete.backends.transformers import cpu_has_native_bf16
from tests.processes import timeout as scaled
from tests.training.conftest import read_json

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--max-seq-len", "256", "--batch-size", "2", "--eval-samples", "6", "--em-samples", "2",
         "--samples-per-file", "6", "--no-context"]


#: One torch thread per process: on a shared 2-core machine oversubscribed threads run ~10x slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def finetune(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repocomplete", "finetune", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_lora_run_writes_adapter_with_metadata_and_table(tiny_model_dir, json_repo, tmp_path):
    out = tmp_path / "adapters" / "jsonpkg"
    result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "6",
                      "--eval-every", "3", "--save-every", "3", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "held-out loss" in result.stdout and "next-line exact match" in result.stdout
    assert "finetune" in result.stderr and "tok/s" in result.stderr and "held-out" in result.stderr   # the bar
    assert {"adapter_config.json", "adapter_model.safetensors", "repocomplete-adapter.json", "metrics.json"} <= set(snapshot(out))
    meta = read_json(out / "repocomplete-adapter.json")
    assert meta["name"] == "jsonpkg" and meta["method"] == "lora" and meta["template"] == "repocomplete"
    assert len(meta["base_model"]["hash"]) == 64 and meta["base_model"]["model_type"] == "llama"
    assert set(meta["target_modules"]) >= {"q_proj", "v_proj"}
    manifest = meta["data_manifest"]
    assert manifest["repos"][0]["files"]["heldout"] == ["encoder.py"]      # the newest commit's file
    assert manifest["counts"]["train"]["total"] > 0 and manifest["counts"]["heldout"]["total"] > 0
    metrics = read_json(out / "metrics.json")
    assert metrics["tokens_per_s"] > 0 and metrics["tokens_per_cpu_s"] > 0
    # the cost users size machines by: a real process's RSS (python + torch alone is > 100 MB), no GPU figure on CPU
    assert 100 * 2**20 < metrics["peak_rss_bytes"] < 64 * 2**30 and "peak_gpu_memory_bytes" not in metrics
    for phase in ("before", "after"):
        assert metrics[phase]["heldout_loss"] > 0 and 0 <= metrics[phase]["heldout_next_line_em"] <= 1
    assert not out.with_name("jsonpkg.partial").exists()                    # the work dir is cleaned up
    # The adapter is served by name: `repocomplete complete --adapter NAME=DIR` loads it onto its base.
    completed = subprocess.run(
        [sys.executable, "-m", "repocomplete", "complete", str(json_repo / "encoder.py"), "--line", "40", "--col", "5",
         "--model", str(tiny_model_dir), "--adapter", f"jsonpkg={out}", "--max-tokens", "4", "--json"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["choices"]


def _bad_input_cases(tiny_model_dir: Path, tmp_path: Path, json_repo: Path):
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    (empty / "notes.bin").write_bytes(b"\0\1\2")
    huge = tmp_path / "huge-model"
    huge.mkdir()
    config = read_json(tiny_model_dir / "config.json")
    config.update(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                  num_key_value_heads=8)
    (huge / "config.json").write_text(__import__("json").dumps(config))
    (huge / "model.safetensors").write_bytes(b"")   # a model folder, whose config alone is too big here
    return {
        "no supported source files": [str(empty), "--base", str(tiny_model_dir)],
        "GiB": [str(json_repo), "--base", str(huge), "--method", "full"],
        "needs a CUDA GPU": [str(json_repo), "--base", str(tiny_model_dir), "--method", "qlora"],
        "--epochs must be a positive number": [str(json_repo), "--base", str(tiny_model_dir), "--epochs", "0"],
    } | ({} if cpu_has_native_bf16() else {
        "--precision bf16 is not supported natively": [str(json_repo), "--base", str(tiny_model_dir),
                                                        "--precision", "bf16"]})


def test_bad_input_is_one_line_and_writes_nothing(tiny_model_dir, json_repo, tmp_path):
    import torch

    cases = _bad_input_cases(tiny_model_dir, tmp_path, json_repo)
    if torch.cuda.is_available():
        cases = {k: v for k, v in cases.items() if "CUDA" not in k and "natively" not in k}
    for expected, args in cases.items():
        out = tmp_path / "out"
        before = snapshot(tmp_path)
        result = finetune(*args, "--out", str(out), timeout=120)
        assert result.returncode == 2, (expected, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        assert not out.exists() and snapshot(tmp_path) == before      # nothing half-written


def test_epochs_derive_the_step_count_from_the_training_set(tiny_model_dir, json_repo, tmp_path):
    out = tmp_path / "one-epoch"
    result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--epochs", "1",
                      "--eval-every", "0", "--save-every", "0", "--allow-no-improvement", "--json", *QUICK)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    train = report["counts"]["train"]["total"]
    steps = -(-train // 2)                                   # --batch-size 2 (QUICK): every sample once
    assert train > 2 and report["steps"] == steps
    assert f"1 epoch(s) over {train} training samples: {steps} steps" in result.stderr
    config = read_json(out / "repocomplete-adapter.json")["config"]
    assert config["epochs"] == 1 and config["max_steps"] == steps   # the card records the derived count
    # --epochs and --max-steps say the same thing two ways: argparse refuses both at once.
    both = finetune(str(json_repo), "--base", str(tiny_model_dir), "--epochs", "1", "--max-steps", "3", timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr and "Traceback" not in both.stderr


def test_existing_out_is_kept_unless_forced_then_full_finetune(tiny_model_dir, json_repo, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), *QUICK)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert snapshot(out) == ["precious.txt"]
    # --force replaces it, here with a full fine-tune: the whole model and its tokenizer.
    result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--force", "--method", "full",
                      "--max-steps", "2", "--eval-every", "0", "--save-every", "0", "--json", *QUICK)
    assert result.returncode == 0, result.stderr
    assert {"model.safetensors", "config.json", "tokenizer.json", "repocomplete-adapter.json"} <= set(snapshot(out))
    assert "precious.txt" not in snapshot(out) and read_json(out / "repocomplete-adapter.json")["method"] == "full"


def _wait_for_checkpoint(proc: subprocess.Popen, work: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if list(work.glob("checkpoints/step-*/state.json")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before its first checkpoint: {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tiny_model_dir, json_repo, tmp_path):
    args = [str(json_repo), "--base", str(tiny_model_dir), "--max-steps", "24", "--save-every", "4",
            "--eval-every", "12", "--seed", "3", "--json", *QUICK]
    reference = finetune(*args, "--out", str(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "finetune", *args, "--out", str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(proc, out.with_name("interrupted.partial"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists(), "the run finished before it could be interrupted"
    resumed = finetune(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step" in resumed.stderr

    ref, res = read_json(tmp_path / "reference" / "metrics.json"), read_json(out / "metrics.json")
    assert res["steps"] == ref["steps"] == 24
    assert res["final_train_loss"] == pytest.approx(ref["final_train_loss"], abs=1e-4)
    assert [h["loss"] for h in res["history"]] == pytest.approx([h["loss"] for h in ref["history"]], abs=1e-4)
    assert res["after"]["heldout_loss"] == pytest.approx(ref["after"]["heldout_loss"], abs=1e-4)


@pytest.mark.gpu
def test_qlora_and_bf16_on_cuda(tiny_model_dir, json_repo, tmp_path):
    for method in ("qlora", "lora"):
        out = tmp_path / method
        result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--method", method,
                          "--precision", "bf16", "--max-steps", "4", "--eval-every", "2", "--save-every", "2", *QUICK)
        assert result.returncode == 0, result.stderr
        meta = read_json(out / "repocomplete-adapter.json")
        assert meta["method"] == method and meta["metrics"]["after"]["heldout_loss"] > 0
        assert meta["metrics"]["peak_gpu_memory_bytes"] > 0 and "GiB GPU" in (out / "README.md").read_text()
