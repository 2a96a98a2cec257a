"""Runs every requested source for one cursor and fuses their rankings.

Each source of the table in :mod:`indexer.retrieve.sources` returns its own ranking (best
first); :func:`indexer.retrieve.fusion.fuse` merges them. Sources are independent so any of
them can be switched off per request.
"""

from __future__ import annotations

import logging
import time

from indexer.chunks import search_terms
from indexer.config import IndexConfig
from indexer.retrieve.bm25 import BM25
from indexer.retrieve.cursor import Cursor, chunk_snippet, make_cursor
from indexer.retrieve.fusion import fuse
from indexer.retrieve.jaccard import ChunkTerms, jaccard
from indexer.retrieve.proposals import ModuleMap
from indexer.retrieve.sources import RETRIEVAL_SOURCES, check_sources
from indexer.store import Store
from indexer.types import RetrievalQuery, Snippet

log = logging.getLogger("indexer.retrieve")


class Retriever:
    """Retrieval over one open store; caches what only changes when the index does."""

    def __init__(self, store: Store, config: IndexConfig, *, root_package: str | None = None) -> None:
        self.store = store
        self.config = config
        #: Name of the workspace folder: imports may name it when the root is itself a package.
        self.root_package = root_package
        self.bm25 = BM25(store, max_terms=config.max_query_terms,
                         cache_path=store.path.with_name(store.path.name + ".bm25.npz"))
        self._modules: ModuleMap | None = None
        self._dense = None
        self.chunk_terms = ChunkTerms()
        #: Milliseconds each source took in the last :meth:`retrieve` (for debugging and benches).
        self.last_timings: dict[str, float] = {}

    def invalidate(self, *, files: bool = True, terms: bool = False) -> None:
        """Forget caches after the index changed (files added/removed; many chunks changed)."""
        if files:
            self._modules = None
        if terms:
            self.bm25.invalidate()
            self._dense = None

    def forget_identifiers(self, path: str) -> None:
        """Drop the cached identifier terms of ``path`` (the file changed)."""
        if self._modules is not None:
            self._modules.identifier_terms.pop(path, None)

    @property
    def modules(self) -> ModuleMap:
        if self._modules is None:
            self._modules = ModuleMap(self.store.paths(), chunk_terms=self.chunk_terms, root_package=self.root_package)
        return self._modules

    def lexical_candidates(self, cursor: Cursor) -> tuple[list, dict[int, float]]:
        """Chunks of other files from one FTS5 candidate search, and their BM25 scores.

        Both lexical sources rank these; the search runs once per cursor.
        """
        if "lexical" not in cursor.memo:
            hits = self.bm25.search(search_terms(cursor.query_text), self.config.lexical_candidates)
            rows = [r for r in self.store.chunks([cid for cid, _ in hits]) if r.path != cursor.path]
            cursor.memo["lexical"] = (rows, dict(hits))
        return cursor.memo["lexical"]

    def bm25_snippets(self, cursor: Cursor, limit: int) -> list[Snippet]:
        rows, score = self.lexical_candidates(cursor)
        return [chunk_snippet(r, "bm25", score[r.id]) for r in rows[:limit]]

    def jaccard_snippets(self, cursor: Cursor, limit: int) -> list[Snippet]:
        rows, _ = self.lexical_candidates(cursor)
        query = cursor.query_term_set
        ranked = [(r, jaccard(query, self.chunk_terms(r))) for r in rows if r.kind == "window"]
        ranked = sorted((p for p in ranked if p[1] > 0), key=lambda p: -p[1])
        return [chunk_snippet(r, "jaccard", s) for r, s in ranked[:limit]]

    def rankings(self, query: RetrievalQuery, relpath: str) -> tuple[Cursor, dict[str, list[Snippet]]]:
        """Each requested source's own ranking (before fusion)."""
        sources = set(query.sources if query.sources is not None else self.config.sources)
        check_sources(sources)
        cursor = make_cursor(query, relpath, self.config.query_lines)
        limit = max(query.max_snippets, 4)
        rankings: dict[str, list[Snippet]] = {}
        timings: dict[str, float] = {}
        for name, source in RETRIEVAL_SOURCES.items():
            if name in sources and source.rank is not None:
                cursor.check_stop()
                start = time.perf_counter()
                rankings[name] = source.rank(self, cursor, limit)
                timings[name] = (time.perf_counter() - start) * 1000
        self.last_timings = timings
        return cursor, rankings

    def dense_snippets(self, cursor: Cursor, limit: int) -> list[Snippet]:
        from indexer.retrieve.dense import DenseIndex  # sentence-transformers: only when asked for

        if self._dense is None:
            self._dense = DenseIndex(self.store)
        hits = self._dense.search(cursor.query_text, limit * 2, should_stop=cursor.should_stop,
                                  embed_limit=self.config.dense_embed_per_query)
        rows = {r.id: r for r in self.store.chunks([cid for cid, _ in hits])}
        return [chunk_snippet(rows[cid], "dense", s) for cid, s in hits
                if cid in rows and rows[cid].path != cursor.path][:limit]

    def retrieve(self, query: RetrievalQuery, relpath: str) -> list[Snippet]:
        """Ranked, deduplicated snippets that fit ``query.budget_tokens``."""
        cursor, rankings = self.rankings(query, relpath)
        return fuse(rankings, visible_lines=cursor.visible_lines, budget_tokens=query.budget_tokens,
                    count_tokens=query.count_tokens, max_snippets=query.max_snippets)
