"""Acceptance telemetry: what happened to a shown completion, stored locally only.

An event is ``{"type": "view|select|dismiss|partial", "completion_id", "choice_index",
"elapsed_ms", "accepted_chars"}`` (DESIGN.md). In HTTP mode events go to the server's
``/v1/events``; in-process they go to the same SQLite store (:mod:`repocomplete.events`).
"""

from __future__ import annotations

import time
from typing import Any

from repocomplete.errors import InvalidRequestError

EVENT_TYPES = ("view", "select", "dismiss", "partial")


def completion_event(kind: str, payload: Any, now: float | None = None) -> dict:
    """The event for a command argument ``payload`` (the dict the item's command carries)."""
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    data = payload if isinstance(payload, dict) else {}
    shown_at = data.get("shown_at")
    now = time.time() if now is None else now
    elapsed = max(0.0, (now - shown_at) * 1000) if isinstance(shown_at, (int, float)) else 0.0
    try:
        accepted = data.get("accepted_chars", len(str(data.get("text", ""))) if kind == "select" else 0)
        return {
            "type": kind,
            "completion_id": str(data.get("completion_id", "")),
            "choice_index": int(data.get("choice_index", 0) or 0),
            "elapsed_ms": int(round(elapsed)),
            "accepted_chars": int(accepted or 0) if kind in ("select", "partial") else 0,
        }
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequestError("choice_index and accepted_chars of a completion event must be integers") from None
