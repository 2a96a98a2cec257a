"""Test repositories made of real code: slices of the Python standard library copied to tmp."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def copy_stdlib(dest: Path, *packages: str) -> Path:
    """Copy stdlib packages (``json``, ``email``, ...) into ``dest`` and return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in packages:
        source = STDLIB / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(STDLIB / f"{name}.py", dest / f"{name}.py")
    return dest
