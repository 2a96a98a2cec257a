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


# --- /proc inspection (Linux): proving that nothing was left running ------------------------

def _stat_fields(pid: int | str) -> list[bytes]:
    """Fields of ``/proc/PID/stat`` after the command name (state first), [] when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2:].split()


def cmdline(pid: int | str) -> str:
    """The command line of ``pid``, arguments joined by spaces ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (zombies included)."""
    return [int(name) for name in os.listdir("/proc")
            if name.isdigit() and (fields := _stat_fields(name)) and int(fields[1]) == pid]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != b"Z"


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and marker in cmdline(name) and alive(int(name))]
