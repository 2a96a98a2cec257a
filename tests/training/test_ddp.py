"""Data-parallel fine-tuning: two CPU processes (gloo) stay in step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_parameters(tiny_model_dir, json_repo, tmp_path):
    out, digests = tmp_path / "ddp-adapter", tmp_path / "digests"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "training.finetune", str(json_repo),
               "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "6", "--save-every", "3",
               "--eval-every", "0", "--max-seq-len", "256", "--batch-size", "2", "--eval-samples", "4",
               "--em-samples", "1", "--samples-per-file", "4", "--no-context", "--json",
               "--param-digest-dir", str(digests)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = sorted(digests.iterdir())
    assert [p.name for p in ranks] == ["rank-0.txt", "rank-1.txt"]
    assert ranks[0].read_text() == ranks[1].read_text()        # every rank holds the same model
    meta = json.loads((out / "repocomplete-adapter.json").read_text())
    assert meta["world_size"] == 2 and meta["metrics"]["steps"] == 6
    assert result.stdout.count('"out_dir"') == 1                # only rank 0 reports
    from safetensors.torch import load_file

    weights = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())   # it did train
