"""Value types shared by the indexer's modules and its callers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

@dataclass
class Snippet:
    """One piece of repository context, tagged with where it came from."""

    filepath: str
    body: str
    source: str
    score: float = 0.0
    start_line: int = 0          # 1-based, inclusive; 0 when unknown
    end_line: int = 0
    #: Context type (RepoFusion): method_names_and_bodies, identifiers, lines, ...
    kind: str = "lines"
    #: Name of the symbol this snippet defines, when it is a definition.
    symbol: str | None = None


@dataclass
class RetrievalQuery:
    """Everything retrieval needs about the cursor."""

    filepath: str                 # path relative to the workspace root (or absolute)
    prefix: str
    suffix: str = ""
    language: str | None = None
    #: Budget for all returned snippets together, measured with ``count_tokens``.
    budget_tokens: int = 512
    max_snippets: int = 16
    #: Sources to use; None = indexer.retrieve.sources.DEFAULT_SOURCES.
    sources: tuple[str, ...] | None = None
    #: Token counter of the model in use; None = whitespace-split estimate.
    count_tokens: Callable[[str], int] | None = None
    #: Text visible in the prompt window; snippets repeating it are dropped.
    visible_text: str = ""
    #: Polled between units of expensive work (each source, each batch of embeddings); when it
    #: returns True retrieval stops with ``indexer.errors.RetrievalCancelled`` (the caller's
    #: deadline passed or its client went away).
    should_stop: Callable[[], bool] | None = None


@dataclass
class IndexProgress:
    files_done: int
    files_total: int
    bytes_done: int
    elapsed_s: float
    current: str = ""


@dataclass
class IndexSummary:
    files_indexed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_by_language: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    symbols: int = 0
    chunks: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
