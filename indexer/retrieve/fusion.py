"""Reciprocal-rank fusion of the sources' rankings, deduplication, and packing to a budget.

RRF (Cormack et al., 2009) needs no score calibration between sources as different as
BM25, Jaccard and "this file imports that one": each source contributes ``1 / (k + rank)``.
After fusion at most one snippet per location survives, nothing the prompt window already
shows is repeated, and snippets are packed best-first into the token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from indexer.retrieve.cursor import VISIBLE_FRACTION
from indexer.retrieve.sources import RETRIEVAL_SOURCES
from indexer.types import Snippet

#: The RRF constant of the original paper: damps the head of every ranking equally.
RRF_K = 60
#: Two snippets of one file overlapping by more than this share of the smaller are one location.
OVERLAP_FRACTION = 0.5


def whitespace_tokens(text: str) -> int:
    """The token estimate used when the caller gives no tokenizer."""
    return len(text.split())


def _location(s: Snippet) -> tuple:
    # Line-less snippets (outlines, identifier lists) are located by file and context type.
    return (s.filepath, s.start_line, s.end_line) if s.start_line else (s.filepath, s.kind)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Snippet]], k: int = RRF_K) -> list[Snippet]:
    """Merge rankings; a location found by several sources keeps the snippet of its best rank.

    Weights, tie-break priorities and leading counts come from the source table
    (:mod:`indexer.retrieve.sources`): the leading snippets of their sources come first
    (after ``client`` snippets), the rest in fused-score order.
    """
    fused: dict[tuple, float] = {}
    best: dict[tuple, tuple[int, Snippet]] = {}
    table = RETRIEVAL_SOURCES
    unlisted = max(s.priority for s in table.values()) + 1
    for _, ranking in sorted(rankings.items(), key=lambda item: table[item[0]].priority if item[0] in table else unlisted):
        for rank, snippet in enumerate(ranking):
            loc = _location(snippet)
            weight = table[snippet.source].weight if snippet.source in table else 1.0
            fused[loc] = fused.get(loc, 0.0) + weight / (k + rank + 1)
            if loc not in best or rank < best[loc][0]:
                best[loc] = (rank, snippet)
    order = sorted(fused, key=lambda loc: -fused[loc])
    leading = {_location(snippet) for name, source in table.items() if source.leading
               for snippet in rankings.get(name, ())[:source.leading]}
    if leading:  # stable: the leaders keep their fused order among themselves, after client snippets
        order.sort(key=lambda loc: 0 if best[loc][1].source == "client" else 1 if loc in leading else 2)
    out = []
    for loc in order:
        s = best[loc][1]
        out.append(Snippet(s.filepath, s.body, s.source, fused[loc], s.start_line, s.end_line, s.kind, s.symbol))
    return out


def is_visible(snippet: Snippet, visible_lines: frozenset[str] | set[str]) -> bool:
    """True when most of the snippet's lines are already in the prompt window."""
    lines = [s for s in (line.strip() for line in snippet.body.split("\n")) if s]
    if not lines:
        return True
    seen = sum(1 for line in lines if line in visible_lines)
    return seen >= VISIBLE_FRACTION * len(lines)


def _overlaps(a: Snippet, b: Snippet) -> bool:
    if a.filepath != b.filepath or not a.start_line or not b.start_line:
        return False
    inter = min(a.end_line, b.end_line) - max(a.start_line, b.start_line) + 1
    smaller = min(a.end_line - a.start_line, b.end_line - b.start_line) + 1
    return inter >= OVERLAP_FRACTION * smaller


def dedupe(snippets: Iterable[Snippet], visible_lines: frozenset[str] | set[str]) -> list[Snippet]:
    """Drop visible snippets, repeated bodies and snippets overlapping a better one.

    When a definition overlaps a better-ranked window of its own lines, the definition takes
    the window's place: the whole function is the more useful context of the two.
    """
    kept: list[Snippet] = []
    bodies: set[str] = set()
    for s in snippets:
        body = s.body.strip()
        if body in bodies or is_visible(s, visible_lines):
            continue
        clash = next((i for i, k in enumerate(kept) if _overlaps(s, k)), None)
        if clash is not None:
            old = kept[clash]
            if s.kind != "lines" and old.kind == "lines":
                new = Snippet(s.filepath, s.body, s.source, old.score, s.start_line, s.end_line, s.kind, s.symbol)
                kept[clash] = new
                kept = [k for k in kept if k is new or not _overlaps(new, k)]
                bodies.add(body)
            continue
        bodies.add(body)
        kept.append(s)
    return kept


def pack(snippets: Iterable[Snippet], budget_tokens: int, count_tokens: Callable[[str], int] | None,
         max_snippets: int) -> list[Snippet]:
    """Best-first snippets whose bodies (and paths) fit in ``budget_tokens`` together."""
    count = count_tokens or whitespace_tokens
    out: list[Snippet] = []
    used = 0
    for s in snippets:
        if len(out) >= max_snippets:
            break
        cost = count(s.body) + count(s.filepath) + 2  # the path header and separators
        if used + cost <= budget_tokens:
            out.append(s)
            used += cost
    return out


def fuse(rankings: Mapping[str, Sequence[Snippet]], *, visible_lines: frozenset[str] | set[str],
         budget_tokens: int, count_tokens: Callable[[str], int] | None, max_snippets: int) -> list[Snippet]:
    """RRF, then :func:`dedupe`, then :func:`pack`: the snippets a prompt should carry."""
    return pack(dedupe(reciprocal_rank_fusion(rankings), visible_lines), budget_tokens, count_tokens, max_snippets)
