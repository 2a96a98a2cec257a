"""HTTP mode: the language server in front of `repocomplete serve` (and a backend that goes away)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.processes import timeout, wait_for
from tests.lsp.jsonrpc import ROOT
from tests.lsp.standin import serve_json
from tests.lsp.test_stdio import engine_text

FAKE_TEXT = "value + 1\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BODIES: list[dict] = []


def stand_in(path: str, body: dict) -> dict:
    """The smallest /v1/completions + /v1/events server, to bring a backend up and down at will."""
    BODIES.append(body)
    return {"stored": True} if path == "/v1/events" else {"id": "cmpl-standin", "choices": [{"index": 0, "text": "standin()"}]}


def test_backend_down_gives_no_items_one_message_then_resumes(spawn_lsp):
    port = free_port()
    lsp = spawn_lsp("--server-url", f"http://127.0.0.1:{port}")
    lsp.initialize({"debounceMs": 0})
    lsp.open("file:///down.py", "x = ")
    assert lsp.inline("file:///down.py", 0, 4) is None
    assert lsp.inline("file:///down.py", 0, 4) is None
    messages = [m for m in lsp.notifications if m["method"] == "window/showMessage"]
    assert len(messages) == 1 and "cannot reach" in messages[0]["params"]["message"]
    assert lsp.stats()["status"] == "error"

    server = serve_json(stand_in, port)
    try:
        (item,) = lsp.inline("file:///down.py", 0, 4)["items"]
        assert item["insertText"] == "standin()"
        stats = lsp.stats()
        assert stats["status"] == "ready" and stats["torch_loaded"] is False
        completions = [body for body in BODIES if "segments" in body]
        assert completions[-1]["segments"]["prefix"] == "x = " and completions[-1]["language"] == "python"
    finally:
        server.shutdown()
        server.server_close()
    assert lsp.shutdown_and_exit() == 0


def test_against_a_real_repocomplete_serve(spawn_lsp, tmp_path: Path):
    port = free_port()
    env = {"REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache"), "REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT}
    serve = subprocess.Popen(
        [sys.executable, "-m", "repocomplete", "serve", "--no-workspace", "--backend", "fake", "--port", str(port), "--token", "s3cret",
         "--events-db", str(tmp_path / "events.db")],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.err", "wb"),
    )
    try:
        deadline = time.monotonic() + timeout(180)  # a loaded 2-core machine starts uvicorn slowly
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.err").read_text()[-2000:]
            time.sleep(0.2)
        lsp = spawn_lsp("--server-url", f"http://127.0.0.1:{port}", "--token", "s3cret")
        lsp.initialize({"debounceMs": 0})
        ready = lsp.wait_notification(lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] == "ready", 120)
        assert f"127.0.0.1:{port}" in ready["params"]["message"]
        source = "def add(value):\n    return "
        lsp.open("file:///proj/add.py", source)
        (item,) = lsp.inline("file:///proj/add.py", 1, 11)["items"]
        assert item["insertText"] == engine_text(source, "", "/proj/add.py")
        command = item["command"]
        event = lsp.request("workspace/executeCommand", {"command": command["command"], "arguments": command["arguments"]})
        assert event["type"] == "select"
        # the cursor lands elsewhere: the server processes that prompt ahead of time (POST /v1/prefetch)
        lsp.notify("repocomplete/cursor", {"textDocument": {"uri": "file:///proj/add.py"},
                                           "position": {"line": 0, "character": 8}})
        wait_for(lambda: lsp.stats()["prefetches"] == 1, 30, "the server's prefetch")
        assert lsp.stats()["torch_loaded"] is False
        assert lsp.shutdown_and_exit() == 0
        assert "refused" not in (tmp_path / "lsp-0.err").read_text()
        # a refused token is told to the user once, and the editor gets no items
        wrong = spawn_lsp("--server-url", f"http://127.0.0.1:{port}", "--token", "wrong")
        wrong.initialize({"debounceMs": 0})
        wrong.open("file:///proj/add.py", source)
        assert wrong.inline("file:///proj/add.py", 1, 11) is None
        assert wrong.inline("file:///proj/add.py", 1, 11) is None
        errors = [m for m in wrong.notifications if m["method"] == "window/showMessage"]
        assert len(errors) == 1 and errors[0]["params"]["type"] == 1 and str(port) in errors[0]["params"]["message"]
    finally:
        serve.terminate()
        serve.wait(20)


def test_the_language_server_modules_import_no_model_code():
    code = (
        "import sys, lsp.__main__, lsp.server, lsp.clients; lsp.server.create_server(); "
        "lsp.clients.HttpClient('http://127.0.0.1:9'); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'repocomplete.engine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_password_in_the_server_url_is_never_echoed_yet_still_sent(spawn_lsp, tmp_path: Path):
    """Issue 21.16: ``window/showMessage`` and the status notification echoed ``serverUrl`` whole."""
    port, password = free_port(), "s3cretPw%21"      # percent-encoded "!", decoded when sent
    log_file = tmp_path / "lsp.log"
    lsp = spawn_lsp("--server-url", f"http://alice:{password}@127.0.0.1:{port}", "--log-level", "DEBUG",
                    "--log-file", str(log_file))
    lsp.initialize({"debounceMs": 0})
    lsp.open("file:///down.py", "x = ")
    assert lsp.inline("file:///down.py", 0, 4) is None          # down: an error message and status
    headers: list[dict[str, str]] = []
    server = serve_json(stand_in, port, headers)
    try:
        (item,) = lsp.inline("file:///down.py", 0, 4)["items"]    # up: the credentials still work
        assert item["insertText"] == "standin()"
    finally:
        server.shutdown()
        server.server_close()
    import base64
    assert headers[-1]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cretPw!").decode()
    stats = lsp.stats()
    assert lsp.shutdown_and_exit() == 0
    shown = [m for m in lsp.notifications if m["method"] in ("window/showMessage", "repocomplete/status", "window/logMessage")]
    assert any(f"127.0.0.1:{port}" in json.dumps(m) for m in shown)       # the URL is shown...
    everything = json.dumps(lsp.notifications) + json.dumps(stats) + log_file.read_text()
    everything += (tmp_path / "lsp-0.err").read_text()
    for secret in ("s3cretPw", "alice:"):
        assert secret not in everything                                     # ...its credentials never
