"""Dense retrieval with the bundled offline sentence-embedding model."""

from __future__ import annotations

import pytest

from indexer.config import IndexConfig
from indexer.types import RetrievalQuery
from indexer.workspace import Workspace
from tests.indexer.stdlib_repos import copy_stdlib


@pytest.mark.slow
def test_dense_source_finds_code_by_meaning_and_keeps_vectors(tmp_path):
    pytest.importorskip("torch", reason="the embedding model runs on torch (absent in `make test-notorch`)")
    repo = copy_stdlib(tmp_path / "repo", "json")
    for name in ("__init__.py", "decoder.py"):  # fewer chunks to embed on a CPU
        (repo / "json" / name).unlink()
    with Workspace(repo, cache_dir=tmp_path / "cache", config=IndexConfig(dense=True)) as ws:
        ws.index()
        stored = ws.store.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        assert stored == ws.store.conn.execute(
            "SELECT count(*) FROM chunks WHERE kind IN ('window', 'definition')").fetchone()[0]
        q = RetrievalQuery("app.py", "def encode_float(o, allow_nan):\n    # handle NaN and infinity\n", "",
                           sources=("dense",), budget_tokens=2000, visible_text="x")
        snippets = ws.retrieve(q)
        assert snippets and all(s.source == "dense" for s in snippets)
        assert snippets[0].filepath == "json/encoder.py" and "nan" in snippets[0].body.lower()
        assert 0 < snippets[-1].score <= snippets[0].score <= 1


@pytest.fixture
def counted_embed(monkeypatch):
    """A stand-in embedding model (deterministic unit vectors) that counts the texts it embeds."""
    import numpy as np

    from indexer.retrieve import dense

    calls: list[int] = []

    def embed(texts):
        calls.append(len(texts))
        vectors = np.array([[hash(t) % 97 + 1, len(t) + 1, 1.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    monkeypatch.setattr(dense, "embed", embed)
    return calls


def many_chunks_repo(root, files: int = 60):
    root.mkdir()
    for i in range(files):
        (root / f"mod{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(12)))
    return root


def test_one_query_embeds_at_most_its_budget_and_the_next_ones_go_on(tmp_path, counted_embed):
    """Issue 21.3: a dense query on an unembedded workspace embedded every chunk inside the request."""
    config = IndexConfig(dense_embed_per_query=50)
    with Workspace(many_chunks_repo(tmp_path / "repo"), cache_dir=tmp_path / "cache", config=config) as ws:
        ws.index()
        total = ws.store.conn.execute("SELECT count(*) FROM chunks WHERE kind IN ('window', 'definition')").fetchone()[0]
        assert total > 150
        query = RetrievalQuery("mod0.py", "def g(x):\n    return f1_3(", "", sources=("dense",), visible_text="x")
        vectors = []
        for _ in range(3):
            assert all(s.source == "dense" for s in ws.retrieve(query))
            vectors.append(ws.store.conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
        assert vectors == [50, 100, 150]


def test_should_stop_ends_dense_retrieval_within_one_batch(tmp_path, counted_embed):
    from indexer.errors import RetrievalCancelled
    from indexer.retrieve.dense import QUERY_BATCH

    config = IndexConfig(dense_embed_per_query=100_000)
    with Workspace(many_chunks_repo(tmp_path / "repo"), cache_dir=tmp_path / "cache", config=config) as ws:
        ws.index()
        query = RetrievalQuery("mod0.py", "def g(x):\n", "", sources=("dense",), visible_text="x",
                               should_stop=lambda: len(counted_embed) >= 1)  # the deadline passes during batch 1
        with pytest.raises(RetrievalCancelled):
            ws.retrieve(query)
        assert counted_embed == [QUERY_BATCH]
        kept = ws.store.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        assert kept == QUERY_BATCH  # the finished batch is kept for the next query
        stopped_at_once = RetrievalQuery("mod0.py", "def g(x):\n", "", sources=("dense", "bm25"), visible_text="x",
                                         should_stop=lambda: True)
        with pytest.raises(RetrievalCancelled):
            ws.retrieve(stopped_at_once)
        assert counted_embed == [QUERY_BATCH]
