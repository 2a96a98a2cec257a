"""BM25 over chunks: an in-memory sparse index, with FTS5 for whatever changed since.

FTS5 holds the source of truth and answers correctly at any moment, but it scores every
matching row through a SQL function, which costs tens of milliseconds per query on a
repository the size of the standard library. So the first query builds (or loads) a
column-sparse matrix of precomputed BM25 weights, the layout ``bm25s`` uses: a query then
sums a few posting arrays with numpy. Chunks written after that snapshot (live buffers,
small re-indexes) have higher ids and are searched in FTS5 with a ``rowid >`` bound, which
is cheap because there are few of them; deleted chunks drop out when their rows are read.
The snapshot is saved next to the database, keyed by the index's generation.

Queries keep only their rarest terms: a term found in a third of all chunks (``self``,
``return``) changes no ranking but costs a scan of its whole posting list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.store import Store

log = logging.getLogger("indexer.retrieve")

# FTS5's bm25() defaults, so snapshot and FTS5 scores can be merged.
K1 = 1.2
B = 0.75
#: Rebuild the snapshot once this many chunks were written after it.
MAX_OVERLAY = 5000
# FTS5's unicode61 tokens of the (already lower-cased) indexed text.
_TOKEN = re.compile(r"[^\W_]+")


class Snapshot:
    """Precomputed BM25 weights of every chunk up to ``max_rowid``, column-sparse by term."""

    def __init__(self, vocab: dict[str, int], indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray,
                 rowids: np.ndarray, df: np.ndarray, generation: str, max_rowid: int) -> None:
        self.vocab, self.indptr, self.docs, self.weights = vocab, indptr, docs, weights
        self.rowids, self.df, self.generation, self.max_rowid = rowids, df, generation, max_rowid

    @classmethod
    def build(cls, store: Store) -> Snapshot:
        generation = store.generation()
        rows = store.conn.execute("SELECT rowid, tokens FROM chunks_fts ORDER BY rowid").fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        per_doc = [_TOKEN.findall(r[1]) for r in rows]
        del rows
        lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
        vocab: dict[str, int] = {}
        term_ids = np.fromiter((vocab.setdefault(t, len(vocab)) for doc in per_doc for t in doc),
                               dtype=np.int64, count=int(lengths.sum()))
        del per_doc
        n_docs = len(rowids)
        doc_ids = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        keys, tf = np.unique(term_ids * max(n_docs, 1) + doc_ids, return_counts=True)
        terms = keys // max(n_docs, 1)
        docs = (keys % max(n_docs, 1)).astype(np.int32)
        df = np.bincount(terms, minlength=len(vocab)).astype(np.int64)
        avgdl = float(lengths.mean()) if n_docs else 1.0
        idf = np.log((n_docs - df + 0.5) / (df + 0.5))
        idf = np.where(idf <= 0, 1e-6, idf)
        norm = K1 * (1 - B + B * lengths[docs] / avgdl)
        weights = (idf[terms] * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        max_rowid = int(rowids[-1]) if n_docs else 0
        return cls(vocab, indptr, docs, weights, rowids, df, generation, max_rowid)

    def save(self, path: Path) -> None:
        words = "\n".join(self.vocab).encode("utf-8")
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, vocab=np.frombuffer(words, dtype=np.uint8), indptr=self.indptr, docs=self.docs,
                 weights=self.weights, rowids=self.rowids, df=self.df,
                 generation=np.frombuffer(self.generation.encode(), dtype=np.uint8),
                 max_rowid=np.array([self.max_rowid], dtype=np.int64))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        with np.load(path) as data:
            words = data["vocab"].tobytes().decode("utf-8")
            vocab = {w: i for i, w in enumerate(words.split("\n"))} if words else {}
            return cls(vocab, data["indptr"], data["docs"], data["weights"], data["rowids"], data["df"],
                       data["generation"].tobytes().decode(), int(data["max_rowid"][0]))

    def search(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        if not terms or not len(self.rowids):
            return []
        ids = [self.vocab[t] for t in terms]
        docs = np.concatenate([self.docs[self.indptr[i]:self.indptr[i + 1]] for i in ids])
        weights = np.concatenate([self.weights[self.indptr[i]:self.indptr[i + 1]] for i in ids])
        if not len(docs):
            return []
        # Sum per document over the (few) matching postings, then take the top ``limit``.
        unique, inverse = np.unique(docs, return_inverse=True)
        scores = np.bincount(inverse, weights=weights)
        k = min(limit, len(unique))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rowids[unique[i]]), float(scores[i])) for i in top]


class BM25:
    """BM25 search over the store's chunks (see the module docstring)."""

    def __init__(self, store: Store, *, max_terms: int = 12, cache_path: Path | None = None) -> None:
        self.store = store
        self.max_terms = max_terms
        self.cache_path = cache_path
        self._snapshot: Snapshot | None = None

    def invalidate(self) -> None:
        """Forget the snapshot (after a re-index changed chunks)."""
        self._snapshot = None

    def snapshot(self) -> Snapshot:
        """The current snapshot: in memory, else loaded from disk, else built (and saved)."""
        generation = self.store.generation()
        if self._snapshot is not None and self._snapshot.generation == generation:
            if self.store.max_chunk_id() - self._snapshot.max_rowid <= MAX_OVERLAY:
                return self._snapshot
        if self.cache_path is not None and self.cache_path.exists():
            try:
                loaded = Snapshot.load(self.cache_path)
                if loaded.generation == generation and self.store.max_chunk_id() - loaded.max_rowid <= MAX_OVERLAY:
                    self._snapshot = loaded
                    return loaded
            except (OSError, ValueError, KeyError) as exc:
                log.warning("BM25 snapshot %s unreadable (%s); rebuilding it", self.cache_path, exc)
        self._snapshot = Snapshot.build(self.store)
        if self.cache_path is not None:
            try:
                self._snapshot.save(self.cache_path)
            except OSError as exc:
                log.warning("cannot save BM25 snapshot %s: %s", self.cache_path, exc)
        return self._snapshot

    def select_terms(self, terms: Sequence[str]) -> list[str]:
        """The query's rarest distinct terms that occur in the index (at most ``max_terms``)."""
        snap = self.snapshot()
        df = snap.df
        present = [t for t in dict.fromkeys(terms) if t in snap.vocab and len(t) > 1]
        if not present:
            return []
        present.sort(key=lambda t: df[snap.vocab[t]])
        # Terms in more than a third of all chunks carry almost no IDF; keep one at most.
        common = len(snap.rowids) / 3
        return [t for t in present if df[snap.vocab[t]] <= common][: self.max_terms] or present[:1]

    def match_expression(self, terms: Sequence[str]) -> str | None:
        """The FTS5 query of :meth:`select_terms`: ``"a" OR "b" ...``; None when nothing can match."""
        kept = self.select_terms(terms)
        return " OR ".join(f'"{t}"' for t in kept) if kept else None

    def search(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first."""
        snap = self.snapshot()
        kept = self.select_terms(terms)
        hits = snap.search(kept, limit) if kept else []
        if self.store.max_chunk_id() > snap.max_rowid:
            # Chunks newer than the snapshot: also terms the snapshot has never seen.
            fresh = [t for t in dict.fromkeys(terms) if len(t) > 1][: self.max_terms * 2]
            if fresh:
                match = " OR ".join(f'"{t}"' for t in (kept + [t for t in fresh if t not in snap.vocab]))
                hits = sorted(hits + self.store.search(match, limit, min_rowid=snap.max_rowid),
                              key=lambda h: -h[1])[:limit]
        return hits

