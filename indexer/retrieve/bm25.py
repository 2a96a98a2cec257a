"""BM25 over chunks, through the store's FTS5 table.

The query is the last lines of the prefix (CrossCodeEval). Only its rarest terms are
kept: a term found in half the repository's chunks (``self``, ``return``) changes no
ranking but costs a scan of its whole posting list, and dropping such terms is what keeps
a query at a few milliseconds on a repository the size of the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence

from indexer.store import Store


class BM25:
    """Builds FTS5 match expressions from query terms and runs them."""

    def __init__(self, store: Store, *, max_terms: int = 12) -> None:
        self.store = store
        self.max_terms = max_terms
        self._df: dict[str, int] | None = None
        self._docs = 0

    def invalidate(self) -> None:
        """Forget document frequencies (after a re-index changed many chunks)."""
        self._df = None

    def _frequencies(self) -> dict[str, int]:
        if self._df is None:
            self._df = self.store.document_frequencies()
            self._docs = max(self.store.chunk_count(), 1)
        return self._df

    def match_expression(self, terms: Sequence[str]) -> str | None:
        """``"a" OR "b" ...`` over the rarest distinct terms; None when nothing can match."""
        df = self._frequencies()
        present = [t for t in dict.fromkeys(terms) if df.get(t, 0) > 0]
        if not present:
            return None
        present.sort(key=lambda t: df[t])
        # Terms in more than a third of all chunks carry almost no IDF; keep one at most.
        common = self._docs / 3
        kept = [t for t in present if df[t] <= common][: self.max_terms] or present[:1]
        return " OR ".join(f'"{t}"' for t in kept)

    def search(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first."""
        match = self.match_expression(terms)
        if match is None:
            return []
        return self.store.search(match, limit)
