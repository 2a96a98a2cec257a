"""Keep repository context stable while the user types within one line.

The prompt starts with the retrieved context, so a context that changes on every
keystroke would throw away the KV cache of the whole prompt (the main latency lever
on CPU). While a request only extends the previous one's prefix on the same line, with
the same suffix, the previous snippets are still the right ones: reuse them. A new
line, a jump elsewhere, or another file retrieves afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from indexer.types import Snippet


@dataclass
class _Entry:
    prefix: str
    suffix: str
    snippets: list[Snippet]


class SnippetMemo:
    """Last retrieval per key (workspace, file, sources), reused for same-line extensions."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, prefix: str, suffix: str) -> list[Snippet] | None:
        """The remembered snippets if ``prefix`` extends the remembered one within its last line."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or suffix != entry.suffix or not prefix.startswith(entry.prefix):
                return None
            if "\n" in prefix[len(entry.prefix):]:
                return None
            self._entries.move_to_end(key)
            return list(entry.snippets)

    def put(self, key: Hashable, prefix: str, suffix: str, snippets: list[Snippet]) -> None:
        with self._lock:
            self._entries[key] = _Entry(prefix, suffix, list(snippets))
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
