"""Dense retrieval with the bundled offline sentence-embedding model."""

from __future__ import annotations

import pytest

from indexer.config import IndexConfig
from indexer.types import RetrievalQuery
from indexer.workspace import Workspace
from tests.indexer.stdlib_repos import copy_stdlib


@pytest.mark.slow
def test_dense_source_finds_code_by_meaning_and_keeps_vectors(tmp_path):
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
