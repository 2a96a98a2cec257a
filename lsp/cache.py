"""An LRU cache of shown completions, keyed on the text around the cursor.

A hit is either the same (prefix, suffix) again, or a cursor that moved forward by
typing exactly what the suggestion proposed: then the rest of that suggestion is
still right, and showing it costs no model call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from itertools import islice


@dataclass(frozen=True)
class CachedCompletion:
    """A completion as stored: the text it proposed after ``prefix`` and before ``suffix``."""

    prefix: str
    suffix: str
    text: str
    completion_id: str
    choice_index: int = 0


@dataclass(frozen=True)
class CacheHit:
    """What to show now: the untyped rest of a cached completion."""

    text: str
    entry: CachedCompletion
    #: How many characters of the suggestion were typed since it was generated.
    typed: int


class CompletionCache:
    """Least-recently-used cache of completions; :meth:`get` also matches typing-through."""

    def __init__(self, capacity: int = 256, scan: int = 16) -> None:
        self.capacity = capacity
        #: How many recent entries to test for typing-through (exact keys cost nothing).
        self.scan = scan
        self._entries: OrderedDict[tuple[str, str], CachedCompletion] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def put(self, prefix: str, suffix: str, text: str, completion_id: str, choice_index: int = 0) -> None:
        """Remember that ``text`` was proposed between ``prefix`` and ``suffix``."""
        key = (prefix, suffix)
        self._entries[key] = CachedCompletion(prefix, suffix, text, completion_id, choice_index)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, prefix: str, suffix: str) -> CacheHit | None:
        """The completion to show at (prefix, suffix), if a stored one still applies."""
        entry = self._entries.get((prefix, suffix))
        if entry is not None:
            self._entries.move_to_end((prefix, suffix))
            self.hits += 1
            return CacheHit(entry.text, entry, 0)
        for entry in list(islice(reversed(self._entries.values()), self.scan)):
            hit = _typed_through(entry, prefix, suffix)
            if hit is not None:
                self._entries.move_to_end((entry.prefix, entry.suffix))
                self.hits += 1
                return hit
        self.misses += 1
        return None

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _typed_through(entry: CachedCompletion, prefix: str, suffix: str) -> CacheHit | None:
    """A hit when ``prefix`` is ``entry.prefix`` plus a proper beginning of ``entry.text``."""
    typed = len(prefix) - len(entry.prefix)
    if not 0 < typed < len(entry.text) or suffix != entry.suffix:
        return None
    if not entry.text.startswith(prefix[len(entry.prefix) :]) or not prefix.startswith(entry.prefix):
        return None
    return CacheHit(entry.text[typed:], entry, typed)
