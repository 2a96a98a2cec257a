"""Runs every requested source for one cursor and fuses their rankings.

Each source returns its own ranking (best first); :func:`indexer.retrieve.fusion.fuse`
merges them. Sources are independent so any of them can be switched off per request.
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
from indexer.retrieve.proposals import PROPOSAL_SOURCES, ModuleMap, import_files, propose
from indexer.retrieve.symbols import definition_snippets
from indexer.store import Store
from indexer.types import SOURCES, RetrievalQuery, Snippet

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

    def lexical(self, cursor: Cursor, sources: set[str], limit: int) -> dict[str, list[Snippet]]:
        """BM25 and Jaccard rankings from one FTS5 candidate search, other files only."""
        hits = self.bm25.search(search_terms(cursor.query_text), self.config.lexical_candidates)
        rows = [r for r in self.store.chunks([cid for cid, _ in hits]) if r.path != cursor.path]
        out: dict[str, list[Snippet]] = {}
        if "bm25" in sources:
            score = dict(hits)
            out["bm25"] = [chunk_snippet(r, "bm25", score[r.id]) for r in rows[:limit]]
        if "jaccard" in sources:
            query = cursor.query_term_set
            ranked = [(r, jaccard(query, self.chunk_terms(r))) for r in rows if r.kind == "window"]
            ranked = sorted((p for p in ranked if p[1] > 0), key=lambda p: -p[1])
            out["jaccard"] = [chunk_snippet(r, "jaccard", s) for r, s in ranked[:limit]]
        return out

    def rankings(self, query: RetrievalQuery, relpath: str) -> tuple[Cursor, dict[str, list[Snippet]]]:
        """Each requested source's own ranking (before fusion)."""
        sources = set(query.sources if query.sources is not None else self.config.sources)
        unknown = sources - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown retrieval sources: {', '.join(sorted(unknown))}; choose from {', '.join(SOURCES)}")
        cursor = make_cursor(query, relpath, self.config.query_lines)
        limit = max(query.max_snippets, 4)
        rankings: dict[str, list[Snippet]] = {}
        timings: dict[str, float] = {}

        def timed(name: str, run) -> None:
            start = time.perf_counter()
            result = run()
            timings[name] = (time.perf_counter() - start) * 1000
            if isinstance(result, dict):
                rankings.update(result)
            else:
                rankings[name] = result

        if sources & {"bm25", "jaccard"}:
            timed("lexical", lambda: self.lexical(cursor, sources, limit))
        if "definition" in sources:
            imported = frozenset(p.path for p in import_files(self.store, cursor, self.modules))
            timed("definition", lambda: definition_snippets(self.store, cursor, limit, preferred_paths=imported))
        for source in PROPOSAL_SOURCES:
            if source in sources:
                timed(source, lambda s=source: propose(self.store, cursor, s, self.modules, limit=limit))
        if "dense" in sources:
            timed("dense", lambda: self.dense_snippets(cursor, limit))
        self.last_timings = timings
        return cursor, rankings

    def dense_snippets(self, cursor: Cursor, limit: int) -> list[Snippet]:
        from indexer.retrieve.dense import DenseIndex  # sentence-transformers: only when asked for

        if self._dense is None:
            self._dense = DenseIndex(self.store)
        hits = [(cid, s) for cid, s in self._dense.search(cursor.query_text, limit * 2)]
        rows = {r.id: r for r in self.store.chunks([cid for cid, _ in hits])}
        return [chunk_snippet(rows[cid], "dense", s) for cid, s in hits
                if cid in rows and rows[cid].path != cursor.path][:limit]

    def retrieve(self, query: RetrievalQuery, relpath: str) -> list[Snippet]:
        """Ranked, deduplicated snippets that fit ``query.budget_tokens``."""
        cursor, rankings = self.rankings(query, relpath)
        return fuse(rankings, visible_lines=cursor.visible_lines, budget_tokens=query.budget_tokens,
                    count_tokens=query.count_tokens, max_snippets=query.max_snippets)
