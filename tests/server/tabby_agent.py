"""Drive Tabby's own client, ``tabby-agent`` (npm), over stdio: its LSP mode and its JSON-lines mode.

The agent is installed once from the npm registry into ~/.cache/repocomplete/npm (or
$REPOCOMPLETE_NPM_CACHE) and reused. Without the registry the tests skip with a message,
or fail in CI (REPOCOMPLETE_REQUIRE_INTERPRETERS=1).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import require_interpreters, skip_or_fail_without

AGENT = "tabby-agent@1.5.0"


def npm_cache() -> Path:
    return Path(os.environ.get("REPOCOMPLETE_NPM_CACHE", Path.home() / ".cache" / "repocomplete" / "npm"))


def agent_cli() -> Path:
    """Path of the agent's ``dist/cli.js``, installing it on first use."""
    skip_or_fail_without("node")
    skip_or_fail_without("npm")
    prefix = npm_cache()
    cli = prefix / "node_modules" / "tabby-agent" / "dist" / "cli.js"
    version_file = prefix / "node_modules" / "tabby-agent" / "package.json"
    if cli.is_file() and json.loads(version_file.read_text())["version"] == AGENT.split("@")[1]:
        return cli
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([shutil.which("npm"), "install", "--no-audit", "--no-fund", "--prefix", str(prefix), AGENT],
                              capture_output=True, text=True, timeout=300)
        ok, detail = done.returncode == 0 and cli.is_file(), (done.stderr.strip().splitlines() or ["?"])[-1]
    except subprocess.TimeoutExpired:
        ok, detail = False, "npm install timed out"
    if not ok:
        message = f"cannot install {AGENT} from the npm registry (unreachable?): {detail}"
        if require_interpreters():
            pytest.fail(message)
        pytest.skip(message)
    return cli


def write_agent_config(home: Path, endpoint: str, token: str | None) -> Path:
    """``~/.tabby-client/agent/config.toml`` as a user would write it (telemetry off: we are offline)."""
    config = home / ".tabby-client" / "agent" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[server]", f'endpoint = "{endpoint}"']
    if token:
        lines.append(f'token = "{token}"')
    lines += ["", "[anonymousUsageTracking]", "disable = true", ""]
    config.write_text("\n".join(lines))
    return config


class _Agent:
    def __init__(self, cli: Path, home: Path, *args: str) -> None:
        env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
        self.proc = subprocess.Popen(["node", str(cli), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=home)
        self.messages: queue.Queue = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.stderr: list[bytes] = []

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _read(self) -> None:
        raise NotImplementedError

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def wait_for(self, request_id: int, timeout_s: float):
        while True:
            message = self.messages.get(timeout=timeout_s)
            if self._matches(message, request_id):
                return message

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


class LspAgent(_Agent):
    """``cli.js --lsp --stdio``: a language server (Content-Length framed JSON-RPC)."""

    def __init__(self, cli: Path, home: Path) -> None:
        super().__init__(cli, home, "--lsp", "--stdio")

    def _read(self) -> None:
        stream = self.proc.stdout
        while True:
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            if not headers:
                return
            self.messages.put(json.loads(stream.read(int(headers["content-length"]))))

    @staticmethod
    def _matches(message: dict, request_id: int) -> bool:
        return message.get("id") == request_id and "method" not in message

    def send(self, method: str, params: dict, request_id: int | None = None) -> None:
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        if request_id is not None:
            message["id"] = request_id
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: dict, timeout_s: float = 30):
        request_id = self._new_id()
        self.send(method, params, request_id)
        reply = self.wait_for(request_id, timeout_s)
        assert "error" not in reply, reply
        return reply["result"]


class JsonLinesAgent(_Agent):
    """``cli.js`` without ``--lsp``: Tabby's own protocol (``[id, {"func", "args"}]`` per line),
    the one its VS Code, IntelliJ and Vim plugins drive; it is the mode that posts events."""

    def __init__(self, cli: Path, home: Path) -> None:
        super().__init__(cli, home)

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.messages.put(json.loads(line))

    @staticmethod
    def _matches(message: list, request_id: int) -> bool:
        return message[0] == request_id

    def call(self, func: str, *args, timeout_s: float = 30):
        request_id = self._new_id()
        self.proc.stdin.write((json.dumps([request_id, {"func": func, "args": list(args)}]) + "\n").encode())
        self.proc.stdin.flush()
        return self.wait_for(request_id, timeout_s)[1]


#: The document both tests complete in, and where the cursor is.
DOCUMENT = "def add_offset(values, offset):\n    total = sum(values)\n    return \n\n\nprint(add_offset([1, 2], 3))\n"
CURSOR_LINE, CURSOR_CHAR = 2, len("    return ")
CURSOR_OFFSET = DOCUMENT.index("return ") + len("return ")


def lsp_complete(agent: LspAgent, uri: str, attempts: int = 20) -> list[dict]:
    """initialize, initialized, didOpen, then textDocument/completion until the agent is connected."""
    agent.request("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {},
                                 "clientInfo": {"name": "repocomplete-tests", "version": "0"}})
    agent.send("initialized", {})
    agent.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": DOCUMENT}})
    for _ in range(attempts):  # the agent answers empty lists until its health check has passed
        result = agent.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                           "position": {"line": CURSOR_LINE, "character": CURSOR_CHAR}})
        if result and result.get("items"):
            return result["items"]
        threading.Event().wait(0.5)
    return []


def rich_completion_request(filepath: str, repo_root: str, git_url: str) -> dict:
    """A provideCompletions call with every context the agent can send (git, declarations, snippets, clipboard)."""
    return {
        "filepath": filepath, "language": "python", "text": DOCUMENT, "position": CURSOR_OFFSET, "manually": True,
        "clipboard": "clipboard text to consider",
        "git": {"root": repo_root, "remotes": [{"name": "origin", "url": git_url}]},
        "declarations": [{"filepath": f"{repo_root}/util.py", "offset": 0, "text": "def helper(x):\n    return x\n"}],
        "relevantSnippetsFromChangedFiles": [{"filepath": f"{repo_root}/other.py", "offset": 0, "text": "other = 1\n",
                                              "score": 0.5}],
    }
