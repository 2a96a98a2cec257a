"""Run untrusted generated programs in a constrained subprocess.

What is enforced, for every program (Python, R, Racket), by the kernel where it can be:

- **Temporary folder**: a fresh directory is the working directory and ``HOME``/``TMPDIR``;
  it is deleted afterwards.
- **No process outlives the run**: a supervisor (:mod:`evals.sandbox_supervisor`, a child
  subreaper) starts the program in its own process group and, on exit, timeout or an output
  overflow, kills the group and then every remaining descendant, daemonised ones (``setsid``,
  double forks) included. A run takes at most its timeout (plus a short clean-up).
- **Timeout**: wall-clock, plus ``RLIMIT_CPU`` as a backstop.
- **Memory and processes**: ``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` (largest file it
  may write), ``RLIMIT_CORE`` = 0, ``RLIMIT_NOFILE``, and ``RLIMIT_NPROC`` (a fork-bomb brake;
  the kernel does not apply it to root).
- **Output**: stdout and stderr are read incrementally; past ``max_capture_bytes`` (1 MB) the
  program is stopped and the run fails, so the caller's memory stays flat whatever it prints.
  Reports are further truncated to ``max_output_bytes``.
- **Environment**: replaced by a minimal one (``PATH``, ``LANG``, ``HOME``, ``TMPDIR``).
- **Network**: a seccomp filter makes ``socket()`` (and ``io_uring_setup``) fail for the
  program and everything it starts, in any language, through any library; where ``unshare -n``
  also works the program runs in an empty network namespace too. On a machine where neither
  is available the sandbox refuses to run programs (status ``error``) unless
  ``REPOCOMPLETE_SANDBOX_ALLOW_NETWORK=1`` says the operator accepts it.
- **Filesystem**: with Landlock (Linux >= 5.13) only the sandbox folder and ``/dev/null`` are
  writable; from Landlock ABI 6 the program cannot signal processes outside the sandbox.
  Without Landlock the rest of the filesystem is as writable as it is for the user running
  the evals (``SandboxInfo.filesystem_confined`` says which applied).
- **Python guard** (HumanEval's "reliability guard" idea, defence in depth only): a boot script
  disables ``socket``/``_socket``, process spawning (``subprocess``, ``os.posix_spawn``,
  ``os.fork``, ...) and file deletion; Python runs with ``-I -S`` (standard library only).

Not enforced: a separate user id, reading: the program can read every file the user running
the evals can read (it cannot send it anywhere), and CPU fairness beyond the limits. Run the
evals in a container or VM for hostile code.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evals.sandbox_supervisor import landlock_abi, seccomp_supported
from repocomplete.errors import RepocompleteError

Status = Literal["passed", "failed", "timeout", "error"]

_SUPERVISOR = str(Path(__file__).with_name("sandbox_supervisor.py"))
#: Extra time the parent gives the supervisor beyond the program's timeout before it gives up.
_GRACE_S = 5.0
ALLOW_NETWORK_ENV = "REPOCOMPLETE_SANDBOX_ALLOW_NETWORK"

#: Interpreter -> the Debian/Ubuntu package that installs it.
PACKAGES = {"Rscript": "r-base-core", "racket": "racket", "python3": "python3"}


class HarnessError(RepocompleteError):
    """The harness could not run a program (interpreter missing, no isolation, supervisor failure).

    Not a result: nothing is recorded for the sample, so a resumed run tries it again.
    """


def require_programs(programs: list[str]) -> None:
    """HarnessError naming every missing interpreter and the command that installs them all."""
    missing = [p for p in dict.fromkeys(programs) if shutil.which(p) is None]
    if missing:
        packages = " ".join(PACKAGES.get(p, p) for p in missing)
        raise HarnessError(f"{' and '.join(missing)} not installed: the tests of the translated problems cannot run "
                           f"(install: apt-get install {packages})")


def checked(result: ExecutionResult) -> ExecutionResult:
    """``result``, unless the program never ran: then HarnessError, so no wrong answer is recorded."""
    if result.harness_error:
        raise HarnessError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "the sandbox failed")
    return result

#: Run before a Python program: disable the network, spawning and destructive file calls.
_PYTHON_BOOT = r'''
import builtins, os, runpy, shutil, socket, subprocess, sys, _socket, _posixsubprocess

def _denied(*_args, **_kwargs):
    raise PermissionError("disabled in the evaluation sandbox")

class _NoSocket:
    def __init__(self, *args, **kwargs):
        _denied()

for _module in (socket, _socket):
    _module.socket = _NoSocket
    for _name in ("create_connection", "getaddrinfo", "gethostbyname", "socketpair", "fromfd", "dup"):
        if hasattr(_module, _name):
            setattr(_module, _name, _denied)
_posixsubprocess.fork_exec = _denied
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "remove", "unlink",
              "rmdir", "removedirs", "rename", "renames", "replace", "truncate", "putenv",
              "chmod", "chown", "posix_spawn", "posix_spawnp", "execl", "execle", "execlp",
              "execlpe", "execv", "execve", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp",
              "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
    if hasattr(os, _name):
        setattr(os, _name, _denied)
shutil.rmtree = shutil.move = shutil.chown = _denied
subprocess.Popen = subprocess.run = subprocess.call = subprocess.check_call = subprocess.check_output = _denied
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
    #: Output kept in the report (each of stdout and stderr).
    max_output_bytes: int = 64_000
    #: Output read at all (stdout and stderr together); more stops the program.
    max_capture_bytes: int = 1_048_576
    #: Processes the program may add to the user's count (not applied to root by the kernel).
    max_processes: int = 64


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

    @property
    def harness_error(self) -> bool:
        """The program did not run at all (status "error"): a fault of the harness, not of the program."""
        return self.status == "error"


@dataclass(frozen=True)
class SandboxInfo:
    """Which isolation this machine provides (reported in run summaries)."""

    network_isolated: bool
    method: str
    #: An empty network namespace (``unshare -n``) is used.
    network_namespace: bool = False
    #: socket() is denied by a seccomp filter.
    seccomp: bool = False
    #: Landlock ABI in use (0: the rest of the filesystem stays writable).
    landlock_abi: int = 0

    @property
    def filesystem_confined(self) -> bool:
        return self.landlock_abi > 0


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        return subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def sandbox_info() -> SandboxInfo:
    """Probe once which kernel mechanisms this machine offers."""
    namespace, seccomp, abi = _unshare_works(), seccomp_supported(), landlock_abi()
    parts = []
    if namespace:
        parts.append("unshare -n (empty network namespace)")
    if seccomp:
        parts.append("seccomp (socket() denied)")
    parts.append(f"Landlock ABI {abi} (writes only in the sandbox folder)" if abi
                 else "no Landlock (host filesystem writable)")
    parts.append("subreaper supervisor (no process outlives a run)")
    return SandboxInfo(namespace or seccomp, "; ".join(parts), namespace, seccomp, abi)


def _decode(data: bytes | bytearray, limit: int, overflow: bool = False) -> str:
    text = bytes(data[:limit]).decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if overflow or len(data) > limit else "")


def execute(
    argv: list[str],
    files: dict[str, str],
    limits: SandboxLimits = SandboxLimits(),
    *,
    require_empty_stderr: bool = False,
) -> ExecutionResult:
    """Write ``files`` into a fresh temporary folder and run ``argv`` there, confined.

    ``argv[0]`` is resolved on ``PATH`` before the environment is stripped. The program
    passes when it exits 0 (and, with ``require_empty_stderr``, printed nothing on stderr:
    rackunit reports failures on stderr yet exits 0).
    """
    program = shutil.which(argv[0]) or argv[0]
    if not os.path.exists(program):
        return ExecutionResult("error", None, "", f"{argv[0]} is not installed", 0.0)
    info = sandbox_info()
    if not info.network_isolated and os.environ.get(ALLOW_NETWORK_ENV) != "1":
        return ExecutionResult("error", None, "", (
            "refusing to run untrusted code: this machine offers no network isolation (no unshare -n, "
            f"no seccomp); set {ALLOW_NETWORK_ENV}=1 to run it anyway"), 0.0)
    with tempfile.TemporaryDirectory(prefix="rc-sandbox-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        return _run(info, [program, *argv[1:]], folder, limits, require_empty_stderr)


def _run(info: SandboxInfo, command: list[str], folder: str, limits: SandboxLimits,
         require_empty_stderr: bool) -> ExecutionResult:
    status_read, status_write = os.pipe()
    config = {
        "argv": command, "folder": folder, "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb, "max_processes": limits.max_processes,
        "seccomp": info.seccomp, "landlock_abi": info.landlock_abi, "status_fd": status_write,
    }
    supervisor = [sys.executable, "-I", "-S", _SUPERVISOR, json.dumps(config)]
    if info.network_namespace:
        supervisor = [shutil.which("unshare") or "unshare", "-n", *supervisor]
    env = {"PATH": _MINIMAL_PATH, "LANG": "C.UTF-8", "HOME": folder, "TMPDIR": folder}
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            supervisor, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(status_write,), start_new_session=True,
        )
    finally:
        os.close(status_write)
    out, err, report, overflow = _collect(proc, status_read, limits)
    duration = time.perf_counter() - start
    try:
        status = json.loads(report or "{}")
    except ValueError:
        status = {}
    if "error" in status or "returncode" not in status:
        message = status.get("error") or f"sandbox supervisor ended without a report (exit {proc.returncode})"
        return ExecutionResult("error", None, _decode(out, limits.max_output_bytes),
                               _decode(err, limits.max_output_bytes) + "\n" + message, duration)
    stdout = _decode(out, limits.max_output_bytes, overflow)
    stderr = _decode(err, limits.max_output_bytes)
    if overflow:
        stderr += f"\n[sandbox: output over {limits.max_capture_bytes} bytes; program stopped]"
    if status["timeout"]:
        return ExecutionResult("timeout", None, stdout, stderr, duration)
    code = status["returncode"]
    ok = code == 0 and not overflow and not (require_empty_stderr and stderr.strip())
    return ExecutionResult("passed" if ok else "failed", code, stdout, stderr, duration)


def _collect(proc: subprocess.Popen, status_fd: int, limits: SandboxLimits) -> tuple[bytearray, bytearray, str, bool]:
    """Read stdout, stderr and the supervisor's status until all close, keeping at most
    ``max_capture_bytes``; past it, ask the supervisor to stop the program (SIGTERM)."""
    buffers = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    report = bytearray()
    captured, overflow = 0, False
    deadline = time.monotonic() + limits.timeout_s + _GRACE_S
    selector = selectors.DefaultSelector()
    status_file = os.fdopen(status_fd, "rb", buffering=0)
    for stream in (proc.stdout, proc.stderr, status_file):
        selector.register(stream, selectors.EVENT_READ)
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(proc)   # the supervisor itself is stuck: last resort
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is status_file:
                    report += chunk
                elif not overflow:
                    keep = min(len(chunk), max(limits.max_capture_bytes - captured, 0))
                    buffers[key.fileobj] += chunk[:keep]
                    captured += len(chunk)
                    if captured > limits.max_capture_bytes:
                        overflow = True
                        _stop(proc)
    finally:
        selector.close()
        status_file.close()
        proc.stdout.close()
        proc.stderr.close()
        try:
            proc.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
    return buffers[proc.stdout], buffers[proc.stderr], report.decode("utf-8", "replace"), overflow


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass


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
