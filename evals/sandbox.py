"""Run untrusted generated programs in a constrained subprocess.

What is enforced, for every program (Python, R, Racket):

- **Temporary folder**: a fresh directory is the working directory and ``HOME``/``TMPDIR``;
  it is deleted afterwards.
- **Timeout**: wall-clock; on expiry the whole process group is killed (SIGKILL).
- **Memory**: ``RLIMIT_AS`` (address space) via ``resource.setrlimit`` in the child, plus
  ``RLIMIT_FSIZE`` (largest file it may write) and ``RLIMIT_CORE`` = 0.
- **Output**: stdout/stderr are truncated to ``max_output_bytes`` when reported.
- **Environment**: replaced by a minimal one (``PATH``, ``LANG``, ``HOME``); proxy variables,
  tokens and the rest of the parent's environment are not inherited.
- **Network**: when ``unshare -n`` works (root, or unprivileged user namespaces) the program
  runs in a new network namespace with no interfaces up, so nothing can be reached. When it
  does not, Python programs still get the socket guard below; R and Racket then only have the
  stripped environment (``SandboxInfo.network_isolated`` says which one applied).
- **Python guard** (HumanEval's "reliability guard" idea): before the program runs, a boot
  script disables ``socket``, process spawning (``os.system``, ``subprocess.Popen``,
  ``os.fork``...) and file deletion (``os.remove``, ``shutil.rmtree``...). Python runs with
  ``-I -S`` (isolated mode, no site-packages): generated code gets the standard library only.

Not enforced: a separate user id, a seccomp filter, CPU-time fairness beyond the timeout, or a
read-only view of the rest of the filesystem. Run the evals in a container for hostile code.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]

#: Run before a Python program: disable the network, spawning and destructive file calls.
_PYTHON_BOOT = r'''
import builtins, os, runpy, shutil, socket, subprocess, sys

def _denied(*_args, **_kwargs):
    raise PermissionError("disabled in the evaluation sandbox")

class _NoSocket:
    def __init__(self, *args, **kwargs):
        _denied()

socket.socket = _NoSocket
socket.create_connection = _denied
socket.getaddrinfo = _denied
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "remove", "unlink",
              "rmdir", "removedirs", "rename", "renames", "replace", "truncate", "putenv",
              "chmod", "chown", "execv", "execve", "execvp", "execvpe", "spawnv", "spawnve"):
    if hasattr(os, _name):
        setattr(os, _name, _denied)
shutil.rmtree = shutil.move = shutil.chown = _denied
subprocess.Popen = subprocess.run = subprocess.call = subprocess.check_output = _denied
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
'''

_MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one execution."""

    timeout_s: float = 10.0
    #: Address-space limit; ``None`` disables it (some runtimes reserve large virtual ranges).
    memory_mb: int | None = 2048
    file_size_mb: int = 16
    max_output_bytes: int = 64_000


@dataclass
class ExecutionResult:
    """What happened to one program."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class SandboxInfo:
    """Which isolation this machine provides (reported in run summaries)."""

    network_isolated: bool
    method: str


@functools.cache
def sandbox_info() -> SandboxInfo:
    """Probe once whether a network namespace can be created (``unshare -n``)."""
    unshare = shutil.which("unshare")
    if unshare:
        try:
            probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10)
            if probe.returncode == 0:
                return SandboxInfo(True, "unshare -n (empty network namespace)")
        except (OSError, subprocess.SubprocessError):
            pass
    return SandboxInfo(False, "environment stripped; Python socket guard only")


def _limit_resources(limits: SandboxLimits) -> None:
    """Runs in the child between fork and exec."""
    if limits.memory_mb is not None:
        size = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    file_size = limits.file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _decode(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > limit else "")


def execute(
    argv: list[str],
    files: dict[str, str],
    limits: SandboxLimits = SandboxLimits(),
    *,
    require_empty_stderr: bool = False,
) -> ExecutionResult:
    """Write ``files`` into a fresh temporary folder and run ``argv`` there.

    ``argv[0]`` is resolved on ``PATH`` before the environment is stripped. The program
    passes when it exits 0 (and, with ``require_empty_stderr``, printed nothing on stderr:
    rackunit reports failures on stderr yet exits 0).
    """
    program = shutil.which(argv[0]) or argv[0]
    if not os.path.exists(program):
        return ExecutionResult("error", None, "", f"{argv[0]} is not installed", 0.0)
    command = [program, *argv[1:]]
    info = sandbox_info()
    if info.network_isolated:
        command = [shutil.which("unshare") or "unshare", "-n", *command]
    with tempfile.TemporaryDirectory(prefix="rc-sandbox-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        env = {"PATH": _MINIMAL_PATH, "LANG": "C.UTF-8", "HOME": folder, "TMPDIR": folder}
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills its children too
            preexec_fn=lambda: _limit_resources(limits),
        )
        try:
            out, err = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            return ExecutionResult(
                "timeout", None, _decode(out, limits.max_output_bytes),
                _decode(err, limits.max_output_bytes), time.perf_counter() - start,
            )
        duration = time.perf_counter() - start
    stdout, stderr = _decode(out, limits.max_output_bytes), _decode(err, limits.max_output_bytes)
    ok = proc.returncode == 0 and not (require_empty_stderr and stderr.strip())
    return ExecutionResult("passed" if ok else "failed", proc.returncode, stdout, stderr, duration)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_python(program: str, limits: SandboxLimits = SandboxLimits()) -> ExecutionResult:
    """Run a Python program (standard library only) under the guard; passes on exit 0."""
    files = {"_boot.py": _PYTHON_BOOT, "program.py": program}
    return execute([sys.executable, "-I", "-S", "_boot.py", "program.py"], files, limits)


def run_r(program: str, limits: SandboxLimits = SandboxLimits()) -> ExecutionResult:
    """Run an R script with ``Rscript --vanilla``; passes on exit 0 (``stopifnot`` fails it)."""
    return execute(["Rscript", "--vanilla", "program.R"], {"program.R": program}, limits)


def run_racket(program: str, limits: SandboxLimits = SandboxLimits()) -> ExecutionResult:
    """Run a ``#lang racket`` module; passes on exit 0 with an empty stderr (rackunit)."""
    return execute(["racket", "program.rkt"], {"program.rkt": program}, limits, require_empty_stderr=True)
