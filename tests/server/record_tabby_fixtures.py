"""Record tabby-agent 1.5.0's real request bodies as golden fixtures (run once, by hand).

    python -m tests.server.record_tabby_fixtures

A stand-in server (stdlib, Tabby-shaped answers) records every body the agent sends,
in LSP mode and in JSON-lines mode, into tests/server/fixtures/tabby/*.json.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.server.tabby_agent import JsonLinesAgent, LspAgent, agent_cli, lsp_complete, rich_completion_request, write_agent_config

FIXTURES = Path(__file__).parent / "fixtures" / "tabby"
HEALTH = {"model": "stand-in", "device": "cpu", "arch": "x86_64", "cpu_info": "cpu", "cpu_count": 1, "cuda_devices": [],
          "version": {"build_date": "", "git_sha": "", "git_describe": "v0.11.0"}}


def record() -> list[tuple[str, str, dict]]:
    recorded: list[tuple[str, str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, payload) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            recorded.append(("GET", self.path, {}))
            self._reply(HEALTH if self.path.startswith("/v1/health") else {"disable_client_side_telemetry": False})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            recorded.append(("POST", self.path, body))
            if self.path.startswith("/v1/completions"):
                self._reply({"id": "cmpl-recorded", "choices": [{"index": 0, "text": "total + offset"}]})
            elif self.path.startswith("/v1/health"):
                self._reply(HEALTH)
            else:
                self._reply({})

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    cli = agent_cli()
    with tempfile.TemporaryDirectory() as home:
        write_agent_config(Path(home), endpoint, "recording-token")
        lsp = LspAgent(cli, Path(home))
        try:
            lsp_complete(lsp, f"file://{home}/calcrepo/calc.py")
        finally:
            lsp.close()
        lines = JsonLinesAgent(cli, Path(home))
        try:
            lines.call("initialize", {"clientProperties": {"session": {"client": "recorder"}}})
            time.sleep(1.0)
            reply = lines.call("provideCompletions", rich_completion_request(
                f"{home}/calcrepo/calc.py", f"{home}/calcrepo", "https://github.com/example/calcrepo.git"))
            lines.call("postEvent", {"type": "view", "completion_id": reply["id"], "choice_index": 0})
            lines.call("postEvent", {"type": "select", "completion_id": reply["id"], "choice_index": 0, "select_kind": "line"})
        finally:
            lines.close()
    server.shutdown()
    return recorded


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    recorded = record()
    completions = [body for method, path, body in recorded if path.startswith("/v1/completions")]
    events = [(path, body) for method, path, body in recorded if path.startswith("/v1/events")]
    names = {"completion_lsp.json": completions[0], "completion_full_context.json": completions[-1]}
    for (path, body), kind in zip(events, ("view", "select")):
        names[f"event_{kind}.json"] = {"query": path.partition("?")[2], "body": body}
    for name, payload in names.items():
        (FIXTURES / name).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    (FIXTURES / "requests.json").write_text(json.dumps([f"{m} {p}" for m, p, _ in recorded], indent=2) + "\n")
    print(f"wrote {len(names) + 1} fixtures to {FIXTURES}")


if __name__ == "__main__":
    main()
