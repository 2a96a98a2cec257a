"""Attacks and mistakes against ``repocomplete finetune``, through the real CLI (issue 21, items 5 and 15).

A crafted checkpoint file must be refused without running its code; out-of-range flags and
unwritable ``--out`` folders are one-line errors that write nothing; a run killed while it
publishes its adapter leaves no half-written folder, and the next run clears what it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.training.test_finetune_cli import ENV, QUICK, ROOT, _wait_for_checkpoint, finetune, snapshot


class _RunsCommand:
    """Unpickling this runs ``touch MARKER`` (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _interrupted_run(tiny_model_dir: Path, json_repo: Path, out: Path) -> Path:
    """A run SIGKILLed after its first checkpoint; returns that checkpoint's folder."""
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "finetune", str(json_repo), "--base",
                             str(tiny_model_dir), "--out", str(out), "--max-steps", "400", "--save-every", "2",
                             "--eval-every", "0", "--json", *QUICK], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(proc, out.with_name(out.name + ".partial"))
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    return sorted(out.with_name(out.name + ".partial").glob("checkpoints/step-*"))[-1]


def test_a_crafted_rng_checkpoint_is_refused_and_its_command_never_runs(tiny_model_dir, json_repo, tmp_path):
    import torch

    out = tmp_path / "adapter"
    checkpoint = _interrupted_run(tiny_model_dir, json_repo, out)
    marker = tmp_path / "pwned"
    torch.save({"python": _RunsCommand(marker), "torch": torch.get_rng_state(), "cuda": None},
               checkpoint / "rng-0.pt")
    # the file is a real attack: a trusting load runs the command
    probe = tmp_path / "probe-marker"
    trusting = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import torch
        torch.load({str(checkpoint / 'rng-0.pt')!r}, weights_only=False)
        """)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert marker.exists(), trusting.stderr
    os.rename(marker, probe)

    resumed = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "400",
                       "--save-every", "2", "--eval-every", "0", "--resume", "--json", *QUICK)
    assert resumed.returncode == 2, resumed.stderr
    lines = resumed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "rng-0.pt" in lines[0], resumed.stderr
    assert "refusing to load" in lines[0] and "Traceback" not in resumed.stderr
    assert not marker.exists()                     # the command did not run
    assert not out.exists()                        # and nothing was published


def test_checkpoints_hold_only_plain_data(tiny_model_dir, json_repo, tmp_path):
    """Every file of a real checkpoint loads weights-only (no pickled objects to trust)."""
    import torch

    checkpoint = _interrupted_run(tiny_model_dir, json_repo, tmp_path / "adapter")
    files = sorted(checkpoint.glob("*.pt"))
    assert {"rng-0.pt", "trainable.pt", "optimizer.pt", "scheduler.pt"} <= {f.name for f in files}
    for path in files:
        torch.load(path, weights_only=True)   # raises on anything but tensors and plain containers
    rng = torch.load(checkpoint / "rng-0.pt", weights_only=True)
    assert isinstance(rng["python"], list) and isinstance(rng["torch"], torch.Tensor)


def test_out_of_range_flags_and_unwritable_out_are_one_line_errors(tiny_model_dir, json_repo, tmp_path):
    cases = {
        ("--max-steps", "-5"): "--max-steps must be an integer >= 1, got -5",
        ("--batch-size", "0"): "--batch-size must be an integer >= 1, got 0",
        ("--grad-accum", "0"): "--grad-accum must be an integer >= 1",
        ("--lr", "-1"): "--lr must be a positive number",
        ("--lora-dropout", "1.5"): "--lora-dropout must be in [0, 1)",
        ("--samples-per-file", "0"): "--samples-per-file must be >= 1",
        ("--out", "/proc/x"): "--out /proc/x: cannot write in /proc",
    }
    out = tmp_path / "out"
    for args, expected in cases.items():
        before = snapshot(tmp_path)
        flags = list(args) if args[0] == "--out" else ["--out", str(out), *args]
        result = finetune(str(json_repo), "--base", str(tiny_model_dir), *QUICK, *flags, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], (args, result.stderr)
        assert not out.exists() and snapshot(tmp_path) == before, args
    assert not Path("/proc/x").exists() and not Path("/proc/x.partial").exists()


_KILL_WHILE_SAVING = """
import os, signal, sys
import peft

_save = peft.PeftModel.save_pretrained

def save_then_die(self, *args, **kwargs):
    _save(self, *args, **kwargs)          # the weights are written; the metadata is not yet
    os.kill(os.getpid(), signal.SIGKILL)

peft.PeftModel.save_pretrained = save_then_die
from repocomplete.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_while_publishing_leaves_no_half_adapter_and_the_next_run_cleans_up(tiny_model_dir, json_repo,
                                                                                   tmp_path):
    out = tmp_path / "adapters" / "jsonpkg"
    args = ["finetune", str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "4",
            "--save-every", "2", "--eval-every", "0", "--json", *QUICK]
    killed = subprocess.run([sys.executable, "-c", _KILL_WHILE_SAVING, *args], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists()                                      # never a half-written adapter
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".jsonpkg.staging-")]
    assert len(leftovers) == 1                                   # what the kill interrupted
    staged = out.parent / leftovers[0]
    assert "adapter_model.safetensors" in snapshot(staged) and "repocomplete-adapter.json" not in snapshot(staged)

    resumed = finetune(*args[1:], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "repocomplete-adapter.json" in snapshot(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["jsonpkg"]   # no staging, no work dir left
