"""The suite's own process hygiene: one timeout factor for every wait, no process outlives its test."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from tests.processes import FACTOR_ENV, factor, timeout

SLEEPER = [sys.executable, "-c", "import subprocess, sys, time; "
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"]


def test_the_factor_scales_deadlines_and_subprocess_waits(monkeypatch):
    monkeypatch.setenv(FACTOR_ENV, "3")
    assert factor() == 3 and timeout(10) == 30
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    started = time.monotonic()
    assert proc.wait(timeout=0.75) == 0  # 0.75 s x 3 > 1.5 s: the suite-wide hook stretched it
    assert time.monotonic() - started >= 1.0
    with monkeypatch.context() as patch:
        patch.setenv(FACTOR_ENV, "fast")
        with pytest.raises(ValueError, match=FACTOR_ENV):
            factor()


INNER_TEST = """
import subprocess, sys, time
import psutil

def test_fails_leaving_a_server_with_a_worker_running():
    proc = subprocess.Popen(%r)
    parent = psutil.Process(proc.pid)
    while not parent.children():
        time.sleep(0.05)
    with open(%r, "w") as out:
        out.write(" ".join(str(p) for p in [proc.pid, *(c.pid for c in parent.children())]))
    assert False, "a failing test"
"""


def test_no_process_outlives_the_test_that_started_it(pytester):
    """A test that fails with a server (and its worker) running: both are gone when it ends."""
    pids_file = pytester.path / "pids.txt"
    pytester.makeconftest("from tests.conftest import pytest_runtest_call  # noqa: F401 - the hook under test")
    pytester.makepyfile(test_inner=INNER_TEST % (SLEEPER, str(pids_file)))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"still running: {alive}"
