"""The retrieval sources: one table, one :class:`RetrievalSource` per source.

A source ranks snippets for one cursor, best first; the retriever runs every requested
source and :mod:`indexer.retrieve.fusion` merges their rankings with the weight, tie-break
priority and leading count each source declares here. Every list of source names (the
indexer's defaults, the engine's and the HTTP schema's checks, the evals' ablations) is
derived from this table.

To add a source: write its ranking function ``(retriever, cursor, limit) -> list[Snippet]``
(a new module under ``indexer/retrieve/`` when it is more than a call), then add one
``RetrievalSource(...)`` line to ``_TABLE``. Its snippets must carry ``source=<its name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from indexer.retrieve.cursor import Cursor
from indexer.retrieve.proposals import import_files, propose
from indexer.retrieve.symbols import definition_snippets
from indexer.types import Snippet

#: ``(retriever, cursor, limit) -> snippets, best first``; the retriever is an
#: :class:`indexer.retrieve.retriever.Retriever` (store, module map, caches).
Rank = Callable[[object, Cursor, int], list[Snippet]]


@dataclass(frozen=True)
class RetrievalSource:
    """One retrieval source and how fusion treats it."""

    name: str
    description: str
    #: The ranking function; None for ``client`` (the engine supplies the editor's snippets).
    rank: Rank | None
    #: Reciprocal-rank-fusion weight (docs/BENCHMARKS.md has the measurements behind each).
    weight: float = 1.0
    #: Tie-break between equal fused scores: lower first.
    priority: int = 100
    #: How many of its best snippets go first whatever their fused score (after ``client``).
    leading: int = 0
    #: Used when a query names no sources.
    default: bool = True


def _proposal(source: str) -> Rank:
    return lambda r, cursor, limit: propose(r.store, cursor, source, r.modules, limit=limit)


def _definitions(r, cursor: Cursor, limit: int) -> list[Snippet]:
    # definitions in files the cursor's file imports win ties: that is where a called name lives
    imported = frozenset(p.path for p in import_files(r.store, cursor, r.modules))
    return definition_snippets(r.store, cursor, limit, preferred_paths=imported)


# Weights: exact structural hits (the definition of the name being called, what the file
# imports) and the file's own lines most like the cursor's are worth two lexical guesses;
# the one best in-file window leads (it holds the line to write most often). Measurements:
# docs/BENCHMARKS.md, "Retrieval fusion weights".
_TABLE: tuple[RetrievalSource, ...] = (
    RetrievalSource("import", "definitions of imported names resolved inside the repo",
                    _proposal("import"), weight=2.0, priority=3),
    RetrievalSource("parent_class", "files defining parent classes of classes in this file",
                    _proposal("parent_class"), priority=4),
    RetrievalSource("child_class", "files defining subclasses of classes in this file",
                    _proposal("child_class"), priority=9),
    RetrievalSource("sibling", "other files in the same directory", _proposal("sibling"), priority=10),
    RetrievalSource("similar_name", "files with a similar name (test_foo.py <-> foo.py)",
                    _proposal("similar_name"), priority=5),
    RetrievalSource("in_file", "this file's own lines beyond the prompt window most like the cursor's",
                    _proposal("in_file"), weight=2.0, priority=1, leading=1),
    RetrievalSource("definition", "definitions of identifiers used near the cursor",
                    _definitions, weight=2.0, priority=2),
    RetrievalSource("bm25", "FTS5 BM25 over chunks", lambda r, cursor, limit: r.bm25_snippets(cursor, limit),
                    priority=6),
    RetrievalSource("jaccard", "Jaccard over sliding 10-line windows",
                    lambda r, cursor, limit: r.jaccard_snippets(cursor, limit), priority=7),
    RetrievalSource("dense", "dense embeddings (sentence-transformers; off by default)",
                    lambda r, cursor, limit: r.dense_snippets(cursor, limit), priority=8, default=False),
    RetrievalSource("client", "client-supplied declarations and snippets (set by the engine)",
                    None, weight=2.0, priority=0, default=False),
)

#: Every source by name, in listing order.
RETRIEVAL_SOURCES: dict[str, RetrievalSource] = {s.name: s for s in _TABLE}
#: Every source name, switchable per request (the evals ablate them).
SOURCES: tuple[str, ...] = tuple(RETRIEVAL_SOURCES)
#: The sources used when a query names none.
DEFAULT_SOURCES: tuple[str, ...] = tuple(s.name for s in _TABLE if s.default)
#: The name of the engine's source for client-supplied snippets.
CLIENT = "client"


def check_sources(names) -> None:
    """ValueError naming the unknown ones when ``names`` holds a name the table lacks."""
    unknown = set(names) - set(RETRIEVAL_SOURCES)
    if unknown:
        raise ValueError(f"unknown retrieval sources: {', '.join(sorted(unknown))}; choose from {', '.join(SOURCES)}")
