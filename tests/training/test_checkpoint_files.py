"""Checkpoint files load weights-only; folders publish atomically and killed writers are cleaned up."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from training import checkpoint, publish


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    import numpy as np
    import torch

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    checkpoint.save(checkpoint.rng_state(numpy=True), tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    assert not (tmp_path / "rng.pt.tmp").exists()


def test_legacy_checkpoint_with_pickled_numpy_state_still_loads(tmp_path):
    """Older pretraining checkpoints held ``np.random.get_state()`` itself: data, read safely."""
    import numpy as np
    import torch

    np.random.seed(5)
    torch.save({"rng": {"numpy": np.random.get_state(), "python": random.getstate(), "torch": torch.get_rng_state()}},
               tmp_path / "last.pt")
    expected = float(np.random.rand())
    np.random.seed(0)
    checkpoint.restore_rng(checkpoint.load(tmp_path / "last.pt")["rng"])
    assert float(np.random.rand()) == expected


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_file_that_would_run_code_is_refused(tmp_path, writer):
    import torch

    marker, path = tmp_path / "ran", tmp_path / "rng-0.pt"
    payload = {"python": _RunsCommand(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(checkpoint.CheckpointError, match="refusing to load: not a weights-only checkpoint"):
        checkpoint.load(path)
    assert not marker.exists()


def test_an_unreadable_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(checkpoint.CheckpointError, match="cut.pt"):
        checkpoint.load(tmp_path / "cut.pt")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_publishing_swaps_the_folder_in_one_rename(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with publish.publishing(target) as staging:
        assert staging.parent == tmp_path and staging.name == f".adapter.staging-{os.getpid()}"
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").exists()           # readers still see the old folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_failed_publish_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "adapter"
    with pytest.raises(RuntimeError), publish.publishing(target) as staging:
        (staging / "half").write_text("x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_cleaned_and_an_interrupted_swap_restored(tmp_path):
    target, dead, alive = tmp_path / "adapter", _dead_pid(), os.getppid()
    for name in (f".adapter.staging-{dead}", f".adapter.old-{dead}", f".adapter.trash-{dead}",
                 f".adapter.staging-{alive}", ".adapter.staging-notapid", ".other.staging-1"):
        (tmp_path / name).mkdir()
    (tmp_path / f".adapter.old-{dead}" / "weights").write_text("previous adapter")
    removed = publish.clean_stale(target)
    assert sorted(p.name for p in removed) == sorted([f".adapter.old-{dead}", f".adapter.staging-{dead}",
                                                      f".adapter.trash-{dead}"])
    # killed between moving the previous adapter aside and moving the new one in: the previous one is back
    assert (target / "weights").read_text() == "previous adapter"
    # a live writer's staging folder and names that are not ours stay
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["adapter", f".adapter.staging-{alive}", ".adapter.staging-notapid", ".other.staging-1"])
