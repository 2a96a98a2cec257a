"""A small LSP client over a real subprocess's stdio, for end-to-end tests and the benchmark."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.processes import timeout as scaled

ROOT = Path(__file__).resolve().parents[2]


class RpcError(Exception):
    """An error response from the server."""

    def __init__(self, error: dict) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.error = error


def frame(payload: dict | bytes) -> bytes:
    """One LSP message (Content-Length header + body)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class LspProcess:
    """``python -m repocomplete lsp ARGS`` with a reader thread collecting its messages."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, stderr_path: Path | None = None) -> None:
        full_env = {**os.environ, **(env or {})}
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repocomplete", "lsp", *args],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.responses: dict[Any, dict] = {}
        self.notifications: list[dict] = []
        self.server_requests: list[dict] = []
        self.unparsed: list[bytes] = []
        #: Array bodies: the answers to JSON-RPC batches.
        self.batches: list[list] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- transport -----------------------------------------------------------------------

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            body = out.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                self.unparsed.append(body)
                continue
            with self._cond:
                if isinstance(message, list):
                    self.batches.append(message)
                elif "method" in message and "id" in message:
                    self.server_requests.append(message)
                    self._answer_server_request(message)
                elif "method" in message:
                    self.notifications.append(message)
                else:
                    self.responses[message.get("id")] = message
                self._cond.notify_all()

    def _answer_server_request(self, message: dict) -> None:
        # client/registerCapability, workspace/configuration, window/workDoneProgress/create ...
        result: Any = [None] * len(message["params"].get("items", [])) if message["method"] == "workspace/configuration" else None
        self.send_raw(frame({"jsonrpc": "2.0", "id": message["id"], "result": result}))

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    # -- JSON-RPC ---------------------------------------------------------------------------

    def send_request(self, method: str, params: Any = None) -> int:
        msg_id = next(self._ids)
        self.send_raw(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
        return msg_id

    def wait_response(self, msg_id: Any, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while msg_id not in self.responses:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise TimeoutError(f"no response to {msg_id} (server exit code {self.proc.poll()})")
                self._cond.wait(min(remaining, 0.5))
            return self.responses.pop(msg_id)

    def request(self, method: str, params: Any = None, timeout: float = 60.0) -> Any:
        response = self.wait_response(self.send_request(method, params), timeout)
        if "error" in response:
            raise RpcError(response["error"])
        return response.get("result")

    def notify(self, method: str, params: Any = None) -> None:
        self.send_raw(frame({"jsonrpc": "2.0", "method": method, "params": params}))

    def wait_batch(self, timeout: float = 60.0) -> list:
        """The next answer to a batch (an array body)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.batches:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no batch answer")
                self._cond.wait(min(remaining, 0.5))
            return self.batches.pop(0)

    def wait_notification(self, predicate, timeout: float = 60.0) -> dict:
        """The first notification (already received or coming) that satisfies ``predicate``."""
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                for message in self.notifications:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("notification not received; got: " + json.dumps(self.notifications)[-2000:])
                self._cond.wait(min(remaining, 0.5))

    # -- LSP conveniences --------------------------------------------------------------------

    def initialize(
        self, options: dict | None = None, root: Path | None = None, encodings: list[str] | None = None, inline: bool = True
    ) -> dict:
        capabilities: dict[str, Any] = {
            "textDocument": {
                **({"inlineCompletion": {"dynamicRegistration": False}} if inline else {}),
                "completion": {"completionItem": {"snippetSupport": False}},
                "synchronization": {"dynamicRegistration": False},
            },
            "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": False}},
        }
        if encodings:
            capabilities["general"] = {"positionEncodings": encodings}
        result = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri() if root else None,
                "capabilities": capabilities,
                "initializationOptions": options or {},
            },
        )
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": version, "text": text}})

    def inline(self, uri: str, line: int, character: int, timeout: float = 60.0) -> Any:
        return self.request(
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}},
            timeout,
        )

    def stats(self) -> dict:
        return self.request("repocomplete/debugStats", {})

    def shutdown_and_exit(self, timeout: float = 30.0) -> int:
        self.request("shutdown", None, timeout)
        self.notify("exit", None)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()

    def __enter__(self) -> LspProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
