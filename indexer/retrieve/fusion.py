"""Reciprocal-rank fusion of the sources' rankings, deduplication, and packing to a budget.

RRF (Cormack et al., 2009) needs no score calibration between sources as different as
BM25, Jaccard and "this file imports that one": each source contributes ``1 / (k + rank)``.
After fusion at most one snippet per location survives, nothing the prompt window already
shows is repeated, and snippets are packed best-first into the token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from indexer.types import Snippet

#: The RRF constant of the original paper: damps the head of every ranking equally.
RRF_K = 60
#: Tie-break between equal fused scores: the file's own analogous lines, then exact structural
#: sources, then lexical guesses.
SOURCE_PRIORITY: tuple[str, ...] = (
    "client", "in_file", "definition", "import", "parent_class", "similar_name", "bm25", "jaccard",
    "dense", "child_class", "sibling",
)
#: RRF weight per source: exact structural hits (the definition of the name being called,
#: what the file imports) are worth two lexical guesses, and so are the file's own lines most
#: like the cursor's (``in_file``: a far-off repeat of the pattern being typed, out of a small
#: model's window), which also lead ties: they hold the line to write more often than any other
#: source, and a small prompt keeps only the first two or three snippets. Weight 3 (every in-file
#: window before any definition) measured a little better on held-out packages (fused exact match
#: 174 vs 167 of 1,167; docs/BENCHMARKS.md) but leaves no room for other files' definitions.
SOURCE_WEIGHTS: dict[str, float] = {"in_file": 2.0, "definition": 2.0, "import": 2.0, "client": 2.0}
#: How many of a source's best snippets go first, whatever their fused score (after the
#: editor's own ``client`` snippets). The file's window most like the cursor's lines is the
#: likeliest place of the line to type; a weight of 3 for every in-file window got it there
#: too but pushed every other file out of a small prompt. Leading with the one best window
#: and ranking the rest by RRF measured best on the dev packages (the target in the prompt
#: for 271 holes of 929 vs 244 with weight 2 and 269 with weight 3; exact match 135 vs 124),
#: and a score gate (lead only when its Jaccard is high) did worse (262 at 0.3, 250 at 0.5);
#: two leaders 267. On the held-out eval packages: fused exact match 173 vs 167 (none 140).
LEADING: dict[str, int] = {"in_file": 1}
#: A snippet whose non-blank lines are at least this visible already is dropped.
VISIBLE_FRACTION = 0.8
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

    The :data:`LEADING` snippets of their sources come first (after ``client`` snippets),
    the rest in fused-score order.
    """
    fused: dict[tuple, float] = {}
    best: dict[tuple, tuple[int, Snippet]] = {}
    priority = {name: i for i, name in enumerate(SOURCE_PRIORITY)}
    for _, ranking in sorted(rankings.items(), key=lambda item: priority.get(item[0], len(priority))):
        for rank, snippet in enumerate(ranking):
            loc = _location(snippet)
            fused[loc] = fused.get(loc, 0.0) + SOURCE_WEIGHTS.get(snippet.source, 1.0) / (k + rank + 1)
            if loc not in best or rank < best[loc][0]:
                best[loc] = (rank, snippet)
    order = sorted(fused, key=lambda loc: -fused[loc])
    leading = {_location(snippet) for source, count in LEADING.items()
               for snippet in rankings.get(source, ())[:count]}
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
