"""Jaccard similarity between the query's terms and sliding-window chunks (RepoCoder)."""

from __future__ import annotations

from collections.abc import Iterable

from indexer.chunks import term_set


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def rank_by_jaccard(query_terms: set[str], candidates: Iterable, terms_of=lambda c: term_set(c.body)
                    ) -> list[tuple[object, float]]:
    """Candidates with a positive similarity to the query, most similar first."""
    scored = [(c, jaccard(query_terms, terms_of(c))) for c in candidates]
    scored = [pair for pair in scored if pair[1] > 0]
    scored.sort(key=lambda pair: -pair[1])
    return scored


class ChunkTerms:
    """Term sets of stored chunks, cached by chunk id.

    Chunk ids are never reused for other text, so an entry never goes stale; the cache is
    only bounded (about 20 MB of sets at most).
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._sets: dict[int, frozenset[str]] = {}

    def __call__(self, row) -> frozenset[str]:
        terms = self._sets.get(row.id)
        if terms is None:
            if len(self._sets) >= self.max_entries:
                self._sets.clear()
            terms = self._sets[row.id] = frozenset(term_set(row.body))
        return terms
