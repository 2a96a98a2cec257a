"""Waiting for and cleaning up the real processes tests start.

Every wait on a subprocess goes through :func:`timeout` so that one environment variable,
``REPOCOMPLETE_TEST_TIMEOUT_FACTOR`` (default 1), stretches all of them on a slow or loaded
CI machine. :class:`ProcessTracker` (the ``processes`` fixture) kills what a test started,
children included, however the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

FACTOR_ENV = "REPOCOMPLETE_TEST_TIMEOUT_FACTOR"


def factor() -> float:
    """The CI-set multiplier of every test timeout (>= 1 makes sense; bad values are an error, not ignored)."""
    raw = os.environ.get(FACTOR_ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{FACTOR_ENV} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{FACTOR_ENV} must be positive, got {raw!r}")
    return value


def timeout(seconds: float) -> float:
    """``seconds`` scaled by the CI factor: the only way tests should spell a subprocess timeout."""
    return seconds * factor()


def wait_for(condition: Callable[[], object], seconds: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy (returned) or the scaled timeout passes."""
    deadline = time.monotonic() + timeout(seconds)
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout(seconds):.0f} s waiting for {what}")
        time.sleep(interval)


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process in its process group (started with ``start_new_session=True``)."""
    if proc.poll() is None or _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    try:
        proc.wait(timeout(10))
    except subprocess.TimeoutExpired:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class ProcessTracker:
    """Starts subprocesses in their own session and kills each whole tree at :meth:`close`."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def popen(self, args, **kwargs) -> subprocess.Popen:
        """:class:`subprocess.Popen` in a new session, tracked for cleanup."""
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def track(self, proc: subprocess.Popen) -> subprocess.Popen:
        """Track a process started elsewhere (ideally with ``start_new_session=True``)."""
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.started):
            kill_tree(proc)
        self.started.clear()
