"""Shared fixtures: tiny models built from config (never downloaded), temporary repositories."""

from __future__ import annotations

import os
import shutil

import pytest


def require_interpreters() -> bool:
    """In CI, tests needing Rscript/racket/npm must run: a missing tool fails instead of skipping."""
    return os.environ.get("REPOCOMPLETE_REQUIRE_INTERPRETERS") == "1"


def skip_or_fail_without(tool: str) -> None:
    """Skip (locally) or fail (CI) when an external program is not installed."""
    if shutil.which(tool) is None:
        message = f"{tool} is not installed (apt-get install it; .ci/run does)"
        if require_interpreters():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama model + BPE tokenizer with the "repocomplete" FIM tokens (built once per session).

    Built from config by :func:`tests.tiny_model.build_tiny_model`; nothing is downloaded.
    """
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def processes():
    """A :class:`tests.processes.ProcessTracker`: what a test starts through it is killed, children too, on every outcome."""
    from tests.processes import ProcessTracker

    tracker = ProcessTracker()
    try:
        yield tracker
    finally:
        tracker.close()
