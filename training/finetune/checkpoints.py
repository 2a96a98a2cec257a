"""Checkpoints of a fine-tuning run: ``step-N/`` folders that appear atomically and load weights-only.

A folder holds the trainable weights, the optimizer and scheduler states, each rank's RNG
state, the weights early stopping keeps (``best.pt``) and the :class:`TrainState`
(``state.json``). Every ``.pt`` goes through :mod:`training.checkpoint`, so a crafted file is
refused rather than run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from training import checkpoint
from training.finetune.config import TrainState
from training.finetune.model import load_trainable_state, trainable_state


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    return sorted(p for p in root.glob("step-*") if (p / "state.json").exists())


def save_checkpoint(root: Path, model, optimizer, scheduler, state: TrainState, best: dict | None,
                    accelerator, *, keep: int) -> None:
    """All ranks write their RNG state; rank 0 the rest; the directory appears atomically."""
    import torch

    final = root / f"step-{state.step:07d}"
    staging = root / f".tmp-step-{state.step:07d}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(checkpoint.rng_state(), staging / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(trainable_state(accelerator.unwrap_model(model)), staging / "trainable.pt")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        if best is not None:
            torch.save(best, staging / "best.pt")
        (staging / "state.json").write_text(json.dumps(state.to_json(), indent=1), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in list_checkpoints(root)[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, model, optimizer, scheduler, accelerator) -> tuple[TrainState, dict | None]:
    """Restore a checkpoint written by :func:`save_checkpoint`; every file is loaded weights-only."""
    # RNG first: a file that is not plain data is refused before any state is touched
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    rng = checkpoint.load(rng_file) if rng_file.exists() else None
    load_trainable_state(accelerator.unwrap_model(model), checkpoint.load(path / "trainable.pt"))
    optimizer.load_state_dict(checkpoint.load(path / "optimizer.pt"))
    scheduler.load_state_dict(checkpoint.load(path / "scheduler.pt"))
    if rng is not None:
        checkpoint.restore_rng(rng)
    best = checkpoint.load(path / "best.pt") if (path / "best.pt").exists() else None
    return TrainState.from_json(json.loads((path / "state.json").read_text(encoding="utf-8"))), best
