"""Where completions come from: a ``repocomplete serve`` over HTTP, or the engine in-process.

Both clients offer the same small async interface (:class:`CompletionClient`). The HTTP
client imports nothing heavy: a language server pointed at a server never loads torch.
The in-process client imports the engine lazily, loads the model in a thread, and
indexes the workspace root in the background; completions are answered as soon as the
model is loaded, with repository context once indexing has finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from indexer.errors import PathOutsideWorkspaceError
from lsp.settings import Settings
from repocomplete.errors import BackendUnavailableError, CancelledError, RepocompleteError
from repocomplete.events import EventStore, default_events_path
from repocomplete.types import CompletionRequest, CompletionResult
from repocomplete.wire import request_to_json, result_from_json

log = logging.getLogger(__name__)

#: Called with ("ready" | "indexing" | "loading" | "error", human-readable message).
StatusCallback = Callable[[str, str], None]


class CompletionClient(Protocol):
    """What the language server needs from a completion source."""

    #: Requests that reached the model (or the server); cancelled/superseded ones never do.
    model_calls: int

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """One completion; BackendUnavailableError when the backend is down."""

    async def prefetch(self, request: CompletionRequest) -> int:
        """Process ``request``'s prompt ahead of time, generating nothing; the prompt tokens cached
        (0 where the source keeps no prompt cache of ours). Cancelling the call stops it."""

    async def record_event(self, event: dict) -> None:
        """Store an acceptance event (view/select/dismiss/partial)."""

    def buffer_changed(self, path: str, text: str | None) -> None:
        """An editor buffer changed (text) or closed (None): retrieval context."""

    def start(self) -> None:
        """Begin background work (model loading, indexing)."""

    def reindex(self) -> None:
        """Index the workspace again (the editor's "index workspace" command)."""

    async def close(self) -> None:
        """Release connections and threads."""


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return f"HTTP {response.status_code}"


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that part (decoded) or None.

    The URL without credentials is the only one kept, shown (status, messages) or logged
    (httpx logs request URLs): a password in ``serverUrl`` is never echoed.
    """
    match = _USERINFO.match(url)
    if match is None:
        return url, None
    user, _, password = match.group(2).partition(":")
    return match.group(1) + url[match.end():], (unquote(user), unquote(password))


class HttpClient:
    """Completions from a ``repocomplete serve`` at ``base_url`` (httpx, no torch)."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        import httpx  # a light dependency, but only this client needs it

        url, credentials = split_credentials(base_url.rstrip("/"))
        #: The server's URL, credentials removed (they travel as HTTP basic auth).
        self.base_url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._httpx = httpx
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                       auth=credentials if credentials and not token else None)
        self.model_calls = 0

    def start(self) -> None:
        """Nothing to start: the server owns the model and the index."""

    def reindex(self) -> None:
        """The server indexes its own workspaces; nothing to do from the editor."""

    def buffer_changed(self, path: str, text: str | None) -> None:
        """The server reads files from disk; unsaved buffers stay in the editor."""

    async def _send(self, method: str, path: str, body: dict | None = None) -> Any:
        """One call to the server; BackendUnavailableError for everything the user must fix there."""
        try:
            response = await self._http.request(method, path, json=body)
        except self._httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach the completion server at {self.base_url} ({type(exc).__name__})") from None
        status = response.status_code
        # 5xx, a refused token, or a 404 that is not ours (wrong URL): the server is unusable as configured
        not_ours = status == 404 and '"error"' not in response.text
        if status >= 500 or status in (401, 403) or not_ours:
            raise BackendUnavailableError(f"completion server at {self.base_url}: {_error_message(response)}")
        if status >= 400:
            raise RepocompleteError(_error_message(response))
        return response.json()

    async def health(self) -> dict:
        """The server's ``/v1/health`` (model, workspaces); raises when it is unusable."""
        return await self._send("GET", "/v1/health")

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        self.model_calls += 1
        return result_from_json(await self._send("POST", "/v1/completions", request_to_json(request)))

    async def prefetch(self, request: CompletionRequest) -> int:
        """The server's ``POST /v1/prefetch`` (its engine's prompt cache; 0 when it was busy)."""
        return int((await self._send("POST", "/v1/prefetch", request_to_json(request))).get("cached_tokens") or 0)

    async def record_event(self, event: dict) -> None:
        try:
            response = await self._http.post("/v1/events", json=event)
            if response.status_code >= 400:
                log.warning("server refused event: %s", _error_message(response))
        except self._httpx.TransportError as exc:
            log.warning("could not send event: %s", exc)

    async def close(self) -> None:
        await self._http.aclose()


class InProcessClient:
    """The engine in this process, on the configured (default: embedded) model.

    ``start`` loads the model in a thread and then indexes ``root`` in another, so the
    first completions wait only for the model. Live buffers are pushed to the workspace
    index (unsaved edits become retrieval context) just before each completion, through the
    indexer's own rules (:meth:`indexer.workspace.Workspace.update`): a buffer whose path leads
    out of the root through a symlink, a secret file, an ignored, vendored, binary or oversized
    one is never indexed.
    """

    def __init__(
        self,
        settings: Settings,
        root: str | None,
        on_status: StatusCallback,
        events_path: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.root = str(Path(root).resolve()) if root else None
        self.on_status = on_status
        self.model_calls = 0
        self.events = EventStore(events_path or default_events_path())
        self._engine: Future = Future()
        self._workspace: Any = None
        self._pending: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._started = False
        #: Adapters loaded into the engine, name -> path (the setting may name another later).
        self._adapter_paths: dict[str, str] = dict(settings.adapters())
        self._adapter_lock = threading.Lock()
        #: Buffer updates written to the workspace index, and refused by its rules (a symlink out
        #: of the root, a secret file, an ignored path, over the size limit); whether indexing has finished.
        self.buffers_pushed = 0
        self.buffers_skipped = 0
        self.indexed = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        threading.Thread(target=self._load, name="repocomplete-engine", daemon=True).start()

    def _load(self) -> None:
        self.on_status("loading", "loading the model")
        try:
            engine = self._build_engine()
        except Exception as exc:  # noqa: BLE001 - reported to the editor, never raised into pygls
            log.exception("could not start the engine")
            message = str(exc) if isinstance(exc, RepocompleteError) else f"{type(exc).__name__}: {exc}"
            self._engine.set_exception(BackendUnavailableError(f"could not load the model: {message}"))
            self.on_status("error", f"could not load the model: {message}")
            return
        self._engine.set_result(engine)
        if self.root and self.settings.index:
            self._index(engine)
        else:
            self.on_status("ready", f"ready ({engine.backend.model_name})")

    def _build_engine(self) -> Any:
        from repocomplete.engine import Engine

        return Engine.from_settings(model=self.settings.model, backend=self.settings.backend,
                                    adapters=self.settings.adapters() or None)

    def _index(self, engine: Any) -> None:
        """Index the workspace root in the background (the engine's indexing service)."""
        self.on_status("indexing", f"indexing {self.root}")

        def progress(job: Any) -> None:
            done, total = job.files_done, job.files_total
            if total and (done % 50 == 0 or done == total):
                self.on_status("indexing", f"indexing {done}/{total} files")

        def finished(job: Any) -> None:
            if job.status != "ready":  # completions still work without an index
                self.on_status("ready", f"ready without repository context (indexing failed: {job.error})")
                return
            self.indexed = True
            files = job.summary["files_indexed"] + job.summary["files_unchanged"]
            self.on_status("ready", f"ready ({engine.backend.model_name}, {files} files indexed)")

        try:
            job = engine.indexing.start(self.root, on_progress=progress, on_done=finished)
            # registered before indexing: live buffers can be pushed while it indexes
            self._workspace = engine.indexing.workspace(job)
        except Exception as exc:  # noqa: BLE001 - completions still work without an index
            log.exception("indexing failed")
            self.on_status("ready", f"ready without repository context (indexing failed: {exc})")

    def reindex(self) -> None:
        if not self._engine.done() or self._engine.exception() is not None or not self.root:
            return
        self._index(self._engine.result())

    def buffer_changed(self, path: str, text: str | None) -> None:
        if self.root and path.startswith(self.root + os.sep):
            with self._lock:
                self._pending[path] = text

    def _flush_buffers(self) -> None:
        """Push changed buffers to the workspace index (runs in a worker thread)."""
        if self._workspace is None:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
        for path, text in pending.items():
            try:
                if text is None:
                    # a closed buffer's unsaved edits are gone: the file on disk (or its absence) is the truth
                    self._workspace.revert(path)
                else:
                    skipped = self._workspace.update(path, text)
                    if skipped is not None:
                        self.buffers_skipped += 1
                        log.info("buffer %s is not indexed (%s)", path, skipped.replace("_", " "))
                        continue
                self.buffers_pushed += 1
            except PathOutsideWorkspaceError as exc:
                self.buffers_skipped += 1
                log.info("buffer not indexed: %s", exc)
            except Exception:  # noqa: BLE001 - a buffer that cannot be parsed is no reason to fail
                log.warning("could not update the index with %s", path, exc_info=True)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        self.start()  # a client that never sent `initialized` must not wait forever
        engine = await asyncio.wrap_future(self._engine)

        def call() -> CompletionResult:
            self.model_calls += 1
            return engine.complete(request)

        return await self._in_worker(engine, request, call)

    async def prefetch(self, request: CompletionRequest) -> int:
        """The engine's :meth:`~repocomplete.engine.Engine.prefetch`; 0 while the model is still loading
        (a prefetch never waits for it)."""
        if not self._engine.done() or self._engine.exception() is not None:
            return 0
        engine = self._engine.result()
        return await self._in_worker(engine, request, lambda: engine.prefetch(request))

    async def _in_worker(self, engine: Any, request: CompletionRequest, call: Callable[[], Any]) -> Any:
        """``call`` in a worker thread, with the request's live buffers and adapter in place;
        cancelling the await sets ``request.cancel``, which the model checks at every step."""
        cancel = threading.Event()
        request.cancel = cancel
        if self.indexed and request.workspace is None:
            request.workspace = self.root

        def run() -> Any:
            if cancel.is_set():
                raise CancelledError("cancelled before generation")
            self._flush_buffers()
            self._load_changed_adapter(engine)
            return call()

        try:
            return await asyncio.get_running_loop().run_in_executor(None, run)
        except asyncio.CancelledError:
            cancel.set()  # stops generation in the worker thread at the next token
            raise

    def _load_changed_adapter(self, engine: Any) -> None:
        """An ``adapter`` setting changed to a NAME=PATH not loaded yet: load it under NAME (once)."""
        with self._adapter_lock:
            for name, path in self.settings.adapters().items():
                if self._adapter_paths.get(name) != path:
                    engine.load_adapter(name, path)
                    self._adapter_paths[name] = path

    def backend_requests(self) -> int | None:
        """Generation calls the backend received, when it counts them (the fake backend does)."""
        if not self._engine.done() or self._engine.exception() is not None:
            return None
        requests = getattr(self._engine.result().backend, "requests", None)
        return None if requests is None else len(requests)

    def backend_prefills(self) -> int | None:
        """Prompts the backend processed ahead of time, when it counts them (the fake backend does)."""
        if not self._engine.done() or self._engine.exception() is not None:
            return None
        prefills = getattr(self._engine.result().backend, "prefills", None)
        return None if prefills is None else len(prefills)

    async def record_event(self, event: dict) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.events.add, event)

    async def close(self) -> None:
        """Close the event store; worker threads are daemons and the index closes with the process."""
        self.events.close()
