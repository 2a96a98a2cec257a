"""Fixtures: a small real repository (a stdlib package under git, with history)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(repo)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def make_history_repo(dest: Path, package: str = "json", last_commit: tuple[str, ...] = ("encoder.py",)) -> Path:
    """Copy a stdlib package, commit it in two steps: everything else first, ``last_commit`` last."""
    shutil.copytree(STDLIB / package, dest, ignore=shutil.ignore_patterns("__pycache__"))
    git(dest, "init", "-q")
    older = [p.name for p in sorted(dest.iterdir()) if p.is_file() and p.name not in last_commit]
    git(dest, "add", *older)
    git(dest, "commit", "-q", "-m", "older files")
    git(dest, "add", ".")
    git(dest, "commit", "-q", "-m", "newest files")
    return dest


@pytest.fixture(scope="session")
def json_repo(tmp_path_factory) -> Path:
    """The stdlib ``json`` package as a git repository whose latest commit adds ``encoder.py``."""
    return make_history_repo(tmp_path_factory.mktemp("repos") / "jsonpkg")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
