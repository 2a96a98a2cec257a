"""Issue 21's attacks on the HTTP server, replayed as written: a real server process over HTTP.

Each test names the item it reproduces; docs/SECURITY.md lists them per promise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ROOT, free_port

ADMIN = "admin-token-for-the-test"
USER = "user-token-for-the-test"
PREFIX = "def add_offset(values, offset):\n    total = sum(values)\n    "
BODY = {"language": "python", "segments": {"prefix": PREFIX, "suffix": "\n", "filepath": "calc.py"}}


@pytest.fixture
def allowed(tmp_path) -> Path:
    """An allowed root holding one small repository."""
    root = tmp_path / "allowed"
    (root / "repo").mkdir(parents=True)
    (root / "repo" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    return root


# -- 21.1: only what the operator allows is indexed; indexed content only to an admin ----------


def test_etc_cannot_be_registered_nor_read_back_by_default(serve):
    """21.1 as written: POST {"root": "/etc"} then a completion with return_prompt on "etc"."""
    served = serve()
    with served.client() as http:
        registered = http.post("/v1/workspaces", json={"root": "/etc"})
        assert registered.status_code == 403, registered.text
        assert registered.json()["error"]["type"] == "path_not_allowed"
        assert "--allow-root" in registered.json()["error"]["message"]
        debug = http.post("/v1/completions", json={**BODY, "workspace": "etc", "debug_options": {"return_prompt": True}})
        assert debug.status_code == 403, debug.text
        assert debug.json()["error"]["type"] == "forbidden"
        plain = http.post("/v1/completions", json={**BODY, "workspace": "etc"})
        assert plain.status_code == 404 and plain.json()["error"]["type"] == "workspace_not_found"
        assert http.get("/v1/workspaces").json()["workspaces"] == []


def test_home_and_dotfiles_are_refused_even_under_an_allowed_root(serve, allowed):
    served = serve("--allow-root", str(allowed), "--admin-token", ADMIN)
    served.headers["Authorization"] = f"Bearer {ADMIN}"
    home = os.path.expanduser("~")
    with served.client() as http:
        for root in (home, os.path.join(home, ".config"), "/etc", "/root", "/home"):
            reply = http.post("/v1/workspaces", json={"root": root})
            assert reply.status_code == 403, (root, reply.text)
        for root in ("~", "~/.config", "~root"):
            reply = http.post("/v1/workspaces", json={"root": root})
            assert reply.status_code in (400, 422), (root, reply.text)
            assert "'~' is not expanded" in reply.json()["error"]["message"], reply.text
        assert http.post("/v1/workspaces", json={"root": str(allowed / "repo")}).status_code == 202


def test_debug_output_needs_an_admin_token(serve, allowed):
    served = serve("--workspace", str(allowed / "repo"), "--token", USER, "--admin-token", ADMIN)
    debug = {**BODY, "workspace": "repo", "debug_options": {"return_prompt": True, "return_snippets": True}}
    as_user = httpx.post(f"{served.url}/v1/completions", json=debug, headers={"Authorization": f"Bearer {USER}"}, timeout=30)
    assert as_user.status_code == 403 and as_user.json()["error"]["type"] == "forbidden", as_user.text
    assert "admin token" in as_user.json()["error"]["message"]
    plain = httpx.post(f"{served.url}/v1/completions", json={**BODY, "workspace": "repo"},
                       headers={"Authorization": f"Bearer {USER}"}, timeout=30)
    assert plain.status_code == 200, plain.text
    assert "debug_data" not in plain.json() or plain.json()["debug_data"] is None
    as_admin = httpx.post(f"{served.url}/v1/completions", json=debug, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert as_admin.status_code == 200, as_admin.text
    assert PREFIX in as_admin.json()["debug_data"]["prompt"]
    # With admin tokens configured, only an admin (un)registers workspaces.
    for method, path, body in (("POST", "/v1/workspaces", {"root": str(allowed / "repo")}),
                               ("DELETE", "/v1/workspaces/repo", None)):
        user = httpx.request(method, f"{served.url}{path}", json=body, headers={"Authorization": f"Bearer {USER}"})
        assert user.status_code == 403, (path, user.text)
    adapters = httpx.get(f"{served.url}/v1/adapters", headers={"Authorization": f"Bearer {USER}"}).json()
    assert all(a["path"] is None for a in adapters["adapters"])


def test_registration_is_limited_to_allowed_roots_and_startup_workspaces(serve, allowed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    served = serve("--workspace", str(allowed / "repo"))  # no --allow-root: the start-up workspace is the allowed root
    (allowed / "repo" / "pkg").mkdir()
    with served.client() as http:
        assert http.post("/v1/workspaces", json={"root": str(allowed / "repo" / "pkg")}).status_code == 202
        outside = http.post("/v1/workspaces", json={"root": str(elsewhere / "sub")})
        assert outside.status_code == 403, outside.text
        missing = http.post("/v1/workspaces", json={"root": str(elsewhere / "no-such-dir")})
        # Outside: the same answer whether or not the path exists.
        assert missing.status_code == 403 and missing.json()["error"]["message"].startswith("root ")


# -- 21.2: every spelling of the root, escapes through .. and symlinks ---------------------------


def test_every_spelling_of_the_filesystem_root_is_refused(serve, allowed):
    """21.2 as written: {"root": "//"} walked the whole filesystem."""
    served = serve("--allow-root", str(allowed))
    with served.client() as http:
        for spelling in ("/", "//", "///", "/./", "/.", "/..", "//etc/..", "/etc/../", "/tmp/../.."):
            reply = http.post("/v1/workspaces", json={"root": spelling})
            assert reply.status_code == 403, (spelling, reply.text)
            assert "filesystem root" in reply.json()["error"]["message"]


def test_paths_that_normalise_outside_the_allowed_roots_are_refused(serve, allowed, tmp_path):
    (tmp_path / "secret").mkdir()
    (allowed / "link").symlink_to(tmp_path / "secret")
    served = serve("--allow-root", str(allowed))
    with served.client() as http:
        for root in (f"{allowed}/../secret", f"{allowed}/repo/../../secret", f"{allowed}//..//secret", str(allowed / "link")):
            reply = http.post("/v1/workspaces", json={"root": root})
            assert reply.status_code == 403, (root, reply.text)
        assert http.post("/v1/workspaces", json={"root": f"{allowed}//repo/./"}).status_code == 202


def test_unsafe_allow_root_or_workspace_is_a_one_line_start_error(tmp_path):
    for args in (["--allow-root", "/"], ["--allow-root", "//"], ["--allow-root", os.path.expanduser("~")],
                 ["--workspace", "/"]):
        done = subprocess.run([sys.executable, "-m", "repocomplete", "serve", "--backend", "fake", "--port",
                               str(free_port()), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert "refusing" in done.stderr and "Traceback" not in done.stderr


# -- 21.1: a non-loopback interface never silently loses its protection -----------------------


def test_non_loopback_without_a_token_refuses_to_start(tmp_path):
    done = subprocess.run([sys.executable, "-m", "repocomplete", "serve", "--backend", "fake", "--host", "0.0.0.0",
                           "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "REPOCOMPLETE_TOKENS": ""})
    assert done.returncode == 2, done.stderr
    assert "refusing to serve on 0.0.0.0 without a token" in done.stderr and "Traceback" not in done.stderr


def test_non_loopback_without_a_token_needs_the_explicit_flag_and_says_so(serve):
    served = serve("--host", "0.0.0.0", "--allow-no-token")
    assert httpx.get(f"{served.url}/v1/health").status_code == 200
    assert "WARNING: serving on 0.0.0.0 WITHOUT A TOKEN" in served.output()
    assert "no DNS-rebinding check" in served.output()


def test_non_loopback_with_a_token_starts_quietly(serve):
    served = serve("--host", "0.0.0.0", token=USER)
    assert httpx.post(f"{served.url}/v1/completions", json=BODY).status_code == 401
    assert "WARNING" not in served.output()


# -- 21.11: NUL bytes and ~user in path fields are 4xx, never 500 -------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("workspace", "a\x00b"), ("workspace", "/tmp/a\x00b"), ("workspace", "~nosuchuser"), ("workspace", "~nosuchuser/x"),
    ("adapter", "a\x00b"), ("adapter", "/tmp/a\x00b"), ("adapter", "~nosuchuser"),
    ("filepath", "/tmp/a\x00b.py"), ("filepath", "a\x00b.py"),
])
def test_nul_and_unknown_users_in_path_fields_are_4xx(shared_server, field, value):
    body = {**BODY, "segments": {**BODY["segments"], "filepath": value}} if field == "filepath" else {**BODY, field: value}
    with shared_server.client() as http:
        reply = http.post("/v1/completions", json=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["error"]["message"]


def test_nul_and_unknown_users_in_roots_are_4xx(serve, allowed):
    served = serve("--allow-root", str(allowed))
    with served.client() as http:
        for root in ("/tmp/a\x00b", f"{allowed}/a\x00b", "~nosuchuser", "~nosuchuser/repo", "/tmp/\x1b[31m"):
            reply = http.post("/v1/workspaces", json={"root": root})
            assert reply.status_code in (400, 422), (root, reply.text)


def test_a_filepath_with_tilde_is_only_a_label(shared_server):
    with shared_server.client() as http:
        reply = http.post("/v1/completions", json={**BODY, "segments": {**BODY["segments"], "filepath": "~nosuchuser.py"}})
    assert reply.status_code == 200, reply.text


# -- 21.13: adapters only by name or from allowed folders; no paths in answers -----------------


def test_adapters_load_only_by_name_or_from_an_adapter_dir(serve, tmp_path):
    adapters = tmp_path / "adapters"
    (adapters / "mine").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    served = serve("--adapter-dir", str(adapters))
    with served.client() as http:
        by_rel = http.post("/v1/completions", json={**BODY, "adapter": "mine"})
        assert by_rel.status_code == 200, by_rel.text
        by_abs = http.post("/v1/completions", json={**BODY, "adapter": str(adapters / "mine")})
        assert by_abs.status_code == 200, by_abs.text
        answers = {}
        for adapter in ("/etc", str(tmp_path / "outside"), str(tmp_path / "no-such"), "../outside", "mine/../../outside",
                        str(adapters)):
            reply = http.post("/v1/completions", json={**BODY, "adapter": adapter})
            assert reply.status_code == 404, (adapter, reply.text)
            answers[adapter] = reply.json()["error"]["message"].replace(repr(adapter), "ADAPTER")
        assert len(set(answers.values())) == 1, answers  # existing or not: the same answer
        assert str(tmp_path) not in "".join(answers.values())


def test_without_an_adapter_dir_no_path_is_ever_loaded(shared_server, tmp_path):
    with shared_server.client() as http:
        for adapter in (str(tmp_path), "/etc", "/no/such/dir"):
            reply = http.post("/v1/completions", json={**BODY, "adapter": adapter})
            assert reply.status_code == 404, reply.text


def test_health_without_a_token_shows_no_server_paths(serve, tmp_path):
    adapter = tmp_path / "adapters" / "secret-location"
    adapter.mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("x = 1\n")
    served = serve("--adapter", f"mine={adapter}", "--workspace", str(tmp_path / "repo"), token=USER)
    health = httpx.get(f"{served.url}/v1/health")
    assert health.status_code == 200
    assert str(tmp_path) not in health.text and "secret-location" not in health.text
    assert health.json()["adapters"] == ["mine"] and health.json()["workspaces"] == ["repo"]


# -- 21.15 / 24.7: the API refuses what it should, in words ------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", True), ("n", True), ("seed", False), ("max_tokens", "64"), ("n", 2.5),
    ("temperature", True), ("stream", 1), ("stream", "true"),
])
def test_booleans_are_not_integers_nor_the_reverse(shared_server, field, value):
    with shared_server.client() as http:
        reply = http.post("/v1/completions", json={**BODY, field: value})
        openai_reply = http.post("/openai/v1/completions", json={"prompt": PREFIX, field: value})
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["error"]["message"]
    assert openai_reply.status_code == 422, openai_reply.text


def test_options_lists_the_methods_of_the_path_and_405_says_the_same(shared_server):
    for path, methods in (("/v1/completions", "OPTIONS, POST"), ("/v1/health", "GET, OPTIONS, POST"),
                          ("/v1/workspaces/x", "DELETE, GET, OPTIONS")):
        reply = httpx.options(f"{shared_server.url}{path}")
        assert reply.status_code == 204, (path, reply.text)
        assert reply.headers["allow"] == methods
        assert not [h for h in reply.headers if h.lower().startswith("access-control-")]
    wrong = httpx.put(f"{shared_server.url}/v1/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "OPTIONS, POST"
    assert httpx.options(f"{shared_server.url}/v2/nothing").status_code == 404


def test_options_needs_the_token_like_every_route(serve):
    served = serve(token=USER)
    assert httpx.options(f"{served.url}/v1/completions").status_code == 401
    assert httpx.options(f"{served.url}/v1/completions", headers={"Authorization": f"Bearer {USER}"}).status_code == 204


@pytest.mark.parametrize(("body", "where"), [
    (b'{"segments": {"prefix": "x"}, "max_tokens": }', "line 1, column 45"),
    (b'{\n  "segments": {"prefix": "x"},\n  "n": 1,,\n}', "line 3, column 10"),
    (b"{not json", "line 1, column 2"),
])
def test_malformed_json_is_400_with_the_position_in_words(shared_server, body, where):
    with shared_server.client() as http:
        for path in ("/v1/completions", "/openai/v1/completions", "/v1/events"):
            reply = http.post(path, content=body, headers={"content-type": "application/json"})
            assert reply.status_code == 400, reply.text
            error = reply.json()["error"]
            assert error["type"] == "invalid_json"
            assert error["message"].startswith(f"invalid JSON at {where}: "), error["message"]


def test_a_request_with_nothing_to_complete_is_refused(shared_server):
    """24.7: no segments (and no raw prompt) generated 22 s of licence header; Tabby answers 400."""
    with shared_server.client() as http:
        for body in ({}, {"language": "python", "max_tokens": 8}, {"segments": None}, {"debug_options": {"raw_prompt": True}}):
            reply = http.post("/v1/completions", json=body)
            assert reply.status_code == 400, (body, reply.text)
            assert "segments is required" in reply.json()["error"]["message"]
        assert http.post("/v1/completions", json={"debug_options": {"raw_prompt": "print("}}).status_code == 200
        assert http.post("/v1/completions", json={"segments": {"prefix": ""}}).status_code == 200


def test_an_openai_request_with_nothing_to_complete_is_refused(shared_server):
    """24.7, OpenAI route: vLLM requires a prompt and refuses an empty one."""
    with shared_server.client() as http:
        missing = http.post("/openai/v1/completions", json={"max_tokens": 8})
        assert missing.status_code == 422 and "prompt" in missing.json()["error"]["message"], missing.text
        for body in ({"prompt": ""}, {"prompt": "", "suffix": ""}, {"prompt": []}, {"prompt": [""]}):
            reply = http.post("/openai/v1/completions", json={**body, "max_tokens": 8})
            assert reply.status_code == 400, (body, reply.text)
            assert "nothing to complete" in reply.json()["error"]["message"]
        for body in ({"prompt": "x = "}, {"prompt": "", "suffix": "\nprint(x)\n"}, {"prompt": ["x = "]}):
            assert http.post("/openai/v1/completions", json={**body, "max_tokens": 8}).status_code == 200, body


def test_quickstart_beyond_loopback_without_a_token_refuses_to_start(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    done = subprocess.run([sys.executable, "-m", "repocomplete", "run", str(tmp_path), "--backend", "fake",
                           "--host", "0.0.0.0", "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "REPOCOMPLETE_TOKENS": ""})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to serve on 0.0.0.0 without a token" in done.stderr and "Traceback" not in done.stderr
