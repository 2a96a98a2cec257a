"""The pygls language server: handler registration only; the work is in :mod:`lsp.service`."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder

from lsp.converters import ACCEPT_COMMAND, DISMISS_COMMAND, lsp_completion_list, lsp_inline_completion_list
from lsp.errors import answers_errors
from lsp.protocol import RepocompleteLanguageServer, RepocompleteProtocol
from lsp.service import CompletionService, uri_to_path
from repocomplete import __version__
from repocomplete.errors import ConfigError

log = logging.getLogger(__name__)

INDEX_COMMAND = "repocomplete.index"
#: Custom requests, for tests, benchmarks and curious users.
DOCUMENT_TEXT_REQUEST = "repocomplete/documentText"
DEBUG_STATS_REQUEST = "repocomplete/debugStats"
#: Notification ``{"textDocument": {"uri"}, "position": {"line", "character"}}``: the cursor landed
#: there (a click, a cursor move); the server may process the prompt there ahead of time.
CURSOR_NOTIFICATION = "repocomplete/cursor"


def _root_of(params: types.InitializeParams) -> str | None:
    if params.workspace_folders:
        return uri_to_path(params.workspace_folders[0].uri)
    if params.root_uri:
        return uri_to_path(params.root_uri)
    return params.root_path


def _cursor_of(params: Any) -> tuple[str, types.Position] | None:
    """(uri, position) of a ``repocomplete/cursor`` notification; None when malformed (ignored:
    a notification has no reply to carry an error)."""
    def field(value: Any, name: str) -> Any:
        return value.get(name) if isinstance(value, dict) else getattr(value, name, None)

    uri = field(field(params, "textDocument"), "uri")
    position = field(params, "position")
    line, character = field(position, "line"), field(position, "character")
    if not isinstance(uri, str) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                           for v in (line, character)):
        return None
    return uri, types.Position(line=line, character=character)


def create_server() -> RepocompleteLanguageServer:
    """A language server with every repocomplete handler registered."""
    server = RepocompleteLanguageServer(
        "repocomplete",
        __version__,
        protocol_cls=RepocompleteProtocol,
        text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
    )
    service = CompletionService(
        notify=server.protocol.notify,
        show_message=lambda text, kind: server.window_show_message(types.ShowMessageParams(type=kind, message=text)),
    )
    server.service = service  # type: ignore[attr-defined]

    @server.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        chosen = ServerCapabilitiesBuilder.choose_position_encoding(params.capabilities)
        encoding, root = str(getattr(chosen, "value", chosen)), _root_of(params)
        try:
            service.initialize(params.initialization_options, root, encoding)
        except ConfigError as exc:
            service.initialize(None, root, encoding)
            service.set_status("error", f"invalid settings, using defaults: {exc}")
        text_document = params.capabilities.text_document
        if text_document is not None and text_document.inline_completion is not None:
            # completion is the fallback: a client with ghost text would show the same text twice
            server.protocol.fm.features.pop(types.TEXT_DOCUMENT_COMPLETION, None)

    @server.feature(types.INITIALIZED)
    def initialized(params: types.InitializedParams) -> None:
        service.start()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
        try:
            service.configure(params.settings)
        except ConfigError as exc:
            server.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"repocomplete: {exc}"))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        service.opened(doc.uri, doc.text, doc.language_id, doc.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        service.changed(params.text_document.uri, params.content_changes, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        service.closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams) -> types.InlineCompletionList | None:
        completion = await service.complete(params.text_document.uri, params.position)
        if completion is None:
            return None
        return lsp_inline_completion_list(completion.text, completion.position, completion.payload)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(params: types.CompletionParams) -> types.CompletionList | None:
        completion = await service.complete(params.text_document.uri, params.position)
        if completion is None:
            return None
        return lsp_completion_list(
            completion.text, completion.prefix, completion.position, service.documents.encoding, completion.payload
        )

    @server.command(ACCEPT_COMMAND)
    @answers_errors
    async def accept(*args: Any) -> dict:
        return await service.record_event("select", args[0] if args else None)

    @server.command(DISMISS_COMMAND)
    @answers_errors
    async def dismiss(*args: Any) -> dict:
        return await service.record_event("dismiss", args[0] if args else None)

    @server.command(INDEX_COMMAND)
    def index(*args: Any) -> None:
        if service.client is not None:
            service.client.reindex()

    @server.feature(DOCUMENT_TEXT_REQUEST)
    def document_text(params: Any) -> dict | None:
        uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
        document = service.documents.get(str(uri))
        return None if document is None else {"text": document.text, "version": document.version}

    @server.feature(CURSOR_NOTIFICATION)
    def cursor(params: Any) -> None:
        place = _cursor_of(params)
        if place is not None:
            service.cursor_moved(*place)

    @server.feature(DEBUG_STATS_REQUEST)
    def debug_stats(params: Any) -> dict:
        return service.stats()

    @server.feature(types.SHUTDOWN)
    async def shutdown(params: Any) -> None:
        await service.close()

    @server.feature(types.EXIT)
    def exit_(params: Any) -> None:
        service.exit_requested = True

    return server
