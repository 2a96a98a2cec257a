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


def rank_by_jaccard(query_terms: set[str], candidates: Iterable, key=lambda c: c.body) -> list[tuple[object, float]]:
    """Candidates with a positive similarity to the query, most similar first."""
    scored = [(c, jaccard(query_terms, term_set(key(c)))) for c in candidates]
    scored = [pair for pair in scored if pair[1] > 0]
    scored.sort(key=lambda pair: -pair[1])
    return scored
