"""The sandbox enforces what its docstring promises, on real subprocesses."""

from __future__ import annotations

from evals.sandbox import SandboxLimits, run_python, sandbox_info


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
