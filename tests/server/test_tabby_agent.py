"""Tabby's own client (tabby-agent 1.5.0 from npm) gets its completions from a real repocomplete server."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from repocomplete.backends.fake import FakeBackend
from repocomplete.engine import Engine
from repocomplete.types import CompletionRequest, Segments
from tests.server.tabby_agent import (
    CURSOR_OFFSET,
    DOCUMENT,
    JsonLinesAgent,
    LspAgent,
    agent_cli,
    lsp_complete,
    rich_completion_request,
    write_agent_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.network]

TOKEN = "tabby-agent-token"
FAKE_TEXT = "total + offset\n"


@pytest.fixture
def repo(tmp_path):
    """A small git repository the server indexes; its origin names it like the workspace."""
    root = tmp_path / "calcrepo"
    root.mkdir()
    (root / "calc.py").write_text(DOCUMENT)
    (root / "util.py").write_text("def helper(x):\n    return x\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", "https://github.com/example/calcrepo.git"], check=True)
    return root


def expected_text() -> str:
    """What the engine completes at the cursor (the agent sends the whole small document)."""
    engine = Engine(FakeBackend(FAKE_TEXT))
    segments = Segments(DOCUMENT[:CURSOR_OFFSET], DOCUMENT[CURSOR_OFFSET:])
    return engine.complete(CompletionRequest(segments, language="python")).choices[0].text


@pytest.fixture
def setup(serve, tmp_path, repo):
    """(agent cli.js, a real server with a token serving ``repo``, a HOME whose agent config points at it)."""
    cli = agent_cli()
    served = serve("--workspace", str(repo), token=TOKEN, env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT})
    home = tmp_path / "home"
    write_agent_config(home, served.url, TOKEN)
    return cli, served, home


def test_tabby_agent_lsp_completion_comes_from_our_server(setup, repo):
    cli, served, home = setup
    agent = LspAgent(cli, home)
    try:
        items = lsp_complete(agent, (repo / "calc.py").as_uri())
    finally:
        agent.close()
    assert items, b"".join(agent.stderr).decode(errors="replace")[-2000:]
    expected = expected_text()
    assert expected.strip()
    assert items[0]["textEdit"]["newText"] == expected
    assert served.metric("repocomplete_requests_total", route="/v1/completions", method="POST", status="200") >= 1


def test_tabby_agent_events_reach_our_store(setup, repo):
    cli, served, home = setup
    agent = JsonLinesAgent(cli, home)
    try:
        assert agent.call("initialize", {"clientProperties": {"session": {"client": "repocomplete-tests"}}})
        request = rich_completion_request(str(repo / "calc.py"), str(repo), "https://github.com/example/calcrepo.git")
        for _ in range(20):  # until the agent's health check has connected it
            reply = agent.call("provideCompletions", request)
            if reply and reply.get("choices"):
                break
            agent.call("getStatus")
        completion_id = reply["id"]
        assert reply["choices"][0]["text"] == expected_text()
        agent.call("postEvent", {"type": "view", "completion_id": completion_id, "choice_index": 0})
        agent.call("postEvent", {"type": "select", "completion_id": completion_id, "choice_index": 0, "select_kind": "line"})
    finally:
        agent.close()
    rows = sqlite3.connect(served.events_db).execute(
        "SELECT type, completion_id, select_kind FROM events ORDER BY id").fetchall()
    assert rows == [("view", completion_id, None), ("select", completion_id, "line")]
    assert served.metric("repocomplete_acceptance_rate") == 1.0
