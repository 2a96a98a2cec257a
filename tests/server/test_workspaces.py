"""Workspaces over HTTP: register and index a real repository (stdlib code), watch progress, retrieve from it."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

STDLIB_JSON = Path(sys.modules["json"].__file__).parent  # the stdlib's json package: real code, a few files


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "jsonrepo"
    shutil.copytree(STDLIB_JSON, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


ADMIN = "admin-token-for-the-test"


def wait_ready(http, name: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (state := http.get(f"/v1/workspaces/{name}").json())["status"] in ("queued", "indexing"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    return state


def test_register_index_in_background_and_retrieve(serve, repo, tmp_path):
    served = serve("--allow-root", str(tmp_path), "--admin-token", ADMIN,
                   env={"REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")})
    served.headers["Authorization"] = f"Bearer {ADMIN}"  # debug output (indexed content) needs the admin token
    with served.client() as http:
        accepted = http.post("/v1/workspaces", json={"root": str(repo), "name": "stdjson"})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["name"] == "stdjson"
        state = wait_ready(http, "stdjson")
        assert state["status"] == "ready", state
        assert state["files_done"] == state["files_total"] >= 4
        assert [w["name"] for w in http.get("/v1/workspaces").json()["workspaces"]] == ["stdjson"]
        assert "stdjson" in http.get("/v1/health").json()["workspaces"]

        prefix = (repo / "__init__.py").read_text().split("def dumps(")[0] + "def dumps("
        reply = http.post("/v1/completions", json={
            "workspace": "stdjson", "language": "python",
            "segments": {"prefix": prefix, "suffix": "", "filepath": "__init__.py"},
            "debug_options": {"return_snippets": True, "return_prompt": True}})
        assert reply.status_code == 200, reply.text
        snippets = reply.json()["debug_data"]["snippets"]
        assert snippets, "retrieval found nothing in the indexed repository"
        assert {s["filepath"] for s in snippets} <= {p.name for p in repo.iterdir()}

        # No workspace named: Tabby's git_url, or an absolute filepath, picks it among several.
        other = tmp_path / "other"
        other.mkdir()
        (other / "other.py").write_text("def unrelated():\n    return 1\n")
        assert http.post("/v1/workspaces", json={"root": str(other)}).status_code == 202
        for segments in ({"git_url": "https://github.com/someone/stdjson.git", "filepath": "__init__.py"},
                         {"filepath": str(repo / "__init__.py")}):
            body = {"language": "python", "segments": {"prefix": prefix, "suffix": "", **segments},
                    "debug_options": {"return_snippets": True}}
            resolved = http.post("/v1/completions", json=body).json()
            assert resolved["debug_data"]["snippets"], segments
            assert "other.py" not in {s["filepath"] for s in resolved["debug_data"]["snippets"]}
        unresolved = http.post("/v1/completions", json={"segments": {"prefix": prefix, "filepath": "__init__.py"},
                                                        "debug_options": {"return_snippets": True}}).json()
        assert [s for s in unresolved["debug_data"]["snippets"] if s["source"] != "in_file"] == []


@pytest.mark.parametrize(("root", "status"), [("relative/path", 422), ("~/x", 422), ("/no/such/dir", 403), ("/", 403)])
def test_bad_roots_are_refused(shared_server, root, status):
    with shared_server.client() as http:
        reply = http.post("/v1/workspaces", json={"root": root})
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["message"]


def test_a_missing_root_inside_an_allowed_one_is_404(serve, tmp_path):
    served = serve("--allow-root", str(tmp_path))
    with served.client() as http:
        reply = http.post("/v1/workspaces", json={"root": str(tmp_path / "not-there")})
    assert reply.status_code == 404, reply.text


def test_delete_unregisters_a_workspace(serve, repo, tmp_path):
    served = serve("--allow-root", str(tmp_path), env={"REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")})
    body = {"workspace": "stdjson", "segments": {"prefix": "def dumps(", "filepath": "__init__.py"}}
    with served.client() as http:
        assert http.post("/v1/workspaces", json={"root": str(repo), "name": "stdjson"}).status_code == 202
        assert wait_ready(http, "stdjson")["status"] == "ready"
        assert http.post("/v1/completions", json=body).status_code == 200
        deleted = http.delete("/v1/workspaces/stdjson")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["name"] == "stdjson"
        assert http.get("/v1/workspaces/stdjson").status_code == 404
        assert http.get("/v1/workspaces").json()["workspaces"] == []
        assert "stdjson" not in http.get("/v1/health").json()["workspaces"]
        named = http.post("/v1/completions", json=body)
        assert named.status_code == 404 and named.json()["error"]["type"] == "workspace_not_found"
        assert http.delete("/v1/workspaces/stdjson").status_code == 404
        # Registering it again works (the index cache was kept).
        assert http.post("/v1/workspaces", json={"root": str(repo), "name": "stdjson"}).status_code == 202
        assert wait_ready(http, "stdjson")["status"] == "ready"


def test_unknown_workspace_is_404(shared_server):
    with shared_server.client() as http:
        assert http.get("/v1/workspaces/nope").json()["error"]["type"] == "workspace_not_found"


def test_serve_without_workspace_serves_the_git_repository_it_runs_in(repo):
    """Like `context` and `complete`: started inside a git repository, serve serves it, and says so."""
    from tests.server.conftest import start_server

    (repo / ".git").mkdir()
    (repo / "sub").mkdir()
    served = start_server(repo.parent, "--log-level", "info", cwd=repo / "sub")
    try:
        assert httpx.get(f"{served.url}/v1/health", timeout=10).json()["workspaces"] == ["jsonrepo"]
        log = served.output()
        startup = next(line for line in log.splitlines() if line.startswith("repocomplete serve: "))
        assert f"workspaces: {repo} (the git repository of the current directory" in startup, log
    finally:
        served.stop()
