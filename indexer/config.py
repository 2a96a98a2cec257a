"""Configuration of one workspace index (typed, with defaults that suit serving)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.retrieve.sources import DEFAULT_SOURCES

#: Environment variable that moves every cache of repocomplete (tests, CI, shared machines).
CACHE_DIR_ENV = "REPOCOMPLETE_CACHE_DIR"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache directory of every component (indexes, events, models): ``override``, else
    ``$REPOCOMPLETE_CACHE_DIR``, else ``~/.cache/repocomplete``. The one place it is computed."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "repocomplete"


def default_cache_dir() -> Path:
    """Where index databases go: ``$REPOCOMPLETE_CACHE_DIR`` itself when set, else
    ``~/.cache/repocomplete/index`` (never inside a repository)."""
    return cache_root() if os.environ.get(CACHE_DIR_ENV) else cache_root() / "index"


@dataclass
class IndexConfig:
    """How a workspace is indexed and what retrieval uses by default."""

    #: Folder holding one SQLite database per workspace; None = :func:`default_cache_dir`.
    cache_dir: Path | None = None
    #: ``indexer.walk.WalkConfig`` (ignore files, size limit, ...); None = the walker's defaults.
    walk: Any = None
    #: Sliding windows for BM25/Jaccard (CrossCodeEval: 10-line chunks).
    window_lines: int = 10
    window_stride: int = 5
    #: Definition chunks longer than this are cut (classes are summarised by their signatures).
    max_definition_lines: int = 40
    #: Sources used when a query does not name its own.
    sources: tuple[str, ...] = DEFAULT_SOURCES
    #: Dense retrieval (sentence embeddings kept in the store); off by default: it is slow on CPU.
    dense: bool = False
    #: Chunks a single dense query may embed when the index lacks vectors (the rest wait for later
    #: queries or an index run with ``dense=True``): bounds the work one request can cause.
    dense_embed_per_query: int = 512
    #: Processes parsing files during big index runs; 0 = automatic (``indexer.workers.auto_workers``:
    #: CPUs - 1, at most 8, two on a 2-CPU machine), 1 = none.
    workers: int = 0
    #: Candidate chunks fetched from FTS5 before Jaccard re-ranking.
    lexical_candidates: int = 64
    #: Query terms kept for BM25 (the rarest ones): bounds query latency on big repositories.
    max_query_terms: int = 12
    #: Prefix lines used as the lexical query (CrossCodeEval / RepoCoder: the last lines).
    query_lines: int = 10

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
