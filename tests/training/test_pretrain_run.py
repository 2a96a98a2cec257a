"""The whole pretraining pipeline on a tiny config (the stdlib ``email`` package, a 30k-param model).

Runs like a user: the real ``repocomplete pretrain`` command in a subprocess, then checks that
an interrupted run resumes to exactly the losses and weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])

TINY = """
run_dir = "{run_dir}"
[corpus]
stdlib_root = "{stdlib}"
site_packages = "/nonexistent"
racket_root = "/nonexistent"
eval_heldout = ["mime"]
max_bytes_stdlib_tests = 0
test_percent = 20.0
[tokenizer]
vocab_size = 400
train_bytes = 200000
[data]
block_size = 64
prefix_tokens = 30
suffix_tokens = 10
context_tokens = 15
[model]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 2
max_position_embeddings = 128
[train]
micro_batch = 4
max_steps = {max_steps}
warmup_steps = 2
eval_every = 4
eval_batches = 2
compile = false
precision = "fp32"
checkpoint_every = 3
ema_decay = 0.8
[export]
out_dir = "{export}"
context_copy = 0.75
"""


def write_config(tmp: Path, name: str, max_steps: int = 12) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(TINY.format(run_dir=tmp / name, stdlib=STDLIB / "email", max_steps=max_steps,
                                export=tmp / f"{name}-export"))
    return path


def pretrain(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "repocomplete", "pretrain", *args], capture_output=True,
                            text=True, timeout=240, env=env)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


pytestmark = pytest.mark.slow   # ~30-60 s on 2 shared cores: a real subprocess pipeline


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run with export: the reference for the other tests."""
    tmp = tmp_path_factory.mktemp("pretrain")
    config = write_config(tmp, "full")
    result = pretrain("--config", str(config), "--export", "--json")
    return tmp, json.loads(result.stdout)


def test_one_command_builds_corpus_tokenizer_data_and_trains(full_run):
    tmp, summary = full_run
    run = tmp / "full"
    manifest = json.loads((run / "corpus/manifest.json").read_text())
    assert manifest["sources"]["stdlib"]["files"] > 10
    assert manifest["excluded"]["eval_heldout_files"] > 0          # email/mime/ held out
    data = json.loads((run / "data/data.json").read_text())
    assert data["train"]["repo_fim_samples"] > 0 and data["train"]["fim_samples"] > 0
    assert summary["train"]["step"] == 12
    assert summary["train"]["best_val_loss"] < summary["train"]["history"][0]["val_loss"] + 1e-9


def test_export_loads_with_auto_classes_and_keeps_special_tokens_whole(full_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp, summary = full_run
    out = Path(summary["export"]["out_dir"])
    assert (out / "MODEL_CARD.md").exists() and list(out.glob("*.safetensors"))
    assert all(f.stat().st_size <= 16 * 1024 * 1024 for f in out.glob("*.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tokenizer.eos_token == "<|rc:end|>" and tokenizer.pad_token == "<|rc:pad|>"
    from repocomplete.fim import get_template

    prompt = get_template("repocomplete").render("def f(x):\n    return ", "\n", filepath="a.py", repo_name="r")
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert ids.shape[1] < len(prompt)                                     # special tokens are single ids
    assert model.config.eos_token_id == tokenizer.eos_token_id
    # Serving budgets prompts from these: the trained context (block_size 64), not the
    # position table (128), whose far half the model never saw.
    assert model.config.max_position_embeddings == 64 and tokenizer.model_max_length == 64
    assert model.config.repocomplete_fim_order == "psm"                  # [export] fim_order, read by the engine
    assert model.config.repocomplete_context_copy == 0.75                # [export] context_copy, likewise
    card = (out / "MODEL_CARD.md").read_text()
    assert f"{summary['export']['parameters']:,} parameters" in card and "not measured yet" in card
    assert "Context copy (a cache model" in card and "weight 0.75" in card


def _weights(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows]


def test_interrupted_run_resumes_exactly(full_run, tmp_path):
    """SIGTERM mid-run, then --resume: same per-step losses and final weights as the full run."""
    import torch

    ref_tmp, _ = full_run
    config = write_config(tmp_path, "full")      # same name -> same config apart from paths
    run = tmp_path / "full"
    pretrain("--config", str(config), "--only", "data")
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "pretrain", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = run / "train_log.jsonl"
        if log.exists() and log.read_text().strip():
            break
        time.sleep(0.01)
    # A tiny step takes ~10 ms on an idle machine: freeze the run before asking it to stop, so
    # it cannot finish all its steps between the check above and the signal (SIGTERM waits,
    # pending, until SIGCONT; the run then stops at the end of the step it is in).
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    stopped_at = torch.load(run / "checkpoints/last.pt", weights_only=True)["state"]["step"]
    assert 0 < stopped_at < 12, err[-2000:]
    again = pretrain("--config", str(config), check=False)
    assert again.returncode == 2 and "--resume" in again.stderr    # never silently restarts
    pretrain("--config", str(config), "--resume")
    assert dict(_losses(run)) == dict(_losses(ref_tmp / "full"))
    resumed, reference = _weights(run / "checkpoints/last.pt"), _weights(ref_tmp / "full/checkpoints/last.pt")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_resume_after_the_data_changed_continues_the_weights_on_the_new_samples(full_run, tmp_path):
    """A new [data] (or data format) rebuilds the samples; --resume keeps weights, optimizer and
    step and starts the new samples from their beginning. The model itself may not change."""
    import shutil

    import torch

    ref_tmp, _ = full_run
    run = tmp_path / "full"
    shutil.copytree(ref_tmp / "full", run)
    text = (ref_tmp / "full.toml").read_text().replace(str(ref_tmp), str(tmp_path))
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace("context_tokens = 15", "context_tokens = 15\nspm_share = 0.9")
                       .replace("max_steps = 12", "max_steps = 15"))
    result = pretrain("--config", str(changed), "--resume")
    assert "the data was rebuilt since that checkpoint" in result.stderr + result.stdout
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["state"]["step"] == 15 and ckpt["config"]["data"]["spm_share"] == 0.9
    assert ckpt["data_key"] == json.loads((run / "data/stage.json").read_text())["key"]
    steps = [step for step, _ in _losses(run)]
    assert steps[-3:] == [13, 14, 15] and steps.count(13) == 1
    # a different model is a different run, even with --resume
    bigger = tmp_path / "bigger.toml"
    bigger.write_text(changed.read_text().replace("hidden_size = 32", "hidden_size = 48"))
    refused = pretrain("--config", str(bigger), "--resume", check=False)
    assert refused.returncode == 2 and "[model] differs" in refused.stderr


def test_measure_records_latency_and_heldout_exact_match_for_the_card(full_run):
    tmp, summary = full_run
    out = tmp / "measurements.json"
    result = subprocess.run([sys.executable, "-m", "training.pretrain.measure", "--model", summary["export"]["out_dir"],
                             "--run-dir", str(tmp / "full"), "--holes", "3", "--measurements", str(out)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(out.read_text())
    assert {"latency_p50_ms", "holes_em_context", "holes_em_no_context"} <= set(measured)
    assert measured["holes_em_context"]["note"] == "checkpoint step 12; context copy 0.75"  # the export declares 0.75
    assert measured["latency_p50_ms"]["command"].startswith("python -m training.pretrain.measure --model ")
    printed = json.loads(result.stdout)
    assert 0.0 <= printed["holes_em"]["with_context"] <= 1.0 and printed["latency"]["runs"] >= 1
