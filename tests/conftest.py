"""Shared fixtures: tiny models built from config (never downloaded), temporary repositories."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess

import pytest

from tests.processes import factor, kill_tree

# A suite started as a background job of a non-interactive shell (`bash .ci/run &`, nohup, a CI
# runner's script step) inherits SIGINT *ignored*, and an ignored signal stays ignored across exec:
# every server, language server and `index --watch` the tests start would then shrug off the Ctrl-C
# they are stopped with, and the test would time out waiting. Python's own handler in this process
# is reset to the default in each child at exec, so children stop on SIGINT as they do in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = ["pytester"]  # tests/test_processes.py runs a failing test session inside the suite


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


def _scaled(method):
    """``Popen.wait``/``communicate`` with their ``timeout`` stretched by the CI factor."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if "timeout" in kwargs and kwargs["timeout"] is not None:
            kwargs["timeout"] *= factor()
        elif method.__name__ == "wait" and args and args[0] is not None:
            args = (args[0] * factor(), *args[1:])
        elif method.__name__ == "communicate" and len(args) > 1 and args[1] is not None:
            args = (args[0], args[1] * factor(), *args[2:])
        return method(self, *args, **kwargs)

    return wrapper


@pytest.fixture(scope="session", autouse=True)
def _subprocess_waits_scale_with_the_ci_factor():
    """Every subprocess wait of the suite (``subprocess.run(timeout=)`` included) times out
    ``REPOCOMPLETE_TEST_TIMEOUT_FACTOR`` times later: one knob for a slow CI machine."""
    factor()  # a bad value fails the session at once, with its message
    originals = subprocess.Popen.wait, subprocess.Popen.communicate
    subprocess.Popen.wait, subprocess.Popen.communicate = map(_scaled, originals)
    yield
    subprocess.Popen.wait, subprocess.Popen.communicate = originals


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Kill every process the test body started (and their children) when it ends, pass or fail:
    a timed-out test must not leave its server running. Fixtures stop their own."""
    started: list[subprocess.Popen] = []
    original = subprocess.Popen.__init__

    @functools.wraps(original)
    def tracking_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        started.append(self)

    subprocess.Popen.__init__ = tracking_init
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original
        for proc in reversed(started):
            kill_tree(proc)
