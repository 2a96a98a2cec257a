"""In-process mode on a real repository: background indexing, live buffers in the index, TCP."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from indexer.workspace import Workspace
from tests.processes import timeout
from tests.lsp.conftest import fake_env
from tests.lsp.jsonrpc import frame

STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def status_is(state: str):
    return lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] == state


def test_completions_work_while_the_workspace_is_still_indexing(spawn_lsp, tmp_path):
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"backend": "fake", "debounceMs": 0}, root=STDLIB)  # thousands of files: indexing takes a while
    lsp.wait_notification(status_is("indexing"))
    uri = (STDLIB / "textwrap.py").as_uri()
    lsp.open(uri, (STDLIB / "textwrap.py").read_text()[:2000])
    result = lsp.inline(uri, 10, 0)
    stats = lsp.stats()
    assert result["items"] and stats["indexed"] is False and stats["status"] == "indexing"
    assert lsp.shutdown_and_exit() == 0


def test_unsaved_buffers_reach_the_index(spawn_lsp, tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "shapes.py").write_text("def area(w, h):\n    return w * h\n")
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"backend": "fake", "debounceMs": 0}, root=repo)
    lsp.wait_notification(status_is("ready"), timeout=60)
    uri = (repo / "pkg" / "shapes.py").as_uri()
    lsp.open(uri, "def area(w, h):\n    return w * h\n")
    lsp.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 0}},
                            "text": "\ndef perimeter_unsaved(w, h):\n    return 2 * (w + h)\n"}],
    })
    assert lsp.inline(uri, 0, 4)["items"]  # buffers are pushed before the model is asked
    assert lsp.stats()["buffers_pushed"] >= 1
    with Workspace(repo, cache_dir=tmp_path / "cache") as index:
        assert [s["path"] for s in index.symbols("perimeter_unsaved")] == ["pkg/shapes.py"]
    lsp.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    lsp.open((repo / "other.py").as_uri(), "x = ")
    lsp.inline((repo / "other.py").as_uri(), 0, 4)  # flushes the close: the saved file is the truth again
    with Workspace(repo, cache_dir=tmp_path / "cache") as index:
        assert index.symbols("perimeter_unsaved") == [] and index.symbols("area")
    assert lsp.shutdown_and_exit() == 0


def read_message(sock: socket.socket, buffer: bytearray) -> dict:
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    header, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(65536)
    buffer[:] = rest[length:]
    return json.loads(rest[:length])


def test_tcp_mode_serves_the_same_protocol(spawn_lsp, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lsp = spawn_lsp("--tcp", str(port), env=fake_env(tmp_path / "cache"))
    deadline = time.monotonic() + timeout(30)
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            break
        except OSError:
            assert time.monotonic() < deadline and lsp.proc.poll() is None
            time.sleep(0.1)
    with sock:
        sock.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {"backend": "fake"}}}))
        buffer = bytearray()
        reply = read_message(sock, buffer)
        while reply.get("id") != 1:
            reply = read_message(sock, buffer)
        assert "inlineCompletionProvider" in reply["result"]["capabilities"]


def test_a_model_that_cannot_load_is_one_error_message_and_no_items(spawn_lsp, tmp_path):
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"model": str(tmp_path / "no-such-model"), "backend": "transformers", "debounceMs": 0})
    error = lsp.wait_notification(status_is("error"), timeout=120)
    assert "no-such-model" in error["params"]["message"]
    lsp.open("file:///x.py", "x = ")
    assert lsp.inline("file:///x.py", 0, 4) is None and lsp.inline("file:///x.py", 0, 4) is None
    shown = [m for m in lsp.notifications if m["method"] == "window/showMessage"]
    assert len(shown) == 1 and shown[0]["params"]["type"] == 1
    assert lsp.shutdown_and_exit() == 0
