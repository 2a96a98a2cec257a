"""The one place domain errors become HTTP responses: ``{"error": {"type", "message"}}``.

Route code raises :class:`repocomplete.errors.RepocompleteError` subclasses; validation
failures, unknown routes and wrong methods get the same body shape. No client input
reaches the generic 500 handler: it exists only so a bug never leaks a traceback.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from repocomplete.errors import (
    AdapterError,
    BackendUnavailableError,
    CancelledError,
    ConfigError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RepocompleteError,
    RequestTooLargeError,
    TemplateMismatchError,
    WorkspaceBusyError,
    WorkspaceNotFoundError,
)

log = logging.getLogger("repocomplete.server")


class RequestTimeoutError(RepocompleteError):
    """The request ran past ``request_timeout_s`` (queueing included)."""

    error_type = "timeout"


class BodyTimeoutError(RepocompleteError):
    """The client did not send its request body within ``body_timeout_s``."""

    error_type = "body_timeout"


class QueueTimeoutError(OverloadedError):
    """Waited in the queue as long as allowed without getting a slot."""

    error_type = "unavailable"


class UnauthorizedError(RepocompleteError):
    error_type = "unauthorized"


class HostNotAllowedError(RepocompleteError):
    """A Host header other than the bound loopback name (DNS rebinding)."""

    error_type = "host_not_allowed"


class ForbiddenError(RepocompleteError):
    """The caller's token does not allow this (e.g. indexed content without an admin token)."""

    error_type = "forbidden"


class PathNotAllowedError(RepocompleteError):
    """A path outside what the operator allows (``--allow-root``), or one that is never allowed."""

    error_type = "path_not_allowed"


class UnknownAdapterError(AdapterError):
    """An adapter that is neither loaded nor inside an allowed adapter folder; the text names no path."""


#: The HTTP status of every error type; an error not listed takes its nearest listed base class's.
HTTP_STATUS: dict[type[Exception], int] = {
    RepocompleteError: 400,
    InvalidRequestError: 400,
    TemplateMismatchError: 400,
    ConfigError: 400,
    UnauthorizedError: 401,
    HostNotAllowedError: 403,
    ForbiddenError: 403,
    PathNotAllowedError: 403,
    ModelNotFoundError: 404,
    AdapterError: 404,
    WorkspaceNotFoundError: 404,
    BodyTimeoutError: 408,
    WorkspaceBusyError: 409,
    RequestTooLargeError: 413,
    OverloadedError: 429,
    CancelledError: 499,
    BackendUnavailableError: 503,
    QueueTimeoutError: 503,
    RequestTimeoutError: 504,
}


def http_status(exc: RepocompleteError) -> int:
    """``exc``'s status from :data:`HTTP_STATUS` (along its class hierarchy)."""
    return next(HTTP_STATUS[cls] for cls in type(exc).__mro__ if cls in HTTP_STATUS)


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    """The error body every route and middleware answers with (OpenAI's shape: ``code`` repeats
    ``type`` and ``param`` names the field at fault, so OpenAI clients read it too)."""
    body = {"type": error_type, "message": message, "code": error_type, "param": param}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def domain_error_response(exc: RepocompleteError) -> JSONResponse:
    """Map a domain error to its status, type and (for overload) ``Retry-After``."""
    headers = None
    if isinstance(exc, OverloadedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    elif isinstance(exc, UnauthorizedError):
        headers = {"WWW-Authenticate": "Bearer"}
    message = str(exc) or exc.error_type
    if isinstance(exc, AdapterError) and not isinstance(exc, UnknownAdapterError):
        # Raised while loading or using an adapter: the text may name server paths; the log keeps it.
        log.warning("adapter error: %s", message)
        message = "the adapter could not be loaded or used (the server log has the details)"
    return error_response(http_status(exc), exc.error_type, message, headers, getattr(exc, "param", None))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = err.get("msg", "invalid")
        if err.get("type") == "string_pattern_mismatch":  # only path fields have patterns (server.schemas.PathText)
            msg = "not an accepted path: no NUL or control characters; a root is absolute ('~' is not expanded)"
        parts.append(f"{where}: {msg}")
    return "invalid request: " + "; ".join(parts)


def json_error_message(exc: RequestValidationError) -> str | None:
    """``invalid JSON at line L, column C: <reason>`` when the body was not JSON, else None."""
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            loc = err.get("loc") or ()
            pos = loc[-1] if loc and isinstance(loc[-1], int) else 0
            doc = exc.body if isinstance(exc.body, str) else ""
            line = doc.count("\n", 0, pos) + 1
            column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
            reason = (err.get("ctx") or {}).get("error") or "not JSON"
            return f"invalid JSON at line {line}, column {column}: {reason}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (called once by ``create_app``)."""

    @app.exception_handler(RepocompleteError)
    async def _domain(_: Request, exc: RepocompleteError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        invalid_json = json_error_message(exc)
        if invalid_json is not None:  # not JSON at all: 400, as every JSON API answers
            return error_response(400, "invalid_json", invalid_json)
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        from server.methods import allowed_methods

        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return error_response(exc.status_code, kind, str(exc.detail), headers or None)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")


def _error_responses() -> dict:
    from server.schemas import ErrorOut

    described = {
        400: "invalid request or invalid JSON", 401: "missing or invalid bearer token", 403: "Host header, path or (without an admin token) operation not allowed",
        404: "unknown workspace, adapter or model", 408: "request body not received in time", 409: "conflict (e.g. still indexing)",
        413: "body or prompt too large", 422: "invalid request body",
        429: "overloaded (see Retry-After)", 499: "client disconnected", 503: "queue timeout or backend unavailable",
        504: "request timeout",
    }
    return {status: {"model": ErrorOut, "description": text} for status, text in described.items()}


#: OpenAPI ``responses=`` for every route: the error shape under each status it can return.
ERROR_RESPONSES: dict = _error_responses()
