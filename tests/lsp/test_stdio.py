"""End to end over stdio: a JSON-RPC client drives the real `python -m repocomplete lsp` process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repocomplete.backends.fake import FakeBackend
from repocomplete.engine import Engine
from repocomplete.events import EventStore
from repocomplete.types import CompletionRequest, Segments
from tests.lsp.conftest import FAKE_TEXT, fake_env
from tests.lsp.jsonrpc import LspProcess, frame
from tests.lsp.test_documents import PIECES, reference_position, valid_offsets

SOURCE = "import os\r\n\r\ndef add(value😀):\r\n    return "
URI = "file:///project/pkg/add.py"


def engine_text(prefix: str, suffix: str, filepath: str) -> str:
    """What the engine itself completes for this text (the baseline the server must match)."""
    engine = Engine(FakeBackend(FAKE_TEXT))
    request = CompletionRequest(segments=Segments(prefix=prefix, suffix=suffix, filepath=filepath), language="python")
    return engine.complete(request).choices[0].text


def end_of(text: str) -> tuple[int, int]:
    return reference_position(text, len(text), "utf-16")


def change(lsp: LspProcess, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    rng = {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}
    lsp.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": rng, "text": text}]})


def test_initialize_advertises_inline_completion_incremental_sync_and_commands(fake_lsp):
    capabilities = fake_lsp.capabilities["capabilities"]
    assert "inlineCompletionProvider" in capabilities
    assert "completionProvider" not in capabilities  # the fallback is only for clients without ghost text
    assert capabilities["textDocumentSync"]["change"] == 2  # incremental
    assert capabilities["positionEncoding"] == "utf-16"
    assert {"repocomplete.accept", "repocomplete.dismiss"} <= set(capabilities["executeCommandProvider"]["commands"])
    assert fake_lsp.wait_notification(lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] == "ready")


def test_inline_completion_matches_the_engine_and_typing_through_uses_the_cache(fake_lsp):
    fake_lsp.open(URI, SOURCE + "\r\n")
    line, character = end_of(SOURCE)
    result = fake_lsp.inline(URI, line, character)
    expected = engine_text(SOURCE, "\r\n", "/project/pkg/add.py")
    (item,) = result["items"]
    assert expected and item["insertText"] == expected
    assert item["range"]["start"] == item["range"]["end"] == {"line": line, "character": character}
    calls = fake_lsp.stats()["model_calls"]
    # type the first two characters of the suggestion: the rest comes from the cache
    change(fake_lsp, URI, 2, (line, character), (line, character), expected[:2])
    again = fake_lsp.inline(URI, line, character + 2)
    assert again["items"][0]["insertText"] == expected[2:]
    stats = fake_lsp.stats()
    assert stats["model_calls"] == calls and stats["cache_hits"] >= 1


def test_completion_fallback_carries_the_completion_in_one_item(spawn_lsp):
    lsp = spawn_lsp()
    capabilities = lsp.initialize({"backend": "fake", "debounceMs": 0}, inline=False)["capabilities"]
    assert "completionProvider" in capabilities
    text = "total = add(1)\nresult = tot"
    lsp.open("file:///project/fallback.py", text)
    line, character = end_of(text)
    result = lsp.request(
        "textDocument/completion", {"textDocument": {"uri": "file:///project/fallback.py"}, "position": {"line": line, "character": character}}
    )
    (item,) = result["items"]
    expected = engine_text(text, "", "/project/fallback.py")
    assert item["textEdit"]["newText"] == "tot" + expected
    assert item["textEdit"]["range"]["start"] == {"line": line, "character": character - 3}
    assert item["command"]["command"] == "repocomplete.accept"


def test_accept_and_dismiss_commands_are_recorded_as_events(fake_lsp):
    fake_lsp.open("file:///project/accept.py", "x = ")
    (item,) = fake_lsp.inline("file:///project/accept.py", 0, 4)["items"]
    command = item["command"]
    fake_lsp.request("workspace/executeCommand", {"command": command["command"], "arguments": command["arguments"]})
    fake_lsp.request("workspace/executeCommand", {"command": "repocomplete.dismiss", "arguments": command["arguments"]})
    rows = EventStore(fake_lsp.cache_dir / "events.sqlite").recent()[::-1]  # the store the server uses too
    completion_id = command["arguments"][0]["completion_id"]
    mine = [row for row in rows if row["completion_id"] == completion_id]
    assert [row["type"] for row in mine] == ["view", "select", "dismiss"]
    assert mine[1]["accepted_chars"] == len(item["insertText"])


def test_malformed_messages_get_json_rpc_errors_and_the_server_stays_up(fake_lsp):
    fake_lsp.send_raw(frame(b'{"jsonrpc": "2.0", "id": 1, "method": '))  # invalid JSON
    fake_lsp.send_raw(frame({"jsonrpc": "2.0", "id": "bad-params", "method": "textDocument/inlineCompletion", "params": {"x": 1}}))
    assert fake_lsp.wait_response(None)["error"]["code"] == -32700
    assert fake_lsp.wait_response("bad-params")["error"]["code"] == -32602
    fake_lsp.send_raw(frame(b"[1, 2, 3]"))  # a batch of things that are not JSON-RPC messages at all
    assert [answer["error"]["code"] for answer in fake_lsp.wait_batch()] == [-32600] * 3
    fake_lsp.send_raw(frame(b'"just a string"'))
    assert fake_lsp.wait_response(None)["error"]["code"] == -32600
    unknown = fake_lsp.wait_response(fake_lsp.send_request("no/suchMethod", {}))
    assert unknown["error"]["code"] == -32601
    assert fake_lsp.stats()["documents"] >= 0 and fake_lsp.proc.poll() is None


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.lists(st.sampled_from(PIECES), max_size=6).map("".join)), min_size=20, max_size=30))
def test_random_edits_over_stdio_keep_the_servers_text_identical(fake_lsp, edits):
    """A few hundred random incremental edits (emoji, surrogate pairs, CRLF) through the real process."""
    uri = f"file:///project/random-{time.monotonic_ns()}.py"
    client = "a😀\r\nb"
    fake_lsp.open(uri, client)
    for version, (a, b, inserted) in enumerate(edits, start=2):
        offsets = valid_offsets(client)
        start, end = sorted((offsets[a % len(offsets)], offsets[b % len(offsets)]))
        change(fake_lsp, uri, version, reference_position(client, start, "utf-16"), reference_position(client, end, "utf-16"), inserted)
        client = client[:start] + inserted + client[end:]
        assert fake_lsp.request("repocomplete/documentText", {"uri": uri}) == {"text": client, "version": version}
    fake_lsp.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


def test_utf8_positions_when_the_client_negotiates_them(spawn_lsp):
    lsp = spawn_lsp()
    result = lsp.initialize({"backend": "fake", "debounceMs": 0}, encodings=["utf-8", "utf-16"])
    assert result["capabilities"]["positionEncoding"] == "utf-8"
    lsp.open("file:///u8.py", "s = '😀é'\n")
    change(lsp, "file:///u8.py", 2, (0, 9), (0, 11), "e")  # bytes: "s = '" is 5, 😀 is 4, é is 2
    assert lsp.request("repocomplete/documentText", {"uri": "file:///u8.py"})["text"] == "s = '😀e'\n"
    assert lsp.shutdown_and_exit() == 0


def test_a_burst_of_50_cancelled_requests_does_no_model_work(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 300})
    lsp.wait_notification(lambda m: m["params"].get("state") == "ready" if m["method"] == "repocomplete/status" else False)
    lsp.open("file:///burst.py", "def f():\n    return ")
    before = lsp.stats()
    ids = []
    for i in range(50):
        ids.append(lsp.send_request("textDocument/inlineCompletion", {
            "textDocument": {"uri": "file:///burst.py"}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 2}}))
        lsp.notify("$/cancelRequest", {"id": ids[-1]})
    responses = [lsp.wait_response(i) for i in ids]
    assert all(r.get("error", {}).get("code") == -32800 for r in responses), responses[:3]  # RequestCancelled
    after = lsp.stats()
    assert after["model_calls"] == before["model_calls"] and after["backend_requests"] == before["backend_requests"]
    # the next, uncancelled request is served, and is the only model call
    assert lsp.inline("file:///burst.py", 1, 11)["items"]
    assert lsp.stats()["backend_requests"] == before["backend_requests"] + 1
    assert lsp.shutdown_and_exit() == 0


def test_settings_turn_completion_off_per_language_and_back_on(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 0, "languages": {"markdown": False}})
    lsp.open("file:///notes.md", "# Title\nSome ", language="markdown")
    lsp.open("file:///code.py", "x = ")
    assert lsp.inline("file:///notes.md", 1, 5) is None
    assert lsp.inline("file:///code.py", 0, 4)["items"]
    lsp.notify("workspace/didChangeConfiguration", {"settings": {"repocomplete": {"enable": False}}})
    assert lsp.inline("file:///code.py", 0, 4) is None
    statuses = [m["params"]["state"] for m in lsp.notifications if m["method"] == "repocomplete/status"]
    assert statuses[-1] == "disabled"
    lsp.notify("workspace/didChangeConfiguration", {"settings": {"repocomplete": {"enable": True}}})
    assert lsp.inline("file:///code.py", 0, 4)["items"]
    statuses = [m["params"]["state"] for m in lsp.notifications if m["method"] == "repocomplete/status"]
    assert statuses[-1] == "ready"  # the backend's own state comes back
    assert lsp.shutdown_and_exit() == 0


def test_exit_codes_shutdown_exit_without_shutdown_and_end_of_input(spawn_lsp):
    clean = spawn_lsp()
    clean.initialize({"backend": "fake"})
    assert clean.shutdown_and_exit() == 0
    rude = spawn_lsp()
    rude.initialize({"backend": "fake"})
    rude.notify("exit", None)
    assert rude.wait_exit() == 1
    eof = spawn_lsp()
    eof.initialize({"backend": "fake"})
    eof.proc.stdin.close()
    started = time.monotonic()
    assert eof.proc.wait(20) == 0 and time.monotonic() - started < 20


def test_nothing_but_protocol_reaches_stdout(spawn_lsp, tmp_path: Path):
    lsp = spawn_lsp("--log-level", "DEBUG", "--log-file", str(tmp_path / "lsp.log"))
    lsp.initialize({"backend": "fake", "debounceMs": 0})
    lsp.open("file:///x.py", "print(")
    lsp.inline("file:///x.py", 0, 6)
    assert lsp.shutdown_and_exit() == 0
    assert lsp.unparsed == [] and (tmp_path / "lsp.log").read_text()


def test_debounce_lets_only_the_last_keystroke_reach_the_model(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 200})
    lsp.wait_notification(lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] == "ready")
    lsp.open("file:///typing.py", "value = compute(")
    before = lsp.stats()["backend_requests"]
    params = {"textDocument": {"uri": "file:///typing.py"}, "context": {"triggerKind": 2}}
    first = lsp.send_request("textDocument/inlineCompletion", {**params, "position": {"line": 0, "character": 15}})
    second = lsp.send_request("textDocument/inlineCompletion", {**params, "position": {"line": 0, "character": 16}})
    assert lsp.wait_response(first)["result"] is None  # superseded by the newer keystroke
    assert lsp.wait_response(second)["result"]["items"]
    stats = lsp.stats()
    assert stats["backend_requests"] == before + 1 and stats["superseded"] == 1
    assert lsp.shutdown_and_exit() == 0


def test_cancelling_during_generation_answers_at_once(spawn_lsp, tmp_path):
    # 64 characters at 0.1 s each: an uncancelled generation would take over 6 seconds
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache", REPOCOMPLETE_FAKE_DELAY_S="0.1", REPOCOMPLETE_FAKE_TEXT="x" * 80))
    lsp.initialize({"backend": "fake", "debounceMs": 0, "mode": "line"})
    lsp.wait_notification(lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] == "ready")
    lsp.open("file:///slow.py", "y = ")
    msg_id = lsp.send_request("textDocument/inlineCompletion", {
        "textDocument": {"uri": "file:///slow.py"}, "position": {"line": 0, "character": 4}, "context": {"triggerKind": 2}})
    time.sleep(0.5)
    started = time.monotonic()
    lsp.notify("$/cancelRequest", {"id": msg_id})
    assert lsp.wait_response(msg_id)["error"]["code"] == -32800
    assert time.monotonic() - started < 2.0
    assert lsp.shutdown_and_exit() == 0


def test_unknown_methods_are_answered_without_warnings_in_the_log(spawn_lsp, tmp_path: Path):
    """Editors send optional methods (``$/setTrace``, watched files); the log must not call them problems."""
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 0})
    lsp.notify("$/setTrace", {"value": "off"})
    lsp.notify("workspace/didChangeWatchedFiles", {"changes": []})
    assert lsp.wait_response(lsp.send_request("no/suchMethod", {}))["error"]["code"] == -32601
    assert lsp.shutdown_and_exit() == 0
    log = (tmp_path / "lsp-0.err").read_text()
    assert "unknown method" not in log and "WARNING" not in log and "ERROR" not in log, log


def test_a_bad_accept_command_is_an_invalid_params_error_and_the_server_stays_up(fake_lsp):
    from lsp.errors import INVALID_PARAMS

    msg_id = fake_lsp.send_request("workspace/executeCommand",
                                   {"command": "repocomplete.accept", "arguments": [{"choice_index": "first"}]})
    error = fake_lsp.wait_response(msg_id)["error"]
    assert error["code"] == INVALID_PARAMS and error["data"] == {"type": "invalid_request"}
    assert "integers" in error["message"] and "Traceback" not in error["message"]
    assert fake_lsp.request("repocomplete/debugStats")["status"]


# --- issue 21.12: a wrong Content-Length and a batch no longer silence the server -------------

def _body(msg_id, method: str = "repocomplete/debugStats") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": {}}).encode()


def test_a_frame_with_a_wrong_content_length_is_survived_and_shutdown_is_still_answered(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake"})
    too_long = _body("too-long")
    lsp.send_raw(b"Content-Length: %d\r\n\r\n" % (len(too_long) + 100) + too_long)
    # the client, waiting for an answer that pygls would never give, sends its next request
    assert "documents" in lsp.request("repocomplete/debugStats", {}, timeout=30)
    assert lsp.wait_response("too-long", timeout=30)["result"]["documents"] == 0
    # declared too long, with the next frame already behind it in the same write
    lsp.send_raw(b"Content-Length: %d\r\n\r\n" % (len(too_long) + 40) + too_long + frame(_body("behind")))
    assert "result" in lsp.wait_response("too-long", timeout=30) and "result" in lsp.wait_response("behind", timeout=30)
    too_short = _body("too-short")
    lsp.send_raw(b"Content-Length: %d\r\n\r\n" % (len(too_short) - 10) + too_short)
    assert lsp.wait_response(None, timeout=30)["error"]["code"] == -32700   # the truncated body
    assert "documents" in lsp.request("repocomplete/debugStats", {}, timeout=30)
    assert lsp.shutdown_and_exit() == 0


def test_a_json_rpc_batch_is_answered_not_dropped(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake"})
    batch = b"[" + _body(7) + b", " + _body("eight", "shutdown") + b', {"jsonrpc": "2.0", "method": "initialized"}]'
    lsp.send_raw(frame(batch))
    answers = lsp.wait_batch(timeout=30)
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(7, -32600), ("eight", -32600)]
    assert "batches" in answers[0]["error"]["message"]
    lsp.send_raw(frame(b"[]"))
    assert lsp.wait_response(None, timeout=30)["error"]["code"] == -32600
    assert lsp.shutdown_and_exit() == 0   # the batch's shutdown was not run
