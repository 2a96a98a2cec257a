"""JSON-RPC error codes at the language server's edge: one table, built from the engine's error types.

Handlers raise :class:`repocomplete.errors.RepocompleteError` subclasses; :func:`answers_errors`
turns them into JSON-RPC error responses with the code :data:`JSONRPC_CODES` gives their type
(along the class hierarchy) and the type's name in ``data``. Completions themselves never
answer with an error: an editor shows nothing for a failed completion, and the status
notification says why.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from pygls.exceptions import JsonRpcException

from repocomplete.errors import (
    BackendUnavailableError,
    CancelledError,
    ConfigError,
    InvalidRequestError,
    RepocompleteError,
)

# JSON-RPC 2.0 and LSP codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
REQUEST_CANCELLED = -32800
REQUEST_FAILED = -32803

#: The JSON-RPC code of every error type; an error not listed takes its nearest listed base class's.
JSONRPC_CODES: dict[type[Exception], int] = {
    RepocompleteError: REQUEST_FAILED,
    InvalidRequestError: INVALID_PARAMS,
    ConfigError: INVALID_PARAMS,
    CancelledError: REQUEST_CANCELLED,
    BackendUnavailableError: REQUEST_FAILED,
}


def jsonrpc_code(exc: RepocompleteError) -> int:
    """``exc``'s code from :data:`JSONRPC_CODES` (along its class hierarchy)."""
    return next(JSONRPC_CODES[cls] for cls in type(exc).__mro__ if cls in JSONRPC_CODES)


def to_jsonrpc(exc: RepocompleteError) -> JsonRpcException:
    """The JSON-RPC error pygls answers with for ``exc`` (one-line message, the type in ``data``)."""
    return JsonRpcException(str(exc) or exc.error_type, code=jsonrpc_code(exc), data={"type": exc.error_type})


def answers_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a request or command handler (sync or async) so domain errors become JSON-RPC errors."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except RepocompleteError as exc:
                raise to_jsonrpc(exc) from None

        return run_async

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except RepocompleteError as exc:
            raise to_jsonrpc(exc) from None

    return run
