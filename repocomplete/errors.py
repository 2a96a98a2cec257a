"""Typed domain errors.

Every error a user can cause is a :class:`RepocompleteError` subclass with a one-line,
human-readable message and a stable ``error_type`` name. Front-ends map them at their
edge, each with one table: exit codes (CLI), HTTP statuses (``server.errors.HTTP_STATUS``),
JSON-RPC error codes (``lsp.errors.JSONRPC_CODES``); nothing below the edge formats them.
"""

from __future__ import annotations


class RepocompleteError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    #: Stable machine-readable type name, used in ``{"error": {"type": ...}}``.
    error_type: str = "invalid_request"


class InvalidRequestError(RepocompleteError):
    """The request is malformed or out of range (empty file, position outside file, ...)."""


class ModelNotFoundError(RepocompleteError):
    """A model path or id that does not exist locally."""

    error_type = "model_not_found"


class ModelUnavailableError(ModelNotFoundError):
    """A catalogue model that is not installed, failed verification, or could not be pulled."""

    error_type = "model_unavailable"


class TemplateMismatchError(RepocompleteError):
    """A FIM template was forced on a model whose tokenizer lacks its special tokens."""

    error_type = "template_mismatch"


class AdapterError(RepocompleteError):
    """An adapter that is unknown, unreadable, or trained for another base model."""

    error_type = "adapter_error"


class WorkspaceNotFoundError(RepocompleteError):
    """A workspace name or root that is not registered."""

    error_type = "workspace_not_found"


class WorkspaceBusyError(RepocompleteError):
    """A workspace is being indexed, so it cannot be removed now."""

    error_type = "conflict"


class ConfigError(RepocompleteError):
    """An invalid configuration file, key or value."""

    error_type = "config_error"


class BackendUnavailableError(RepocompleteError):
    """The model backend (e.g. a remote OpenAI-compatible engine) cannot be reached."""

    error_type = "backend_unavailable"


class OverloadedError(RepocompleteError):
    """Too many requests in flight or queued; retry later."""

    error_type = "overloaded"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLargeError(RepocompleteError):
    """A body or prompt over the configured size limit."""

    error_type = "request_too_large"


class CancelledError(RepocompleteError):
    """The request was cancelled by the client (disconnect, ``$/cancelRequest``)."""

    error_type = "cancelled"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty): error text for one-line reports."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
