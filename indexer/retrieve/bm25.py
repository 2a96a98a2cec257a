"""BM25 over chunks: an in-memory sparse index, with FTS5 for whatever changed since.

FTS5 holds the source of truth and answers correctly at any moment, but it scores every
matching row through a SQL function, which costs tens of milliseconds per query on a
repository the size of the standard library. So the first query builds (or loads) a
column-sparse matrix of precomputed BM25 weights, the layout ``bm25s`` uses: a query then
sums a few posting arrays with numpy. Chunks written after that snapshot (live buffers,
small re-indexes) have higher ids and are searched in FTS5 with a ``rowid >`` bound, which
is cheap because there are few of them; deleted chunks drop out when their rows are read.
The snapshot is saved next to the database, keyed by the index's generation.

Queries keep only their rarest terms, within a budget of postings: a term found in a large
share of all chunks (``self``, ``return``) changes little in the ranking but costs a scan
of its whole posting list.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.chunks import search_text
from indexer.store import Store

log = logging.getLogger("indexer.retrieve")

# FTS5's bm25() defaults, so snapshot and FTS5 scores can be merged.
K1 = 1.2
B = 0.75
#: Query terms are kept rarest-first until their postings exceed this (but at least MIN_TERMS).
POSTINGS_BUDGET = 20_000
MIN_TERMS = 3
#: Rebuild the snapshot once this many chunks were written after it.
MAX_OVERLAY = 5000
# FTS5's unicode61 tokens of the (already lower-cased) indexed text.
_TOKEN = re.compile(r"[^\W_]+")


class Snapshot:
    """Precomputed BM25 weights of every chunk up to ``max_rowid``, column-sparse by term."""

    def __init__(self, vocab: dict[str, int], indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray,
                 rowids: np.ndarray, df: np.ndarray, db_id: str, max_rowid: int) -> None:
        self.vocab, self.indptr, self.docs, self.weights = vocab, indptr, docs, weights
        self.rowids, self.df, self.db_id, self.max_rowid = rowids, df, db_id, max_rowid

    @classmethod
    def build(cls, store: Store) -> Snapshot:
        db_id = store.db_id()
        # The FTS table is contentless: a chunk's indexed terms are search_text(body).
        rows = store.conn.execute("SELECT id, body FROM chunks ORDER BY id").fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        per_doc = [_TOKEN.findall(search_text(r[1])) for r in rows]
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
        return cls(vocab, indptr, docs, weights, rowids, df, db_id, max_rowid)

    def save(self, path: Path) -> None:
        words = "\n".join(self.vocab).encode("utf-8")
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, vocab=np.frombuffer(words, dtype=np.uint8), indptr=self.indptr, docs=self.docs,
                 weights=self.weights, rowids=self.rowids, df=self.df,
                 db_id=np.frombuffer(self.db_id.encode(), dtype=np.uint8),
                 max_rowid=np.array([self.max_rowid], dtype=np.int64))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        with np.load(path) as data:
            words = data["vocab"].tobytes().decode("utf-8")
            vocab = {w: i for i, w in enumerate(words.split("\n"))} if words else {}
            return cls(vocab, data["indptr"], data["docs"], data["weights"], data["rowids"], data["df"],
                       data["db_id"].tobytes().decode(), int(data["max_rowid"][0]))

    def search(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        if not terms or not len(self.rowids):
            return []
        ids = [self.vocab[t] for t in terms]
        docs = np.concatenate([self.docs[self.indptr[i]:self.indptr[i + 1]] for i in ids])
        weights = np.concatenate([self.weights[self.indptr[i]:self.indptr[i + 1]] for i in ids])
        if not len(docs):
            return []
        # Sum per document over the matching postings, then take the top ``limit``: through
        # a dense score array when postings are many (linear), else through a sort of them.
        if len(docs) * 8 > len(self.rowids):
            scores = np.bincount(docs, weights=weights, minlength=len(self.rowids))
            unique = None
        else:
            unique, inverse = np.unique(docs, return_inverse=True)
            scores = np.bincount(inverse, weights=weights)
        k = min(limit, int(np.count_nonzero(scores)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        docs_of = top if unique is None else unique[top]
        return [(int(self.rowids[d]), float(scores[i])) for d, i in zip(docs_of, top)]


class BM25:
    """BM25 search over the store's chunks (see the module docstring)."""

    def __init__(self, store: Store, *, max_terms: int = 12, cache_path: Path | None = None) -> None:
        self.store = store
        self.max_terms = max_terms
        self.cache_path = cache_path
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._checked: tuple[str, bool] | None = None   # (generation, snapshot still usable)
        self._fallback_df: tuple[str, dict[str, int], int] | None = None

    def invalidate(self) -> None:
        """Re-check the snapshot against the store (after an index run changed chunks)."""
        self._checked = None

    def _usable(self, snap: Snapshot) -> bool:
        """A snapshot stays usable across index runs while few chunks came or went since."""
        if snap.db_id != self.store.db_id() or self.store.max_chunk_id() - snap.max_rowid > MAX_OVERLAY:
            return False
        generation = self.store.generation()
        if self._checked is None or self._checked[0] != generation:
            gone = len(snap.rowids) - self.store.chunks_up_to(snap.max_rowid)
            self._checked = (generation, gone <= MAX_OVERLAY)
        return self._checked[1]

    def snapshot(self, *, wait: bool = False) -> Snapshot | None:
        """The snapshot to search: in memory, else from disk, else built.

        Building takes seconds on a large repository, so by default it happens in a
        background thread and this returns None meanwhile (FTS5 answers alone);
        ``wait=True`` waits for that build, or builds in the caller when none is running.
        """
        snap = self._snapshot
        if snap is not None and self._usable(snap):
            return snap
        if self.cache_path is not None and self.cache_path.exists():
            try:
                loaded = Snapshot.load(self.cache_path)
                if self._usable(loaded):
                    self._snapshot = loaded
                    return loaded
            except (OSError, ValueError, KeyError) as exc:
                log.warning("BM25 snapshot %s unreadable (%s); rebuilding it", self.cache_path, exc)
        if wait:
            # One build at a time: a background build already running is the one to wait for
            # (building a second one here would be replaced by the first when it lands).
            with self._lock:
                builder = self._builder
            if builder is not None and builder.is_alive():
                builder.join()
                snap = self._snapshot
                if snap is not None and self._usable(snap):
                    return snap
            self._install(Snapshot.build(self.store))
            return self._snapshot
        with self._lock:
            if self._builder is None or not self._builder.is_alive():
                self._builder = threading.Thread(target=self._build_in_background, name="bm25-snapshot",
                                                 daemon=True)
                self._builder.start()
        return None

    def _build_in_background(self) -> None:
        try:
            store = Store.open(self.store.path)  # a connection of this thread's own
            try:
                self._install(Snapshot.build(store))
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001 - FTS5 keeps answering; say why it stays slow
            log.warning("BM25 snapshot build failed: %s", exc)

    def _install(self, snap: Snapshot) -> None:
        # Saved before it is published: whoever sees the snapshot in memory also finds it on disk
        # (a reader that saw it first raced the save; a CI run caught it).
        if self.cache_path is not None:
            try:
                snap.save(self.cache_path)
            except OSError as exc:
                log.warning("cannot save BM25 snapshot %s: %s", self.cache_path, exc)
        self._checked = None
        self._snapshot = snap

    def _frequencies(self, snap: Snapshot | None) -> tuple[dict[str, int] | None, np.ndarray | None, int]:
        if snap is not None:
            return snap.vocab, snap.df, len(snap.rowids)
        generation = self.store.generation()
        if self._fallback_df is None or self._fallback_df[0] != generation:
            self._fallback_df = (generation, self.store.document_frequencies(), self.store.chunk_count())
        return None, None, self._fallback_df[2]

    def select_terms(self, terms: Sequence[str], snap: Snapshot | None = None) -> list[str]:
        """The query's rarest distinct terms that occur in the index (at most ``max_terms``)."""
        if snap is None:
            snap = self.snapshot()
        vocab, df_array, n_docs = self._frequencies(snap)
        if vocab is not None:
            df = {t: int(df_array[vocab[t]]) for t in dict.fromkeys(terms) if t in vocab and len(t) > 1}
        else:
            table = self._fallback_df[1]
            df = {t: table[t] for t in dict.fromkeys(terms) if t in table and len(t) > 1}
        present = sorted(df, key=df.__getitem__)
        # Rarest first, within a budget of postings: a term found in a large share of the
        # chunks carries little IDF but costs its whole posting list.
        kept: list[str] = []
        postings = 0
        for term in present[: self.max_terms]:
            if len(kept) >= MIN_TERMS and postings + df[term] > max(POSTINGS_BUDGET, n_docs // 20):
                break
            if df[term] > n_docs / 3 and kept:
                break
            kept.append(term)
            postings += df[term]
        return kept

    def match_expression(self, terms: Sequence[str]) -> str | None:
        """The FTS5 query of :meth:`select_terms`: ``"a" OR "b" ...``; None when nothing can match."""
        kept = self.select_terms(terms)
        return " OR ".join(f'"{t}"' for t in kept) if kept else None

    def search(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first."""
        snap = self.snapshot()
        kept = self.select_terms(terms, snap)
        if snap is None:
            match = " OR ".join(f'"{t}"' for t in kept)
            return self.store.search(match, limit) if kept else []
        hits = snap.search(kept, limit) if kept else []
        if self.store.max_chunk_id() > snap.max_rowid:
            # Chunks newer than the snapshot: also terms the snapshot has never seen.
            fresh = [t for t in dict.fromkeys(terms) if len(t) > 1 and t not in snap.vocab][: self.max_terms]
            if kept or fresh:
                match = " OR ".join(f'"{t}"' for t in kept + fresh)
                hits = sorted(hits + self.store.search(match, limit, min_rowid=snap.max_rowid),
                              key=lambda h: -h[1])[:limit]
        return hits
