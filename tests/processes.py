"""Waiting for and cleaning up the real processes tests start.

One environment variable, ``REPOCOMPLETE_TEST_TIMEOUT_FACTOR`` (default 1), stretches every
wait of the suite on a slow or loaded CI machine: subprocess waits through the hook in
``tests/conftest.py`` (which scales the ``timeout`` of every ``Popen.wait``/``communicate``,
so ``subprocess.run(timeout=...)`` too), and every other deadline (a server becoming healthy,
an LSP response) through :func:`timeout`. The same hook kills every process a test started,
children included, however the test ends; :class:`ProcessTracker` (the ``processes`` fixture)
does it for fixtures.
"""

from __future__ import annotations

import os
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
    """``seconds`` scaled by the CI factor: how tests spell a deadline that is not a subprocess wait."""
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


def read_until(proc: subprocess.Popen, marker: str, seconds: float) -> tuple[bool, str]:
    """Read ``proc``'s text stdout line by line until a line holds ``marker`` (True), it ends, or the
    scaled timeout passes (False); returns that and everything read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return True, "".join(lines)
    return False, "".join(lines)


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and all its descendants (a server's workers, Neovim's language server...)."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        family = [*parent.children(recursive=True), parent] if proc.poll() is None else parent.children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


class ProcessTracker:
    """Starts subprocesses and kills each whole tree at :meth:`close`."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def popen(self, args, **kwargs) -> subprocess.Popen:
        """:class:`subprocess.Popen`, tracked for cleanup."""
        proc = subprocess.Popen(args, **kwargs)
        self.started.append(proc)
        return proc

    def track(self, proc: subprocess.Popen) -> subprocess.Popen:
        """Track a process started elsewhere."""
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
