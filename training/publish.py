"""Publish a folder atomically: readers see the old folder or the new one, never half of one.

A folder (an adapter, an exported model) is written into a staging folder beside its target,
``.<name>.staging-<pid>``, and renamed into place; a target that already exists is first
renamed to ``.<name>.old-<pid>`` and removed after the swap. A process killed part-way leaves
only those pid-stamped names behind, and the next :func:`publishing` of the same target removes
them (and, if the kill fell between the two renames, puts the previous folder back).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

_KINDS = ("staging", "old", "trash")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


def _stamped(target: Path, kind: str, pid: int | None = None) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid() if pid is None else pid}")


def stale_leftovers(target: Path) -> list[Path]:
    """Folders a killed writer of ``target`` left behind (their pid is no longer running)."""
    found = []
    for kind in _KINDS:
        for path in target.parent.glob(f".{target.name}.{kind}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                found.append(path)
    return sorted(found)


def clean_stale(target: Path) -> list[Path]:
    """Remove what killed writers of ``target`` left; restore the previous folder if the kill
    fell between moving it aside and moving the new one in. Returns what was removed."""
    leftovers = stale_leftovers(target)
    for path in leftovers:
        if path.name.startswith(f".{target.name}.old-") and not target.exists():
            os.replace(path, target)   # the swap never finished: the previous folder is the last good one
        else:
            shutil.rmtree(path, ignore_errors=True)
    return leftovers


def remove(path: Path) -> None:
    """Delete a folder so that a kill part-way leaves a stamped leftover, not a half folder."""
    if not path.exists():
        return
    trash = _stamped(path, "trash")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def publishing(target: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on a clean exit it becomes ``target``.

    ``mode``: permissions for the folder (and ``0o644`` for its files), e.g. a model that every
    user must read. On an exception the staging folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    staging = _stamped(target, "staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if mode is not None:
            staging.chmod(mode)
            for path in staging.rglob("*"):
                path.chmod(mode if path.is_dir() else 0o644)
        old = None
        if target.exists():
            old = _stamped(target, "old")
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
