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
        # the same framing as stdio: a frame declared too long does not silence the server (21.12)
        stats = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "repocomplete/debugStats", "params": {}}).encode()
        sock.sendall(b"Content-Length: %d\r\n\r\n" % (len(stats) + 50) + stats)
        sock.sendall(frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
        answered = {}
        while len(answered) < 2:
            reply = read_message(sock, buffer)
            if reply.get("id") in (2, 3):
                answered[reply["id"]] = reply
        assert "result" in answered[2] and "result" in answered[3]


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


# --- issue 21.6 / 21.7: editor buffers obey the indexer's rules; big buffers cost no more -----

def _edit(lsp, uri: str, version: int, line: int, text: str) -> None:
    lsp.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}},
                            "text": text}],
    })


def test_buffers_outside_the_rules_never_reach_the_index(spawn_lsp, tmp_path):
    """A symlink out of the repository (the review used one to /etc), a secret file, an ignored
    file and an oversized buffer: opened, edited and closed in the editor, none is indexed."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "pkg").mkdir(parents=True)
    outside.mkdir()
    (repo / "pkg" / "ok.py").write_text("def ok():\n    return 1\n")
    (repo / ".gitignore").write_text("build/\n")
    passwd = "root_marker_q7:x:0:0:root:/root:/bin/bash\n"
    (outside / "passwd").write_text(passwd)
    (outside / "tool.py").write_text("def outside_marker_q7():\n    pass\n")
    (repo / "etclink").symlink_to(outside, target_is_directory=True)
    (repo / "pyetc.py").symlink_to(outside / "tool.py")
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"backend": "fake", "debounceMs": 0}, root=repo)
    lsp.wait_notification(status_is("ready"), timeout=60)
    refused = {
        repo / "etclink" / "passwd": passwd,
        repo / "etclink" / "tool.py": "def outside_marker_q7():\n    pass\n",
        repo / "pyetc.py": "def outside_marker_q7():\n    pass\n",
        repo / ".env": "API_KEY=live_marker_q7\n",
        repo / "pkg" / "id_rsa": "secret_marker_q7\n",
        repo / "build" / "gen.py": "def ignored_marker_q7():\n    pass\n",
        repo / "pkg" / "huge.py": "def huge_marker_q7():\n    pass\n" + "x = 1\n" * 200_000,
    }
    for path, text in refused.items():
        lsp.open(path.as_uri(), text)
        _edit(lsp, path.as_uri(), 2, 0, "# edited\n")
    good = (repo / "pkg" / "new.py").as_uri()
    lsp.open(good, "def visible_marker_q7():\n    pass\n")
    assert lsp.inline(good, 1, 4)["items"]                 # flushes every pending buffer
    for path in refused:
        lsp.notify("textDocument/didClose", {"textDocument": {"uri": path.as_uri()}})
    _edit(lsp, good, 2, 0, "# edited\n")
    assert lsp.inline(good, 2, 4)["items"]                 # flushes the closes (re-reading from disk)
    stats = lsp.stats()
    assert lsp.shutdown_and_exit() == 0
    # every buffer refused once (open + edit coalesce), and the three symlinked ones on close too
    assert stats["buffers_skipped"] == len(refused) + 3 and stats["buffers_pushed"] >= 2
    with Workspace(repo, cache_dir=tmp_path / "cache") as index:
        files = index.files()
        assert "pkg/new.py" in files and index.symbols("visible_marker_q7")
        assert not [f for f in files if f.startswith(("etclink", "build")) or f in ("pyetc.py", ".env", "pkg/id_rsa", "pkg/huge.py")]
        stored = [row[0] for row in index.store.conn.execute("SELECT body FROM chunks UNION ALL SELECT name FROM symbols")]
        assert not [text for text in stored if "_marker_q7" in text.replace("visible_marker_q7", "")]


def test_a_keystroke_in_a_buffer_over_the_size_limit_costs_what_one_in_a_small_file_does(spawn_lsp, tmp_path):
    """The review: a 2.5 MB buffer made every completion after a keystroke take 3-6 s (0.03 s small)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"backend": "fake", "debounceMs": 0}, root=repo)
    lsp.wait_notification(status_is("ready"), timeout=60)
    body = "".join(f"def function_{i}(value):\n    return value * {i} + len(str(value))\n\n" for i in range(40_000))
    small_text, big_text = body[:2_000], body[: 2_500_000]
    assert len(big_text.encode()) > 2_400_000

    def keystrokes(name: str, text: str, count: int = 6) -> float:
        uri = (repo / name).as_uri()
        lines = text.count("\n")
        lsp.open(uri, text)
        lsp.inline(uri, lines // 2, 0)                      # the first completion (opening) is not timed
        started = time.perf_counter()
        for version in range(2, 2 + count):
            _edit(lsp, uri, version, lines // 2, f"x{version} = ")
            assert lsp.inline(uri, lines // 2, len(f"x{version} = ")) is not None
        return (time.perf_counter() - started) / count

    small = keystrokes("small.py", small_text)
    big = keystrokes("big.py", big_text)
    stats = lsp.stats()
    assert lsp.shutdown_and_exit() == 0
    print(f"keystroke + completion: small {small * 1000:.1f} ms, 2.5 MB {big * 1000:.1f} ms, ratio {big / small:.2f}")
    assert big < 3 * small + timeout(0.1), f"2.5 MB buffer: {big:.3f} s a keystroke vs {small:.3f} s"
    assert stats["buffers_skipped"] >= 1                     # the big buffer was never indexed
    with Workspace(repo, cache_dir=tmp_path / "cache") as index:
        assert "big.py" not in index.files() and "small.py" in index.files()
