"""The server end to end: a real uvicorn process, spoken to over HTTP."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx
import pytest

from repocomplete.backends.fake import FakeBackend
from repocomplete.engine import Engine
from repocomplete.types import CompletionRequest, Segments
from tests.processes import timeout, wait_for
from tests.server.conftest import FAKE_TEXT

PREFIX = "def add_offset(values, offset):\n    total = sum(values)\n    "
BODY = {"language": "python", "segments": {"prefix": PREFIX, "suffix": "\n", "filepath": "calc.py"}}


def in_process_text(prefix: str, suffix: str = "\n") -> str:
    """What the engine itself answers for the same request (the reference for the server)."""
    engine = Engine(FakeBackend(FAKE_TEXT))
    return engine.complete(CompletionRequest(Segments(prefix, suffix, filepath="calc.py"), language="python")).choices[0].text


def sse_payloads(response: httpx.Response) -> list:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_completion_is_the_engines_answer_in_tabbys_shape(shared_server):
    with shared_server.client() as http:
        reply = http.post("/v1/completions", json=BODY)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["id"].startswith("cmpl-")
    assert [c["index"] for c in data["choices"]] == [0]
    assert data["choices"][0]["text"] == in_process_text(PREFIX) != ""
    assert set(data["timings"]) == {"retrieval_ms", "prompt_ms", "generate_ms", "total_ms"}


def test_streamed_requests_feed_the_stage_histograms(shared_server):
    count = shared_server.metric("repocomplete_stage_seconds_count", stage="generation")
    tokens = shared_server.metric("repocomplete_generated_tokens_total")
    with shared_server.client() as http:
        with http.stream("POST", "/v1/completions", json={**BODY, "stream": True}) as response:
            body = "".join(response.iter_text())
    assert response.status_code == 200 and "[DONE]" in body
    assert shared_server.metric("repocomplete_stage_seconds_count", stage="generation") == count + 1
    assert shared_server.metric("repocomplete_generated_tokens_total") > tokens


def test_streaming_deltas_add_up_to_the_plain_answer(shared_server):
    with shared_server.client() as http, http.stream("POST", "/v1/completions", json={**BODY, "stream": True}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        payloads = sse_payloads(reply)
    assert payloads[-1] == "[DONE]"
    frames = [json.loads(p) for p in payloads[:-1]]
    assert len({f["id"] for f in frames}) == 1
    assert "".join(f["choices"][0]["text"] for f in frames) == in_process_text(PREFIX)


def test_debug_options_return_prompt_to_an_admin_and_tabby_raw_prompt(serve):
    served = serve("--admin-token", "adm", env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    served.headers["Authorization"] = "Bearer adm"
    debug_body = {**BODY, "debug_options": {"return_prompt": True, "return_snippets": True}}
    with served.client() as http:
        debug = http.post("/v1/completions", json=debug_body).json()
        raw = http.post("/v1/completions", json={"debug_options": {"raw_prompt": "print("}}).json()
    assert PREFIX in debug["debug_data"]["prompt"]
    assert debug["debug_data"]["snippets"] == []
    assert raw["choices"][0]["text"]


def test_health_has_tabbys_fields_on_get_and_post(shared_server):
    for method in ("GET", "POST"):
        health = httpx.request(method, f"{shared_server.url}/v1/health").json()
        for key in ("model", "device", "arch", "cpu_info", "cpu_count", "cuda_devices", "adapters", "workspaces", "uptime_s"):
            assert key in health, key
        assert set(health["version"]) >= {"build_date", "git_sha", "git_describe"}
    setting = httpx.get(f"{shared_server.url}/v1beta/server_setting").json()
    assert setting == {"disable_client_side_telemetry": False}


def test_events_are_stored_and_feed_the_acceptance_rate(serve):
    served = serve()
    with served.client() as http:
        for event in ({"type": "view", "completion_id": "c1", "choice_index": 0},
                      {"type": "view", "completion_id": "c2", "choice_index": 0, "view_id": "v2"},
                      {"type": "select", "completion_id": "c2", "choice_index": 0, "elapsed": 812}):
            assert http.post("/v1/events", json=event).status_code == 200
        assert http.post("/v1/events?select_kind=line", json={"type": "select", "completion_id": "c2"}).status_code == 200
    rows = sqlite3.connect(served.events_db).execute("SELECT type, completion_id, elapsed_ms, select_kind FROM events").fetchall()
    assert rows == [("view", "c1", None, None), ("view", "c2", None, None), ("select", "c2", 812, None), ("select", "c2", None, "line")]
    assert served.metric("repocomplete_acceptance_rate") == pytest.approx(0.5)
    assert served.metric("repocomplete_events_total", type="select") == 2


def test_metrics_count_requests_by_route_and_status_and_time_stages(shared_server):
    with shared_server.client() as http:
        before = shared_server.metric("repocomplete_requests_total", route="/v1/completions", method="POST", status="200")
        http.post("/v1/completions", json=BODY)
        http.post("/v1/completions", json={"segments": "not an object"})
    assert shared_server.metric("repocomplete_requests_total", route="/v1/completions", method="POST", status="200") == before + 1
    assert shared_server.metric("repocomplete_requests_total", route="/v1/completions", method="POST", status="422") >= 1
    for stage in ("retrieval", "prompt", "generation"):
        assert shared_server.metric("repocomplete_stage_seconds_count", stage=stage) >= 1
    assert shared_server.metric("repocomplete_generated_tokens_total") > 0


@pytest.mark.parametrize(("request_kwargs", "status", "error_type"), [
    ({"json": {**BODY, "workspace": "nowhere"}}, 404, "workspace_not_found"),
    ({"json": {**BODY, "adapter": "nope"}}, 404, "adapter_error"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
    ({"json": {**BODY, "max_tokens": 10**9}}, 400, "invalid_request"),
    ({"json": {**BODY, "temperature": -1}}, 422, "invalid_request"),
])
def test_client_errors_have_one_shape(shared_server, request_kwargs, status, error_type):
    with shared_server.client() as http:
        reply = http.post("/v1/completions", **request_kwargs)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["type"] == error_type
    assert reply.json()["error"]["message"]


def test_unknown_route_and_method_have_the_error_shape(shared_server):
    assert httpx.get(f"{shared_server.url}/v2/nothing").json()["error"]["type"] == "not_found"
    assert httpx.get(f"{shared_server.url}/v1/completions").json()["error"]["type"] == "method_not_allowed"


def test_tabby_fields_are_tolerated_and_unknown_ones_ignored(serve):
    served = serve("--admin-token", "adm", env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    body = {"language": "python", "user": "me", "seed": 7, "mode": "line", "future_field": {"x": 1},
            "segments": {"prefix": PREFIX, "suffix": "", "git_url": "https://github.com/a/b.git", "clipboard": "clip",
                         "declarations": [{"filepath": "util.py", "body": "def helper(): ..."}],
                         "relevant_snippets_from_changed_files": [{"filepath": "x.py", "body": "x = 1", "score": 0.3}],
                         "another_future_field": True},
            "debug_options": {"disable_retrieval_augmented_code_completion": True, "return_prompt": True}}
    reply = httpx.post(f"{served.url}/v1/completions", json=body, timeout=30, headers={"Authorization": "Bearer adm"})
    assert reply.status_code == 200, reply.text
    prompt = reply.json()["debug_data"]["prompt"]
    assert "def helper(): ..." in prompt and "x = 1" in prompt


def test_body_and_prompt_limits(serve):
    served = serve(env={"REPOCOMPLETE_MAX_BODY_BYTES": "4000", "REPOCOMPLETE_MAX_PROMPT_CHARS": "1000"})
    with served.client() as http:
        big_body = http.post("/v1/completions", json={"segments": {"prefix": "x" * 5000}})
        big_prompt = http.post("/v1/completions", json={"segments": {"prefix": "x" * 900, "suffix": "y" * 200}})
        chunked = http.post("/v1/completions", content=iter([b'{"segments": {"prefix": "', b"x" * 5000, b'"}}']),
                            headers={"content-type": "application/json"})
    for reply in (big_body, big_prompt, chunked):
        assert reply.status_code == 413, reply.text
        assert reply.json()["error"]["type"] == "request_too_large"
    assert "1100" in big_prompt.json()["error"]["message"]


def test_foreign_host_headers_are_refused(shared_server):
    for host in ("evil.example:8765", "attacker.test"):
        reply = httpx.get(f"{shared_server.url}/v1/health", headers={"Host": host})
        assert reply.status_code == 403
        assert reply.json()["error"]["type"] == "host_not_allowed"
    assert httpx.get(f"{shared_server.url}/v1/health", headers={"Host": "localhost:1234"}).status_code == 200


def test_tokens_guard_every_route_but_health_and_never_reach_the_log(serve):
    token = "s3cret-token-for-the-test"
    served = serve(token=token, env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    url = served.url
    assert httpx.get(f"{url}/v1/health").status_code == 200
    for method, path in (("POST", "/v1/completions"), ("POST", "/v1/prefetch"), ("POST", "/v1/events"), ("GET", "/metrics"),
                         ("GET", "/v1/workspaces"), ("GET", "/openai/v1/models"), ("GET", "/nothing")):
        reply = httpx.request(method, f"{url}{path}", json=BODY)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.json()["error"]["type"] == "unauthorized"
        wrong = httpx.request(method, f"{url}{path}", json=BODY, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    ok = httpx.post(f"{url}/v1/completions", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    served.stop()
    assert token not in served.output()


def test_overload_answers_429_with_retry_after_fast(serve):
    served = serve("--max-concurrency", "1", "--max-queue", "1", env=SLOW_ENV)
    results: list[httpx.Response] = []
    body = {**SLOW_BODY, "max_tokens": 120}  # ~1.2 s each

    def slow_request():
        results.append(httpx.post(f"{served.url}/v1/completions", json=body, timeout=60))

    threads = [threading.Thread(target=slow_request) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # first runs, second queues
    started = time.monotonic()
    reply = httpx.post(f"{served.url}/v1/completions", json=body, timeout=60)
    elapsed = time.monotonic() - started
    assert reply.status_code == 429, reply.text
    assert int(reply.headers["Retry-After"]) >= 1
    assert reply.json()["error"]["type"] == "overloaded"
    assert elapsed < 1.0
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200]


def test_request_timeout_is_504_and_stops_generation(serve):
    served = serve("--request-timeout", "0.5", env=SLOW_ENV)
    started = time.monotonic()
    reply = httpx.post(f"{served.url}/v1/completions", json=SLOW_BODY, timeout=60)
    assert reply.status_code == 504 and reply.json()["error"]["type"] == "timeout"
    assert time.monotonic() - started < 2
    assert wait_until(lambda: served.metric("repocomplete_generations_in_flight") == 0, 1.0)


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout(timeout_s)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_client_disconnect_mid_stream_cancels_generation_within_a_second(serve):
    served = serve(env=SLOW_ENV)
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{served.url}/v1/completions", json={**SLOW_BODY, "stream": True}) as reply:
        lines = reply.iter_lines()  # kept referenced: a collected iterator closes the response
        assert next(lines).startswith("data: ")
        assert served.metric("repocomplete_generations_in_flight") == 1
    dropped = time.monotonic()
    assert wait_until(lambda: served.metric("repocomplete_generations_in_flight") == 0, 1.0)
    assert time.monotonic() - dropped < 1.0
    assert served.metric("repocomplete_cancelled_generations_total", reason="disconnect") == 1


def test_client_disconnect_without_streaming_cancels_too(serve):
    served = serve(env=SLOW_ENV)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{served.url}/v1/completions", json=SLOW_BODY, timeout=0.5)
    assert wait_until(lambda: served.metric("repocomplete_generations_in_flight") == 0, 1.0)
    assert served.metric("repocomplete_cancelled_generations_total", reason="disconnect") == 1


def test_health_answers_while_a_generation_runs(serve):
    served = serve(env=SLOW_ENV)
    body = {**SLOW_BODY, "max_tokens": 300}  # ~3 s
    worker = threading.Thread(target=lambda: httpx.post(f"{served.url}/v1/completions", json=body, timeout=60))
    worker.start()
    time.sleep(0.5)
    assert served.metric("repocomplete_generations_in_flight") == 1
    started = time.monotonic()
    assert httpx.get(f"{served.url}/v1/health", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0  # the generation still has ~2.5 s to go
    assert served.metric("repocomplete_generations_in_flight") == 1
    worker.join()


SLOW_ENV = {"REPOCOMPLETE_FAKE_TEXT": "x" * 400, "REPOCOMPLETE_FAKE_DELAY_S": "0.01"}
#: ~4 s of generation on the slow fake backend.
SLOW_BODY = {"max_tokens": 400, "mode": "multiline", "segments": {"prefix": "data = [\n", "suffix": ""}}


def test_lone_surrogates_are_valid_json_and_never_a_500(shared_server):
    """JSON may escape half a UTF-16 pair; such text must not crash SQLite or a tokenizer."""
    with shared_server.client() as http:
        event = http.post("/v1/events", content=b'{"type": "view", "completion_id": "\\ud800x"}',
                          headers={"content-type": "application/json"})
        completion = http.post("/v1/completions", content=b'{"segments": {"prefix": "x = \\udfff"}, "stop": ["\\ud800"]}',
                               headers={"content-type": "application/json"})
    assert event.status_code == 200, event.text
    assert completion.status_code == 200, completion.text


def test_config_file_sections_configure_server_and_engine(serve, tmp_path):
    config = tmp_path / "repocomplete.toml"
    config.write_text('[server]\ntokens = ["from-toml"]\nmax_queue = 2\n\n[engine]\nfake_text = "from_the_config()\\n"\n')
    served = serve("--config", str(config))
    assert httpx.post(f"{served.url}/v1/completions", json=BODY).status_code == 401
    reply = httpx.post(f"{served.url}/v1/completions", json=BODY, headers={"Authorization": "Bearer from-toml"})
    assert "from_the_config()" in reply.json()["choices"][0]["text"]


def test_unknown_config_key_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    from tests.server.conftest import ROOT

    config = tmp_path / "bad.toml"
    config.write_text("[server]\nportt = 1\n")
    done = subprocess.run([sys.executable, "-m", "repocomplete", "serve", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown config key 'portt'" in done.stderr and "Traceback" not in done.stderr


def test_prefetch_processes_the_prompt_only_in_a_free_slot(serve):
    served = serve("--max-concurrency", "1", env=SLOW_ENV)
    reply = httpx.post(f"{served.url}/v1/prefetch", json=BODY, timeout=30)
    assert reply.status_code == 200 and reply.json()["cached_tokens"] > 0, reply.text
    bad = httpx.post(f"{served.url}/v1/prefetch", json={"segments": {"prefix": 7}}, timeout=30)
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_request"
    # while the only slot generates, ahead-of-time work is not queued behind it: answered at once, undone
    worker = threading.Thread(target=lambda: httpx.post(f"{served.url}/v1/completions", json=SLOW_BODY, timeout=60))
    worker.start()
    wait_for(lambda: served.metric("repocomplete_generations_in_flight") == 1, 30, "the slow generation to start")
    started = time.monotonic()
    busy = httpx.post(f"{served.url}/v1/prefetch", json=BODY, timeout=30)
    assert busy.status_code == 200 and busy.json() == {"cached_tokens": 0}
    assert time.monotonic() - started < 1.0  # the generation has seconds to go
    worker.join()
