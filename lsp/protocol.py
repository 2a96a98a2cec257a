"""pygls' LSP protocol, hardened: malformed messages get JSON-RPC errors, never an exit.

pygls logs and drops what it cannot parse; a client waiting on that request would
hang. Here invalid JSON is answered with a Parse error (id null), a message that is not
JSON-RPC 2.0 with Invalid Request, and a known method with invalid params with Invalid
params for its id. A frame with a wrong Content-Length is answered or resynchronised on
(:mod:`lsp.framing`), and a JSON-RPC batch, which LSP does not have, is answered with an
Invalid Request per request in it. Document sync is ours (:mod:`lsp.documents`), so pygls'
own copy of every buffer is not kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from lsp.errors import INVALID_REQUEST, PARSE_ERROR
from lsp.framing import FrameParser, FrameReader, next_body_async

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

    def handle_body(self, body: bytes) -> None:
        """Parse and dispatch one frame's body (a message, or a batch answered with errors)."""
        if body.lstrip()[:1] == b"[":
            self.reject_batch(json.loads(body))   # a ValueError becomes a Parse error
            return
        self.handle_message(json.loads(body, object_hook=self.structure_message))

    def reject_batch(self, batch: list) -> None:
        """JSON-RPC 2.0 batches are not part of LSP: every request in one gets Invalid Request,
        in one array as the JSON-RPC spec answers batches; a batch without requests gets one."""
        message = "Invalid Request: the Language Server Protocol has no batches; send each message on its own"
        errors = [{"jsonrpc": "2.0", "id": item.get("id") if isinstance(item, dict) and _valid_id(item.get("id")) else None,
                   "error": {"code": INVALID_REQUEST, "message": message}}
                  for item in batch if not (isinstance(item, dict) and "method" in item and "id" not in item)]
        if errors:
            self._send_data(errors)
        else:
            self.send_error(None, INVALID_REQUEST, message)

    def _send_data(self, data: Any) -> None:
        if isinstance(data, list):   # a batch answer: pygls only serialises single messages
            body = json.dumps(data).encode("utf-8")
            if self.writer is not None:
                self.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return
        super()._send_data(data)

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


class _StdoutWriter(StdoutWriter):
    """stdout for the protocol; what is written after ``exit`` closed it (a status update of a
    model that finished loading meanwhile) is dropped, not logged as an error."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()

    def write(self, data: bytes) -> None:
        if self.closed:
            log.debug("dropped %d bytes written after exit", len(data))
            return
        super().write(data)


class RepocompleteLanguageServer(LanguageServer):
    """pygls LanguageServer whose out-of-band errors are answered or logged, never shown raw."""

    protocol: RepocompleteProtocol

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdio with :class:`lsp.framing.FrameReader` (pygls' reader cannot
        recover from a wrong Content-Length). Returns at the end of input or on ``exit``."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(_StdoutWriter(stdout or sys.stdout.buffer))
        reader = FrameReader((stdin or sys.stdin.buffer).fileno())
        try:
            asyncio.run(self._serve_stdio(reader))
        except BrokenPipeError:
            log.error("connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """Serve one client at a time on ``host:port`` with the same framing as stdio."""
        self._stop_event = stop_event = threading.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            parser = FrameParser()
            while not stop_event.is_set():
                body = await next_body_async(reader, parser)
                if body is None:
                    break
                self._handle(body)
            self.shutdown()

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            log.debug("the TCP server was cancelled")

    async def _serve_stdio(self, reader: FrameReader) -> None:
        loop = asyncio.get_running_loop()
        bodies: asyncio.Queue[bytes | None] = asyncio.Queue()

        def read() -> None:   # a daemon thread: a blocked read never holds up the exit
            while True:
                body = reader.next_body()
                loop.call_soon_threadsafe(bodies.put_nowait, body)
                if body is None:
                    return

        threading.Thread(target=read, name="lsp-reader", daemon=True).start()
        while not self._stop_event.is_set():
            body = await bodies.get()
            if body is None:
                break
            self._handle(body)

    def _handle(self, body: bytes) -> None:
        try:
            self.protocol.handle_body(body)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the server
            log.debug("unable to handle a message", exc_info=True)
            self.report_server_error(exc, JsonRpcException)

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, ValueError):  # json.JSONDecodeError, UnicodeDecodeError
            self.protocol.send_error(None, PARSE_ERROR, f"Parse error: {error}")
            return
        if isinstance(error, JsonRpcMethodNotFound):  # already answered with MethodNotFound
            log.debug("unknown method: %s", error)
            return
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

