"""Fast unit tests: Tabby's recorded bodies against our schemas, the guard's parsers, limiter, event store."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from repocomplete.errors import OverloadedError
from repocomplete.events import EventStore
from server.app import create_app
from server.auth import bearer_token, host_name, token_is_valid
from server.errors import QueueTimeoutError, http_status
from server.limits import Limiter
from server.mapping import completion_request
from server.schemas import CompletionIn, EventIn, SegmentsIn
from server.settings import ServerSettings, is_loopback

FIXTURES = Path(__file__).parent / "fixtures" / "tabby"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name", ["completion_lsp.json", "completion_full_context.json"])
def test_tabby_completion_bodies_validate_and_lose_nothing(name):
    body = fixture(name)
    assert set(body["segments"]) <= set(SegmentsIn.model_fields), "a field Tabby sends would be ignored"
    request = completion_request(CompletionIn.model_validate(body), ServerSettings())
    segments = body["segments"]
    assert request.language == body["language"]
    assert (request.segments.prefix, request.segments.suffix) == (segments["prefix"], segments["suffix"])
    assert request.segments.filepath == segments.get("filepath")
    assert request.segments.git_url == segments.get("git_url")
    assert request.segments.clipboard == segments.get("clipboard")
    assert [d.body for d in request.segments.declarations] == [d["body"] for d in segments.get("declarations", [])]
    changed = segments.get("relevant_snippets_from_changed_files", [])
    assert [(s.filepath, s.body, s.score) for s in request.segments.snippets] == [(s["filepath"], s["body"], s["score"]) for s in changed]


@pytest.mark.parametrize("name", ["event_view.json", "event_select.json"])
def test_tabby_event_bodies_validate(name):
    recorded = fixture(name)
    event = EventIn.model_validate(recorded["body"])
    assert event.model_dump(exclude_none=True) == {**recorded["body"], "choice_index": recorded["body"]["choice_index"]}


def test_every_route_the_agent_called_exists():
    documented = create_app(ServerSettings()).openapi()["paths"]
    for call in json.loads((FIXTURES / "requests.json").read_text()):
        method, _, url = call.partition(" ")
        assert method.lower() in documented.get(url.partition("?")[0], {}), call


def test_tabby_raw_prompt_replaces_segments():
    body = CompletionIn.model_validate({"segments": {"prefix": "ignored"}, "debug_options": {"raw_prompt": "<raw>"}})
    request = completion_request(body, ServerSettings())
    assert request.segments.prefix == "<raw>" and request.debug_options.raw_prompt


@pytest.mark.parametrize(("header", "name"), [("127.0.0.1:8765", "127.0.0.1"), ("LocalHost", "localhost"),
                                              ("[::1]:80", "[::1]"), ("evil.com:8765", "evil.com"), ("", "")])
def test_host_name(header, name):
    assert host_name(header) == name


def test_bearer_tokens():
    assert bearer_token("Bearer abc ") == "abc" and bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None
    assert token_is_valid("b", ["a", "b"]) and not token_is_valid("c", ["a", "b"]) and not token_is_valid(None, ["a"])


def test_loopback_settings():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert ServerSettings(host="0.0.0.0").host_allowlist() is None
    assert "localhost" in ServerSettings().host_allowlist()
    assert ServerSettings(host="0.0.0.0", allowed_hosts=["Box.lan"]).host_allowlist() == {"box.lan"}


def test_limiter_queues_then_refuses_then_times_out():
    async def scenario():
        limiter = Limiter(max_concurrency=1, max_queue=1, timeout_s=0.3)
        release = threading.Event()
        first = asyncio.ensure_future(limiter.call(release.wait, cancel=threading.Event(), receive=_never, deadline=time.monotonic() + 5))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(limiter.acquire(time.monotonic() + 0.2))
        await asyncio.sleep(0.05)
        assert (limiter.running, limiter.waiting) == (1, 1)
        with pytest.raises(OverloadedError) as refused:
            await limiter.acquire(time.monotonic() + 1)
        assert http_status(refused.value) == 429 and refused.value.retry_after_s >= 1
        with pytest.raises(QueueTimeoutError):
            await queued
        release.set()
        assert await first is True
        await asyncio.sleep(0.05)
        assert (limiter.running, limiter.waiting) == (0, 0)
        limiter.shutdown()

    asyncio.run(scenario())


async def _never():
    await asyncio.sleep(3600)


def test_a_request_stops_ahead_of_time_work_and_takes_its_slot():
    async def scenario():
        limiter = Limiter(max_concurrency=1, max_queue=1, timeout_s=5)
        stop, started = threading.Event(), threading.Event()

        def prefill() -> str:  # ahead-of-time work: runs until told to stop, then says how far it got
            started.set()
            return "stopped early" if stop.wait(30) else "ran to the end"

        ahead = asyncio.ensure_future(limiter.prefetch(prefill, cancel=stop, receive=_never, deadline=time.monotonic() + 30))
        while not started.is_set():
            await asyncio.sleep(0.01)
        # the only slot is taken by ahead-of-time work: a second prefetch does not wait for it
        assert await limiter.prefetch(lambda: "ran", cancel=threading.Event(), receive=_never,
                                      deadline=time.monotonic() + 30) is None
        answer = await limiter.call(lambda: "answered", cancel=threading.Event(), receive=_never,
                                    deadline=time.monotonic() + 5)
        assert answer == "answered" and await ahead == "stopped early"
        await asyncio.sleep(0)
        assert (limiter.running, limiter.waiting) == (0, 0)
        limiter.shutdown()

    asyncio.run(scenario())


def test_event_store_acceptance_rate(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    for event in ({"type": "view", "completion_id": "a"}, {"type": "view", "completion_id": "a"},
                  {"type": "view", "completion_id": "b"}, {"type": "partial", "completion_id": "b", "accepted_chars": 3},
                  {"type": "dismiss", "completion_id": "a"}):
        store.add(event)
    assert store.acceptance_rate() == 0.5
    assert store.counts() == {"view": 3, "partial": 1, "dismiss": 1}
    assert store.recent(1)[0]["type"] == "dismiss"
    store.close()


def test_events_db_defaults_to_the_cache_dir_the_environment_names(monkeypatch, tmp_path):
    from server.settings import ServerSettings

    monkeypatch.setenv("REPOCOMPLETE_CACHE_DIR", str(tmp_path / "cache"))
    assert ServerSettings().events_path() == tmp_path / "cache" / "events.sqlite"
    assert ServerSettings(events_db=str(tmp_path / "e.db")).events_path() == tmp_path / "e.db"


@pytest.mark.parametrize(("path", "why"), [
    ("/", "the filesystem root"), ("/home/alice", "a home directory"), ("/home", "a folder holding home directories"),
    ("/home/alice/src", None), ("/srv/repo", None), ("/homes", None),
])
def test_forbidden_workspace_roots(path, why):
    from server.paths import forbidden_root

    assert forbidden_root(Path(path), [Path("/home/alice"), Path("/")]) == why


@pytest.mark.parametrize("value", ["a\x00b", "/tmp/\x1b[2J", "x" * 5000, "tab\there"])
def test_path_text_with_control_characters_or_too_long_is_refused(value):
    from repocomplete.errors import InvalidRequestError
    from server.paths import check_text

    with pytest.raises(InvalidRequestError):
        check_text(value, "root")


@pytest.mark.parametrize(("value", "normalised"), [
    (None, None), ("pkg/mod.py", "pkg/mod.py"), ("~user.py", "~user.py"), ("/srv//repo/./a/../b.py", "/srv/repo/b.py"),
])
def test_filepaths_are_normalised_labels(value, normalised):
    from server.paths import PathPolicy

    assert PathPolicy.filepath(value) == normalised


@pytest.mark.parametrize(("text", "public"), [
    ("/work/dl/qwen-0.5b-hf", "qwen-0.5b-hf"), ("tiny model (/root/.cache/rc/tiny)", "tiny model (tiny)"),
    ("qwen at http://127.0.0.1:8000/v1", "qwen at http://127.0.0.1:8000/v1"), ("~/models/x", "x"), ("fake", "fake"),
    ("a/b", "a/b"),
])
def test_health_texts_lose_server_paths(text, public):
    from server.routers.health import without_paths

    assert without_paths(text) == public


def test_debug_output_needs_admin_and_segments_are_required():
    from repocomplete.errors import InvalidRequestError
    from server.errors import ForbiddenError

    debug = CompletionIn.model_validate({"segments": {"prefix": "x"}, "debug_options": {"return_snippets": True}})
    with pytest.raises(ForbiddenError):
        completion_request(debug, ServerSettings())
    assert completion_request(debug, ServerSettings(), admin=True).debug_options.return_snippets
    with pytest.raises(InvalidRequestError, match="segments is required"):
        completion_request(CompletionIn.model_validate({"language": "python"}), ServerSettings())


def test_every_error_type_has_one_http_status():
    import repocomplete.errors as engine_errors
    import server.errors as server_errors

    for module in (engine_errors, server_errors):
        for error in vars(module).values():
            if isinstance(error, type) and issubclass(error, engine_errors.RepocompleteError):
                status = http_status(error("x") if error is not engine_errors.OverloadedError else error("x", 1.0))
                assert 400 <= status < 600 and error.error_type
    assert http_status(engine_errors.WorkspaceBusyError("x")) == 409
    assert http_status(server_errors.UnknownAdapterError("x")) == 404  # inherits AdapterError's row
