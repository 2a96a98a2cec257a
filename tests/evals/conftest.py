"""Helpers of the eval tests: scripted completers with known answers, the CLI as a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from evals.runner import CompletionOutput
from repocomplete.types import CompletionRequest

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (failing the test on an error); its stdout, stripped."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def new_git_repository(repo: Path) -> Path:
    """An empty repository at ``repo`` with a committer configured."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "evals@example.com")
    git(repo, "config", "user.name", "evals")
    return repo


class ScriptedCompleter:
    """A completer whose answer is a function of the request (gold, wrong, ...)."""

    label = "scripted"

    def __init__(self, answer: Callable[[CompletionRequest], str]) -> None:
        self.answer = answer
        self.requests: list[CompletionRequest] = []

    def complete(self, request: CompletionRequest) -> CompletionOutput:
        self.requests.append(request)
        return CompletionOutput(self.answer(request), 1.0)


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "repocomplete", "eval", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_summary(*args: str) -> dict:
    done = run_cli(*args, "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def make_args():
    def make(**values) -> argparse.Namespace:
        defaults = {"limit": None, "seed": 0, "progress": False, "adapter_name": None, "self_check": False}
        return argparse.Namespace(**(defaults | values))

    return make



def engine_answering(pairs: list[tuple[str, str, str]], *, wrong: str | None = None):
    """An in-process engine on the fake backend that answers each (prefix, suffix) with its text."""
    from evals.runner import scripted_engine

    return scripted_engine(pairs, wrong=wrong)
