"""The sandbox enforces what its docstring promises, on real subprocesses."""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from dataclasses import replace

import pytest

from evals import sandbox
from evals.sandbox import SandboxLimits, execute, run_python, run_r, run_racket, sandbox_info
from tests.conftest import skip_or_fail_without
from tests.processes import processes_with, timeout, wait_for


def test_a_passing_program_passes_and_its_output_is_kept():
    result = run_python("print(6 * 7)")
    assert result.passed and result.stdout.strip() == "42"


def test_a_failing_assertion_fails():
    result = run_python("assert 1 == 2, 'nope'")
    assert result.status == "failed" and "nope" in result.stderr


def test_timeout_kills_the_program():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout" and result.duration_s < 5


def test_memory_limit_stops_a_huge_allocation():
    result = run_python("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", SandboxLimits(memory_mb=512))
    assert not result.passed and "allocated" not in result.stdout


def test_network_and_spawning_are_denied():
    code = (
        "import socket, subprocess\n"
        "for attempt in (lambda: socket.create_connection(('127.0.0.1', 9)), lambda: subprocess.run(['true'])):\n"
        "    try:\n        attempt()\n    except PermissionError:\n        continue\n"
        "    raise SystemExit('escaped the sandbox')\n"
    )
    assert run_python(code).passed


def test_runs_in_a_temporary_folder_with_a_stripped_environment():
    code = "import os\nprint(os.getcwd())\nprint(sorted(os.environ))"
    result = run_python(code)
    cwd, env = result.stdout.splitlines()
    assert "rc-sandbox-" in cwd
    assert "VIRTUAL_ENV" not in env and "HOME" in env


def test_sandbox_info_names_its_method():
    info = sandbox_info()
    assert info.method and isinstance(info.network_isolated, bool)


# --- issue 21.4: what the attacks of the hardening review did, reproduced --------------------



def _gone(marker: str) -> bool:
    wait_for(lambda: not processes_with(marker), 5, f"{marker!r} to exit")
    return True


def test_a_setsid_grandchild_neither_holds_the_run_nor_survives_it():
    marker = "sleep 47.2104"  # a unique duration, so only this test's process matches
    start = time.monotonic()
    result = execute(["sh", "-c", f"setsid {marker} & echo started"], {}, SandboxLimits(timeout_s=2.0))
    assert time.monotonic() - start < timeout(4.0), "the daemonised grandchild held the run"
    assert result.passed and result.stdout.strip() == "started"
    assert _gone(marker), "the setsid grandchild outlived the run"


def test_a_program_that_never_ends_times_out_and_leaves_nothing():
    marker = "sleep 47.2105"
    script = f"(setsid {marker} &); (sleep 47.2105 &); exec sleep infinity"
    start = time.monotonic()
    result = execute(["sh", "-c", script], {}, SandboxLimits(timeout_s=2.0))
    assert result.status == "timeout" and time.monotonic() - start < timeout(5.0)
    assert _gone(marker)


def test_800_mb_of_output_stop_the_program_and_the_parent_stays_flat():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    program = "import sys\nblock = b'x' * (1 << 20)\nfor _ in range(800):\n    sys.stdout.buffer.write(block)\n"
    start = time.monotonic()
    result = run_python(program, SandboxLimits(timeout_s=60.0))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status == "failed" and "output over 1048576 bytes" in result.stderr
    assert len(result.stdout) <= SandboxLimits().max_output_bytes + 100
    assert grown_mb < 64, f"the parent grew by {grown_mb:.0f} MB"
    assert time.monotonic() - start < timeout(30)


@pytest.fixture
def listener():
    """A TCP server on loopback that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _connected(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def _without_namespace(monkeypatch) -> sandbox.SandboxInfo:
    """This machine's sandbox as it is where ``unshare -n`` does not work."""
    info = replace(sandbox.sandbox_info(), network_namespace=False)
    if not info.seccomp:
        pytest.skip("this machine has no seccomp: covered by the refusal test")
    monkeypatch.setattr(sandbox, "sandbox_info", lambda: info)
    return info


_CONNECT = "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.connect(('127.0.0.1', {port}))\n"


def test_without_a_network_namespace_socket_and_posix_spawn_cannot_reach_the_network(monkeypatch, listener):
    _without_namespace(monkeypatch)
    port = listener.getsockname()[1]
    spawn = (f"import os, sys\npid = os.posix_spawn(sys.executable, [sys.executable, '-c', {_CONNECT.format(port=port)!r}], {{}})\n"
             "_, status = os.waitpid(pid, 0)\nraise SystemExit(os.waitstatus_to_exitcode(status))\n")
    for program in (_CONNECT.format(port=port), spawn):
        assert not run_python(program, SandboxLimits(timeout_s=10.0)).passed
        # without the Python guard: the kernel's filter alone
        raw = execute([sys.executable, "-I", "-S", "-c", program], {}, SandboxLimits(timeout_s=10.0))
        assert raw.status == "failed" and "Permission denied" in raw.stderr, raw.stderr
    assert not _connected(listener)


def test_the_filter_leaves_ordinary_programs_alone(monkeypatch):
    _without_namespace(monkeypatch)
    program = "import json, re, socket, os\nr, w = os.pipe()\nprint(json.dumps(sorted(re.findall('a', 'banana'))))"
    result = run_python(program)
    assert result.passed and result.stdout.strip() == '["a", "a", "a"]'


def test_without_any_network_isolation_the_sandbox_refuses_unless_allowed(monkeypatch):
    info = sandbox.SandboxInfo(False, "none", landlock_abi=0)
    monkeypatch.setattr(sandbox, "sandbox_info", lambda: info)
    monkeypatch.delenv(sandbox.ALLOW_NETWORK_ENV, raising=False)
    refused = run_python("print('ran')")
    assert refused.status == "error" and "no network isolation" in refused.stderr and not refused.stdout
    monkeypatch.setenv(sandbox.ALLOW_NETWORK_ENV, "1")
    assert run_python("print('ran')").stdout.strip() == "ran"


def test_the_host_filesystem_is_read_only_outside_the_sandbox_folder(tmp_path):
    if not sandbox_info().filesystem_confined:
        pytest.skip("this kernel has no Landlock: the docstring says the filesystem stays writable")
    target = tmp_path / "planted.txt"
    program = (f"import sys\nopen('inside.txt', 'w').write('ok')\n"
               f"try:\n    open({str(target)!r}, 'w').write('escaped')\nexcept PermissionError:\n    print('denied')\n")
    raw = execute([sys.executable, "-I", "-S", "-c", program], {}, SandboxLimits(timeout_s=10.0))
    assert raw.passed and raw.stdout.strip() == "denied", raw.stderr
    assert not target.exists()


@pytest.mark.parametrize("language", ["r", "racket"])
def test_r_and_racket_get_no_network_and_no_host_writes_either(monkeypatch, listener, tmp_path, language):
    """The kernel's filter and rule set hold for every runtime, not only Python's guard."""
    skip_or_fail_without("Rscript" if language == "r" else "racket")
    _without_namespace(monkeypatch)
    port, target = listener.getsockname()[1], tmp_path / "planted.txt"
    if language == "r":
        result = run_r(f'con <- socketConnection("127.0.0.1", {port}, blocking=TRUE, timeout=3)\n')
        written = run_r(f'writeLines("x", "{target}")\n')
    else:
        result = run_racket(f'#lang racket\n(tcp-connect "127.0.0.1" {port})\n')
        written = run_racket(f'#lang racket\n(with-output-to-file "{target}" (lambda () (displayln "x")))\n')
    assert result.status == "failed" and not _connected(listener)
    if sandbox_info().filesystem_confined:
        assert written.status == "failed" and not target.exists()


def test_the_program_cannot_signal_its_supervisor_or_the_eval_runner():
    """With Landlock ABI 6 signals stay inside the sandbox: killing the supervisor (to orphan
    daemons past its clean-up) or any process of the user fails."""
    if sandbox_info().landlock_abi < 6:
        pytest.skip("signal scoping needs Landlock ABI 6 (Linux 6.12)")
    program = ("import os, signal\nfor pid in (os.getppid(), %d):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
               "    except PermissionError:\n        print('denied')\n" % os.getpid())
    result = execute([sys.executable, "-I", "-S", "-c", program], {}, SandboxLimits(timeout_s=10.0))
    assert result.passed and result.stdout.split() == ["denied", "denied"], result
