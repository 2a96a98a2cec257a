"""Per-document debounce: only the last request of a burst reaches the model.

Editors ask for a completion on every keystroke. Each request waits ``delay`` seconds;
a newer request for the same document supersedes it, and the superseded one returns
without any model work. A request cancelled by the client (``$/cancelRequest``) is
cancelled while it waits, so it never starts model work either.
"""

from __future__ import annotations

import asyncio
import itertools


class Debouncer:
    """Tracks the newest request per key (document URI)."""

    def __init__(self, delay_s: float = 0.075) -> None:
        self.delay_s = delay_s
        self._latest: dict[str, int] = {}
        self._ticket = itertools.count(1)
        #: Requests that gave way to a newer one for the same document.
        self.superseded = 0

    async def wait(self, key: str) -> bool:
        """Wait out the delay; True when this is still the newest request for ``key``."""
        ticket = next(self._ticket)
        self._latest[key] = ticket
        # even without a delay, yield once so that queued cancellations are seen first
        await asyncio.sleep(self.delay_s if self.delay_s > 0 else 0)
        if self._latest.get(key) != ticket:
            self.superseded += 1
            return False
        return True

    def forget(self, key: str) -> None:
        """Drop the state of a closed document."""
        self._latest.pop(key, None)
