"""A real ``python -m repocomplete serve`` process per test (or module), spoken to over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.processes import timeout

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running server process."""

    url: str
    proc: subprocess.Popen
    log: Path
    events_db: Path
    token: str | None = None
    headers: dict = field(default_factory=dict)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=kwargs.pop("timeout", 30), **kwargs)

    def metric(self, name: str, **labels) -> float:
        """One sample's value from /metrics (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", headers=self.headers, timeout=10).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if line.startswith("#") or not key.startswith(name):
                continue
            got = key[len(name):]
            got_labels = ",".join(sorted(got.strip("{}").split(","))) if got else ""
            if got_labels == want:
                return float(value)
        return 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(tmp: Path, *args: str, env: dict | None = None, token: str | None = None, wait_s: float = 60,
                 cwd: Path = ROOT) -> Served:
    """Start ``repocomplete serve --backend fake`` (unless args choose another) and wait for health."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    events_db = tmp / f"events-{port}.sqlite"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if token:
        full_env["REPOCOMPLETE_TOKENS"] = token
    backend = [] if "--backend" in args else ["--backend", "fake"]
    # In this repository, serve without --workspace would index it (its git root) in the background.
    backend += ["--no-workspace"] if cwd == ROOT and "--workspace" not in args else []
    cmd = [sys.executable, "-m", "repocomplete", "serve", *backend, "--port", str(port),
           "--events-db", str(events_db), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    served = Served(f"http://127.0.0.1:{port}", proc, log, events_db, token,
                    {"Authorization": f"Bearer {token}"} if token else {})
    deadline = time.monotonic() + timeout(wait_s)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.url}/v1/health", timeout=1).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    served.stop()
    raise RuntimeError(f"server did not become healthy in {timeout(wait_s):.0f} s:\n{served.output()}")


@pytest.fixture
def serve(tmp_path):
    """``serve(*args, env=..., token=...)`` -> Served; every server is stopped after the test."""
    started: list[Served] = []

    def _serve(*args: str, **kwargs) -> Served:
        served = start_server(tmp_path, *args, **kwargs)
        started.append(served)
        return served

    yield _serve
    for served in started:
        served.stop()


#: A generation the tests can recognise, and a slow one for load and fault tests.
FAKE_TEXT = "return total + offset\n"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One plain server for the read-mostly tests of a module."""
    served = start_server(tmp_path_factory.mktemp("served"), env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    yield served
    served.stop()
