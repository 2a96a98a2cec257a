"""pygls' LSP protocol, hardened: malformed messages get JSON-RPC errors, never an exit.

pygls logs and drops what it cannot parse; a client waiting on that request would
hang. Here invalid JSON is answered with a Parse error (id null), a message that is not
JSON-RPC 2.0 with Invalid Request, and a known method with invalid params with Invalid
params for its id. Document sync is ours (:mod:`lsp.documents`), so pygls' own copy of
every buffer is not kept.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from lsp.errors import INVALID_REQUEST, PARSE_ERROR

log = logging.getLogger(__name__)


#: pygls' own log lines for a method without a handler (its format strings, matched exactly).
_UNKNOWN_METHOD_MESSAGES = ("Ignoring notification for unknown method %r", "Failed to handle request %r, unknown method %r")


class _UnknownMethodsAtDebug(logging.Filter):
    """Editors send optional methods we do not implement (``$/setTrace``, ``workspace/didChangeWatchedFiles``).

    The LSP spec says a server ignores unknown notifications and answers unknown requests with
    MethodNotFound, which pygls does; it also logs a WARNING for each, which editors show as
    errors in their server log. Those records are moved to DEBUG on our own logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _UNKNOWN_METHOD_MESSAGES:
            log.debug(record.getMessage())
            return False
        return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_UnknownMethodsAtDebug())


class _Rejected:
    """Stands in for a message already answered with an error."""


_REJECTED = _Rejected()


def _valid_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


class RepocompleteProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers malformed input and leaves buffers to us."""

    def send_error(self, msg_id: Any, code: int, message: str) -> None:
        """A JSON-RPC error response (``msg_id`` None when it could not be read)."""
        self._send_data({"jsonrpc": "2.0", "id": msg_id if _valid_id(msg_id) else None, "error": {"code": code, "message": message}})

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "method" in data and "id" in data:
                error = exc.to_response_error()
                self.send_error(data["id"], error.code, f"invalid params for {data.get('method')}")
            else:
                log.warning("dropping malformed notification %r", data.get("method"))
            return _REJECTED

    def handle_message(self, message: Any):
        if message is _REJECTED:
            return
        if not hasattr(message, "jsonrpc"):
            msg_id = message.get("id") if isinstance(message, dict) else None
            self.send_error(msg_id, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
            return
        super().handle_message(message)

    # Document sync: skip pygls' workspace copy; the user handlers keep lsp.documents.

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


class RepocompleteLanguageServer(LanguageServer):
    """pygls LanguageServer whose out-of-band errors are answered or logged, never shown raw."""

    protocol: RepocompleteProtocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, ValueError):  # json.JSONDecodeError, UnicodeDecodeError
            self.protocol.send_error(None, PARSE_ERROR, f"Parse error: {error}")
            return
        if isinstance(error, JsonRpcMethodNotFound):  # already answered with MethodNotFound
            log.debug("unknown method: %s", error)
            return
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

