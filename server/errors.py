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

from repocomplete.errors import OverloadedError, RepocompleteError

log = logging.getLogger("repocomplete.server")


class RequestTimeoutError(RepocompleteError):
    """The request ran past ``request_timeout_s`` (queueing included)."""

    http_status = 504
    error_type = "timeout"


class QueueTimeoutError(OverloadedError):
    """Waited in the queue as long as allowed without getting a slot."""

    http_status = 503
    error_type = "unavailable"


class UnauthorizedError(RepocompleteError):
    http_status = 401
    error_type = "unauthorized"


class HostNotAllowedError(RepocompleteError):
    """A Host header other than the bound loopback name (DNS rebinding)."""

    http_status = 403
    error_type = "host_not_allowed"


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body every route and middleware answers with."""
    return JSONResponse({"error": {"type": error_type, "message": message}}, status_code=status, headers=headers)


def domain_error_response(exc: RepocompleteError) -> JSONResponse:
    """Map a domain error to its status, type and (for overload) ``Retry-After``."""
    headers = None
    if isinstance(exc, OverloadedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    elif isinstance(exc, UnauthorizedError):
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(exc.http_status, exc.error_type, str(exc) or exc.error_type, headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (called once by ``create_app``)."""

    @app.exception_handler(RepocompleteError)
    async def _domain(_: Request, exc: RepocompleteError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")


def _error_responses() -> dict:
    from server.schemas import ErrorOut

    described = {
        400: "invalid request", 401: "missing or invalid bearer token", 403: "Host header not allowed",
        404: "unknown workspace, adapter or model", 413: "body or prompt too large", 422: "invalid request body",
        429: "overloaded (see Retry-After)", 499: "client disconnected", 503: "queue timeout or backend unavailable",
        504: "request timeout",
    }
    return {status: {"model": ErrorOut, "description": text} for status, text in described.items()}


#: OpenAPI ``responses=`` for every route: the error shape under each status it can return.
ERROR_RESPONSES: dict = _error_responses()
