"""Stop strings over a stream of text deltas.

Shared by every backend: text that might be the start of a stop string is held back
until it is known not to be, so a streamed completion never shows half a sentinel.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopScanner:
    """Feed text deltas; get back the part that is safe to emit; ``stopped`` once a stop string is seen."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.text = ""
        self.stopped = False
        self._emitted = 0

    def feed(self, delta: str) -> str:
        """Add ``delta``; return newly safe text (cut before the first stop string)."""
        if self.stopped:
            return ""
        self.text += delta
        hits = [at for s in self.stops if (at := self.text.find(s)) != -1]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True
            return self.flush()
        safe_end = len(self.text) - self._held_back()
        out = self.text[self._emitted : safe_end]
        self._emitted = max(self._emitted, safe_end)
        return out

    def flush(self) -> str:
        """Whatever is still held back (at the end of generation)."""
        out = self.text[self._emitted :]
        self._emitted = len(self.text)
        return out

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:k]):
                    longest = k
                    break
        return longest
