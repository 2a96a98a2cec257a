"""The language server's state and its one job: a completion at a position, cheaply.

``CompletionService`` owns the open documents, the settings, the completion client,
the cache and the debouncer; the pygls handlers in :mod:`lsp.server` only translate
protocol messages into calls on it. It reports its state to the editor through a
``repocomplete/status`` notification (ready / loading / indexing / error) and tells the
user once, with ``window/showMessage``, when the backend goes down.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from lsp.cache import CompletionCache
from lsp.clients import CompletionClient, HttpClient, InProcessClient
from lsp.debounce import Debouncer
from lsp.documents import Document, DocumentStore
from lsp.events import completion_event
from lsp.settings import Settings
from repocomplete.errors import BackendUnavailableError, CancelledError, RepocompleteError
from repocomplete.prompt import near_cursor_prefix, near_cursor_suffix
from repocomplete.types import CompletionRequest, Segments

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "repocomplete/status"

#: Settings whose change needs a new client (a new connection or a new engine).
_CLIENT_FIELDS = ("server_url", "token", "model", "backend")
#: Settings that change what the model answers at the same cursor: cached completions made
#: under the old values must not be shown (e.g. the previous adapter's text).
_ANSWER_FIELDS = ("adapter", "workspace", "mode", "max_tokens")


@dataclass(frozen=True)
class Completion:
    """A completion to show at the cursor, with what the accept command must report."""

    text: str
    prefix: str
    position: types.Position
    payload: dict
    cached: bool = False


def uri_to_path(uri: str) -> str | None:
    """Filesystem path of a ``file:`` URI (None for other schemes)."""
    from pygls.uris import to_fs_path

    return to_fs_path(uri) if uri.startswith("file:") else None


def _trim_prefix(prefix: str, limit: int) -> str:
    """The prompt's own cut (:func:`repocomplete.prompt.near_cursor_prefix`: whole lines before
    the cursor), never longer than ``limit`` even when the cursor's line alone is."""
    return near_cursor_prefix(prefix, limit)[-limit:]


def _trim_suffix(suffix: str, limit: int) -> str:
    """:func:`repocomplete.prompt.near_cursor_suffix` (whole lines after the cursor), at most ``limit``."""
    return near_cursor_suffix(suffix, limit)[:limit]


class CompletionService:
    """Documents, settings and the completion pipeline of one editor connection."""

    def __init__(
        self,
        notify: Callable[[str, object], None],
        show_message: Callable[[str, types.MessageType], None],
    ) -> None:
        self._notify = notify
        self._show_message = show_message
        self.settings = Settings()
        self.documents = DocumentStore()
        self.cache = CompletionCache()
        self.debouncer = Debouncer(self.settings.debounce_ms / 1000)
        self.client: CompletionClient | None = None
        self.root: str | None = None
        self.status = "starting"
        self.status_message = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._viewed: set[str] = set()
        #: Settings from the command line; the editor's settings override them.
        self.flag_options: dict = {}
        #: Whether the client sent ``exit`` (after ``shutdown`` or not).
        self.exit_requested = False
        #: The running ahead-of-time prompt processing (:meth:`cursor_moved`), and completions in flight.
        self._prefetch: asyncio.Task | None = None
        self._completing = 0
        #: Prefetches begun (counted when scheduled) and those that processed a prompt.
        self.prefetches_started = 0
        self.prefetches = 0

    # -- lifecycle -------------------------------------------------------------------

    def initialize(self, options: object, root: str | None, encoding: str) -> None:
        """Apply the editor's initial settings; the client starts on :meth:`start`."""
        self._loop = asyncio.get_running_loop()
        self.root = root
        self.documents.encoding = encoding
        self.settings = Settings.from_options(options, base=Settings.from_options(self.flag_options))
        self.debouncer.delay_s = self.settings.debounce_ms / 1000
        self.client = self._make_client()

    def start(self) -> None:
        """Begin background work (model loading, indexing) once the editor is ready."""
        if self.client is not None:
            self.client.start()
            if isinstance(self.client, HttpClient):
                asyncio.ensure_future(self._check_server(self.client))

    async def _check_server(self, client: HttpClient) -> None:
        """Ask the server's health once at start, so a wrong URL shows before the first keystroke."""
        try:
            health = await client.health()
        except BackendUnavailableError as exc:
            self.set_status("error", str(exc))
            return
        except RepocompleteError as exc:
            log.warning("health check failed: %s", exc)
            health = {}
        # Only the start-up state is ours to settle: a completion that already failed (e.g. a
        # refused token, which health does not check) or succeeded knows better than health.
        if client is self.client and self.status == "starting":
            model = health.get("model_label") or health.get("model") or "server"
            self.set_status("ready", f"using {client.base_url} ({model})")

    def configure(self, options: object) -> None:
        """Apply changed settings (``workspace/didChangeConfiguration``)."""
        old = self.settings
        self.settings = Settings.from_options(options, base=old)
        self.debouncer.delay_s = self.settings.debounce_ms / 1000
        if any(getattr(old, f) != getattr(self.settings, f) for f in _CLIENT_FIELDS):
            previous, self.client = self.client, self._make_client()
            self.cache.clear()
            if previous is not None:
                asyncio.ensure_future(previous.close())
            self.start()
        else:
            if any(getattr(old, f) != getattr(self.settings, f) for f in _ANSWER_FIELDS):
                self.cache.clear()
            if self.client is not None and hasattr(self.client, "settings"):
                self.client.settings = self.settings  # adapter / index flags of the in-process client
        if old.enable != self.settings.enable:
            self._publish_status()

    def _make_client(self) -> CompletionClient:
        if self.settings.server_url:
            return HttpClient(self.settings.server_url, self.settings.token)
        return InProcessClient(self.settings, self.root, self._status_from_thread)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    # -- status ------------------------------------------------------------------------

    def set_status(self, state: str, message: str) -> None:
        """Record the backend's state; the first error of an outage is also shown to the user."""
        if state == "error" and self.status != "error":
            self._show_message(f"repocomplete: {message}", types.MessageType.Error)
        elif self.status == "error" and state == "ready":
            self._show_message(f"repocomplete: {message}", types.MessageType.Info)
        self.status, self.status_message = state, message
        self._publish_status()

    def _publish_status(self) -> None:
        """Tell the editor (``repocomplete/status``); while turned off it says "disabled"."""
        if self.settings.enable or self.status == "error":
            params = {"state": self.status, "message": self.status_message}
        else:
            params = {"state": "disabled", "message": "completions are turned off"}
        self._notify(STATUS_NOTIFICATION, params)

    def _status_from_thread(self, state: str, message: str) -> None:
        """Status updates from the in-process client's worker threads, moved onto the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.set_status, state, message)

    # -- documents -----------------------------------------------------------------------

    def opened(self, uri: str, text: str, language_id: str, version: int) -> None:
        self.documents.open(uri, text, language_id, version)
        self._push_buffer(uri, text)

    def changed(self, uri: str, changes: list, version: int) -> None:
        document = self.documents.change(uri, changes, version)
        if document is not None:
            self._push_buffer(uri, document.text)

    def closed(self, uri: str) -> None:
        self.documents.close(uri)
        self.debouncer.forget(uri)
        self._push_buffer(uri, None)

    def _push_buffer(self, uri: str, text: str | None) -> None:
        path = uri_to_path(uri)
        if path is not None and self.client is not None:
            self.client.buffer_changed(path, text)

    # -- completion ------------------------------------------------------------------------

    async def complete(self, uri: str, position: types.Position) -> Completion | None:
        """The completion at ``position`` in ``uri``, or None (disabled, superseded, failed).

        Order matters for cost: the cache first (free), then the debounce (a newer
        keystroke or a ``$/cancelRequest`` ends the request here), then the model.
        """
        self._cancel_prefetch()  # the model is wanted now, wherever the prefetch was
        document = self.documents.get(uri)
        if document is None or self.client is None or not self.settings.enabled_for(document.language_id):
            return None
        prefix, suffix = self._window(document, position)
        hit = self.cache.get(prefix, suffix)
        if hit is not None:
            return self._completion(hit.text, prefix, position, hit.entry.completion_id, hit.entry.choice_index, cached=True)
        if not await self.debouncer.wait(uri):
            return None
        request = self._request(document, prefix, suffix)
        self._completing += 1
        try:
            result = await self.client.complete(request)
        except BackendUnavailableError as exc:
            self.set_status("error", str(exc))
            return None
        except CancelledError:
            return None
        except RepocompleteError as exc:
            log.warning("completion failed: %s", exc)
            return None
        finally:
            self._completing -= 1
        if self.status == "error":
            self.set_status("ready", "the completion backend is back")
        text = result.choices[0].text if result.choices else ""
        self.cache.put(prefix, suffix, text, result.id)
        return self._completion(text, prefix, position, result.id, 0)

    def _window(self, document: Document, position: types.Position) -> tuple[str, str]:
        """The prefix and suffix sent for a cursor at ``position``. Only a window around the
        cursor is ever looked at (the model's prompt budget): the cost of a keystroke does not
        grow with the buffer, nor the cache's memory."""
        offset = document.offset_at(position)
        text, settings = document.text, self.settings
        prefix = _trim_prefix(text[max(0, offset - settings.max_prefix_chars - 1):offset], settings.max_prefix_chars)
        suffix = _trim_suffix(text[offset:offset + settings.max_suffix_chars + 1], settings.max_suffix_chars)
        return prefix, suffix

    # -- ahead of time -----------------------------------------------------------------------

    def cursor_moved(self, uri: str, position: types.Position) -> None:
        """The cursor landed at ``position`` (``repocomplete/cursor``, sent by the editor on a click
        or cursor move): process the prompt there in the background, so that the first completion
        at that cursor, or a few keystrokes on, costs what a keystroke costs instead of a whole
        prompt. Skipped when prefetching is off, a completion is already on its way (it fills the
        same cache), or one is cached for this cursor; a newer cursor or any completion request
        cancels it (the model stops within one chunk of the prompt)."""
        document = self.documents.get(uri)
        if (not self.settings.prefetch or document is None or self.client is None or self._completing
                or not self.settings.enabled_for(document.language_id)):
            return
        prefix, suffix = self._window(document, position)
        if self.cache.get(prefix, suffix) is not None:
            return
        self._cancel_prefetch()
        self.prefetches_started += 1
        self._prefetch = asyncio.ensure_future(self._run_prefetch(self._request(document, prefix, suffix)))

    async def _run_prefetch(self, request: CompletionRequest) -> None:
        try:
            if await self.client.prefetch(request):
                self.prefetches += 1
        except (CancelledError, asyncio.CancelledError):
            pass
        except Exception as exc:  # noqa: BLE001 - ahead-of-time work never troubles the editor
            log.info("prefetch failed: %s", exc)

    def _cancel_prefetch(self) -> None:
        if self._prefetch is not None and not self._prefetch.done():
            self._prefetch.cancel()
        self._prefetch = None

    def _request(self, document: Document, prefix: str, suffix: str) -> CompletionRequest:
        settings = self.settings
        path = uri_to_path(document.uri)
        filepath = path
        if path and self.root and Path(path).is_relative_to(self.root):
            filepath = str(Path(path).relative_to(self.root))
        return CompletionRequest(
            segments=Segments(prefix=prefix, suffix=suffix, filepath=filepath),  # windows already
            language=document.language_id or None,
            workspace=settings.workspace,
            adapter=settings.adapter_name(),
            max_tokens=settings.max_tokens,
            mode=settings.mode,  # type: ignore[arg-type]
        )

    def _completion(
        self, text: str, prefix: str, position: types.Position, completion_id: str, choice_index: int, cached: bool = False
    ) -> Completion:
        payload = {
            "completion_id": completion_id,
            "choice_index": choice_index,
            "accepted_chars": len(text),
            "shown_at": time.time(),
        }
        if text and completion_id not in self._viewed:
            self._viewed.add(completion_id)
            if len(self._viewed) > 4096:
                self._viewed.clear()
            self.record_event_soon("view", payload)
        return Completion(text=text, prefix=prefix, position=position, payload=payload, cached=cached)

    # -- events ----------------------------------------------------------------------------

    async def record_event(self, kind: str, payload: object) -> dict:
        """Store an acceptance event for a shown completion; returns the event."""
        event = completion_event(kind, payload)
        if self.client is not None:
            await self.client.record_event(event)
        return event

    def record_event_soon(self, kind: str, payload: object) -> None:
        asyncio.ensure_future(self.record_event(kind, payload))

    def stats(self) -> dict:
        """Counters for tests and benchmarks (``repocomplete/debugStats``)."""
        return {
            "model_calls": getattr(self.client, "model_calls", 0),
            "backend_requests": self.client.backend_requests() if isinstance(self.client, InProcessClient) else None,
            "backend_prefills": self.client.backend_prefills() if isinstance(self.client, InProcessClient) else None,
            "torch_loaded": "torch" in sys.modules,
            "buffers_pushed": getattr(self.client, "buffers_pushed", None),
            "buffers_skipped": getattr(self.client, "buffers_skipped", None),
            "indexed": getattr(self.client, "indexed", None),
            "prefetches_started": self.prefetches_started,
            "prefetches": self.prefetches,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "superseded": self.debouncer.superseded,
            "documents": len(self.documents),
            "status": self.status,
            "status_message": self.status_message,
            "position_encoding": self.documents.encoding,
        }
