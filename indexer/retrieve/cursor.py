"""What retrieval knows about the cursor, computed once per query and shared by every source."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from indexer.chunks import line_terms
from indexer.errors import RetrievalCancelled
from indexer.types import RetrievalQuery, Snippet

#: A snippet whose non-blank lines are at least this visible in the prompt window already is dropped.
VISIBLE_FRACTION = 0.8

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Words that are never worth a definition lookup, in any of the indexed languages.
_KEYWORDS = frozenset(
    "and as assert async await break case catch class const continue def default del do elif else "
    "end enum except export extends false final finally fn for from func function if impl import in "
    "interface is lambda let match mut new nil none not null or package pass private protected pub "
    "public raise return self static struct super switch this throw true try type use var void while "
    "with yield None True False define require library".split()
)


@dataclass
class Cursor:
    """A retrieval query, pre-digested."""

    path: str                      # relative to the workspace root
    prefix: str
    suffix: str
    line: int                      # 1-based line of the cursor
    query_text: str                # last lines of the prefix: the lexical query
    query_terms: list[str]
    near_identifiers: list[str]    # identifiers around the cursor, nearest first
    visible_lines: frozenset[str] = field(default_factory=frozenset)
    #: Work several sources share for this one query (e.g. the lexical candidate search).
    memo: dict = field(default_factory=dict, repr=False, compare=False)
    #: The query's ``should_stop`` (None: never stop).
    should_stop: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    def check_stop(self) -> None:
        """Raise :class:`RetrievalCancelled` when the query's caller wants retrieval to stop."""
        if self.should_stop is not None and self.should_stop():
            raise RetrievalCancelled("retrieval stopped: the request was cancelled or ran out of time")

    @cached_property
    def query_term_set(self) -> set[str]:
        return set(self.query_terms)


def near_identifiers(prefix: str, suffix: str, lines_before: int = 8, lines_after: int = 2) -> list[str]:
    """Identifiers used near the cursor, nearest first, without keywords or duplicates.

    Order: the cursor line leftwards, then its rest, then earlier lines upwards, then the
    following lines (a call being typed usually names its target on the cursor line).
    """
    before = prefix.split("\n")[-(lines_before + 1):]
    after = suffix.split("\n")[:lines_after + 1]
    ordered = [reversed(_IDENTIFIER.findall(before[-1])), _IDENTIFIER.findall(after[0])]
    ordered += [reversed(_IDENTIFIER.findall(line)) for line in reversed(before[:-1])]
    ordered += [_IDENTIFIER.findall(line) for line in after[1:]]
    found: dict[str, None] = {}
    for names in ordered:
        for name in names:
            if name not in _KEYWORDS and len(name) > 1:
                found.setdefault(name)
    return list(found)


def visible_lines(query: RetrievalQuery) -> frozenset[str]:
    """Stripped non-blank lines already in the prompt window (the whole file if not told)."""
    text = query.visible_text or (query.prefix + "\n" + query.suffix)
    return frozenset(s for s in (line.strip() for line in text.split("\n")) if s)


def make_cursor(query: RetrievalQuery, relpath: str, query_lines: int) -> Cursor:
    prefix_lines = query.prefix.split("\n")
    query_text = "\n".join(prefix_lines[-query_lines:])
    return Cursor(
        path=relpath,
        prefix=query.prefix,
        suffix=query.suffix,
        line=len(prefix_lines),
        query_text=query_text,
        query_terms=line_terms(query_text),
        near_identifiers=near_identifiers(query.prefix, query.suffix),
        visible_lines=visible_lines(query),
        should_stop=query.should_stop,
    )


def chunk_snippet(row, source: str, score: float, kind: str | None = None) -> Snippet:
    """A stored chunk (``store.ChunkRow``) as a snippet of ``source``."""
    if kind is None:
        kind = "method_names_and_bodies" if row.kind == "definition" else "lines"
    return Snippet(filepath=row.path, body=row.body, source=source, score=score,
                   start_line=row.start_line, end_line=row.end_line, kind=kind, symbol=row.symbol)
