"""HTTP server latency and throughput, and its overhead over the in-process engine.

    python bench/server_latency.py [--requests 40] [--delay-ms 3] [--backend fake|transformers] [--server thread|process]

1. overhead: p50 latency of ``POST /v1/completions`` on a real ``repocomplete serve``
   process ÷ p50 of ``Engine.complete`` in this process, same requests, same backend,
   same indexed workspace, one request at a time, interleaved. Target: ≤ 1.05 at p50.
2. load: p50 / p95 latency and throughput (requests/s) at concurrency 1, 4 and 16.

The backend is the fake model sleeping ``--delay-ms`` per generated character (a stand-in
for a model that needs ~60 ms a request), or the embedded default model (``transformers``).
Requests are cursor positions in a copy of the stdlib's ``json`` package, which both the
server and the in-process engine index and retrieve from.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from repocomplete.config import EngineConfig, load_config  # noqa: E402
from repocomplete.engine import Engine  # noqa: E402
from repocomplete.types import CompletionRequest, Segments  # noqa: E402

FAKE_TEXT = "compute(value, offset)\n"


def make_requests(repo: Path, count: int) -> list[dict]:
    """Cursors mid-line at evenly spaced code lines of the repository's files."""
    points = []
    for path in sorted(repo.glob("*.py")):
        lines = path.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if len(line.strip()) > 20 and not line.strip().startswith(("#", '"', "'")):
                cut = len(line) - len(line.lstrip()) + len(line.strip()) // 2
                points.append((path.name, "".join(lines[:i]) + line[:cut], line[cut:] + "".join(lines[i + 1:])))
    step = max(1, len(points) // count)
    return [{"workspace": "bench", "language": "python", "max_tokens": 32,
             "segments": {"prefix": p, "suffix": s, "filepath": f}} for f, p, s in points[::step][:count]]


def in_process(engine: Engine, body: dict) -> float:
    seg = body["segments"]
    request = CompletionRequest(Segments(seg["prefix"], seg["suffix"], filepath=seg["filepath"]), language="python",
                                workspace="bench", max_tokens=body["max_tokens"])
    start = time.perf_counter()
    engine.complete(request)
    return time.perf_counter() - start


class Connection:
    """A kept-alive stdlib HTTP connection: the lightest client, so the numbers are the server's."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        #: The engine's own time for each request, as the server reports it.
        self.engine_ms: list[float] = []

    def post(self, path: str, body: dict) -> float:
        payload = json.dumps(body).encode()
        for attempt in (1, 2):  # the server closes connections idle past its keep-alive timeout
            start = time.perf_counter()
            try:
                self.conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
                reply = self.conn.getresponse()
                data = reply.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - start
        assert reply.status == 200, reply.status
        self.engine_ms.append(json.loads(data)["timings"]["total_ms"])
        return elapsed

    def close(self) -> None:
        self.conn.close()


def over_http(client: Connection, body: dict) -> float:
    return client.post("/v1/completions", body)


def start_server(repo: Path, env: dict, backend: str, mode: str) -> tuple[Callable[[], None], str]:
    """A server with its own engine: a ``repocomplete serve`` process, or uvicorn on a thread of this one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    events = str(repo.parent / f"events-{port}.sqlite")
    if mode == "process":
        cmd = [sys.executable, "-m", "repocomplete", "serve", "--no-workspace", "--backend", backend, "--port", str(port),
               "--max-concurrency", "16", "--max-queue", "64", "--log-level", "warning", "--events-db", events,
               "--allow-root", str(repo)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})

        def stop() -> None:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
    else:
        import uvicorn

        from repocomplete.config import load_engine_config
        from server.app import build_engine, create_app
        from server.settings import ServerSettings

        settings = ServerSettings(port=port, max_concurrency=16, max_queue=64, events_db=events,
                                  allow_roots=[str(repo)], engine=load_engine_config(backend=backend))
        server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=build_engine(settings)), port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(15)
    for _ in range(600):
        try:
            httpx.get(f"{url}/v1/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    httpx.post(f"{url}/v1/workspaces", json={"root": str(repo), "name": "bench"}).raise_for_status()
    while httpx.get(f"{url}/v1/workspaces/bench").json()["status"] != "ready":
        time.sleep(0.1)
    return stop, url


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(url: str, bodies: list[dict], concurrency: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    work = list(bodies)

    def worker() -> None:
        client = Connection(url)
        while True:
            with lock:
                if not work:
                    break
                body = work.pop()
            elapsed = over_http(client, body)
            with lock:
                latencies.append(elapsed)
        client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": len(latencies), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1), "throughput_rps": round(len(latencies) / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per measurement")
    parser.add_argument("--delay-ms", type=float, default=3.0, help="fake backend: milliseconds per generated character")
    parser.add_argument("--backend", choices=("fake", "transformers"), default="fake")
    parser.add_argument("--server", choices=("thread", "process"), default="thread",
                        help="uvicorn on a thread of this process (no cross-process scheduling noise), or a "
                             "`repocomplete serve` process")
    args = parser.parse_args()

    env = {"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT, "REPOCOMPLETE_FAKE_DELAY_S": str(args.delay_ms / 1000)}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "jsonrepo"
        shutil.copytree(Path(json.__file__).parent, repo, ignore=shutil.ignore_patterns("__pycache__"))
        os.environ["REPOCOMPLETE_CACHE_DIR"] = env["REPOCOMPLETE_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.environ.update(env)
        engine = Engine.from_config(load_config(EngineConfig, overrides={"backend": args.backend}))
        engine.workspaces.register(str(repo), name="bench")
        stop, url = start_server(repo, env, args.backend, args.server)
        try:
            bodies = make_requests(repo, args.requests)
            local, remote = [], []
            client = Connection(url)
            for body in bodies[:3]:  # warm both sides
                in_process(engine, body), over_http(client, body)
            for body in bodies:  # interleaved: the shared machine's noise hits both alike
                local.append(in_process(engine, body))
                remote.append(over_http(client, body))
            client.close()
            server_engine_ms = statistics.median(client.engine_ms[3:])
            p50_local, p50_remote = statistics.median(local), statistics.median(remote)
            overhead = {"in_process_p50_ms": round(p50_local * 1000, 1), "server_p50_ms": round(p50_remote * 1000, 1),
                        "ratio": round(p50_remote / p50_local, 3),
                        "added_ms_p50": round((p50_remote - p50_local) * 1000, 2),
                        "engine_inside_server_p50_ms": round(server_engine_ms, 1)}
            rows = [load(url, bodies, c) for c in (1, 4, 16)]
        finally:
            stop()
    print(json.dumps({"backend": args.backend, "server": args.server, "delay_ms_per_char": args.delay_ms, "overhead": overhead, "load": rows}, indent=2))
    print("\n| concurrency | p50 ms | p95 ms | req/s |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['concurrency']} | {row['p50_ms']} | {row['p95_ms']} | {row['throughput_rps']} |")
    print(f"\nHTTP overhead at p50: {overhead['server_p50_ms']} ms / {overhead['in_process_p50_ms']} ms in-process "
          f"= {overhead['ratio']} (target <= 1.05)")


if __name__ == "__main__":
    main()
