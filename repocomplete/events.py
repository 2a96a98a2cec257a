"""Completion events (view / select / dismiss / partial), stored locally in SQLite, never sent anywhere.

One store for every front-end: the server's ``/v1/events`` and the language server's
in-process mode write here (by default ``<cache dir>/events.sqlite``).

Accepts our event body and Tabby's (``elapsed`` for ``elapsed_ms``, ``view_id``,
``select_kind``); unknown event types are stored too, so newer clients are not refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from indexer.config import cache_root

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    completion_id TEXT,
    choice_index INTEGER NOT NULL DEFAULT 0,
    view_id TEXT,
    elapsed_ms INTEGER,
    accepted_chars INTEGER,
    select_kind TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_completion ON events (completion_id);
"""

def default_events_path() -> Path:
    """``events.sqlite`` in the cache directory (honours ``$REPOCOMPLETE_CACHE_DIR``)."""
    return cache_root() / "events.sqlite"


#: Event types that mean the user took (part of) a completion.
ACCEPTING = ("select", "partial")


class EventStore:
    """A small thread-safe SQLite table of events."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Telemetry: losing the last events on a power cut is fine; an fsync per event is not.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def add(self, event: dict) -> None:
        """Store one event (a validated body; unknown fields kept in ``body``)."""
        elapsed = event.get("elapsed_ms")
        if elapsed is None:
            elapsed = event.get("elapsed")
        row = (
            time.time(),
            event["type"],
            event.get("completion_id"),
            event.get("choice_index") or 0,
            event.get("view_id"),
            elapsed,
            event.get("accepted_chars"),
            event.get("select_kind"),
            json.dumps(event, sort_keys=True),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO events (ts, type, completion_id, choice_index, view_id, elapsed_ms, accepted_chars,"
                " select_kind, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def recent(self, limit: int = 100) -> list[dict]:
        """Newest first, as stored bodies plus ``ts``."""
        with self._lock:
            rows = self._db.execute("SELECT ts, body FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{"ts": ts, **json.loads(body)} for ts, body in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT type, COUNT(*) FROM events GROUP BY type").fetchall()
        return dict(rows)

    def acceptance_rate(self) -> float:
        """Completions accepted (select/partial) / completions viewed (CAR); 0 when none viewed."""
        with self._lock:
            viewed, accepted = self._db.execute(
                "SELECT COUNT(DISTINCT CASE WHEN type = 'view' THEN completion_id END),"
                f" COUNT(DISTINCT CASE WHEN type IN {ACCEPTING!r} THEN completion_id END) FROM events"
            ).fetchone()
        return accepted / viewed if viewed else 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()
