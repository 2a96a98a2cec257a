"""The SQLite store: schema versioning, corrupt databases, per-file rows and FTS5."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from indexer.chunks import Chunk, search_text
from indexer.store import SCHEMA_VERSION, FileRecord, Store, StoreInvalidError
from indexer.workspace import Workspace


def _record(path: str, body: str) -> FileRecord:
    chunk = Chunk("definition", 1, 2, body, search_text(body), symbol="parse_header")
    return FileRecord(path, "h", 1.0, len(body), "python", lines=2, chunks=[chunk],
                      symbols=[("parse_header", "function", 1, 2, None, "def parse_header(raw):")],
                      imports=[("email.utils", "quote", None, 1)], parents=[("Header", "Base", 3)],
                      items={"identifiers": "raw\nparse_header"})


def test_new_store_is_versioned_and_in_wal_mode(tmp_path):
    store = Store.create(tmp_path / "x.sqlite3", root="/r")
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    Store.open(tmp_path / "x.sqlite3").close()


def test_put_replace_and_remove_keep_fts_in_step(tmp_path):
    store = Store.create(tmp_path / "x.sqlite3", root="/r")
    with store.transaction():
        store.put_file(_record("a.py", "def parse_header(raw):\n    return raw"))
    assert [cid for cid, _ in store.search('"header"', 5)]
    assert store.definitions(["parse_header"])[0][2] == "a.py"
    assert store.file_imports("a.py") == [("email.utils", "quote", None, 1)]
    assert store.children_of(["Base"]) == [("Header", "Base", "a.py")]
    with store.transaction():  # replacing a file replaces every row derived from it
        store.put_file(_record("a.py", "def other():\n    pass"))
    assert store.search('"header"', 5) == []
    assert store.counts() == {"files": 1, "symbols": 1, "chunks": 1}
    with store.transaction():
        assert store.remove_file("a.py")
    assert store.counts() == {"files": 0, "symbols": 0, "chunks": 0}
    assert store.search('"other"', 5) == []


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    store = Store.create(tmp_path / "x.sqlite3", root="/r")
    with pytest.raises(RuntimeError), store.transaction():
        store.put_file(_record("a.py", "def parse_header(raw):\n    return raw"))
        raise RuntimeError("crash mid-write")
    assert store.counts()["files"] == 0


@pytest.mark.parametrize("damage", ["garbage", "old_version", "empty_tables"])
def test_unusable_database_is_rebuilt_with_a_message(tmp_path, caplog, damage):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "mod.py").write_text("def answer():\n    return 42\n")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        db = ws.db_path
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
        for suffix in ("-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
    else:
        conn = sqlite3.connect(db)
        if damage == "old_version":
            conn.execute("PRAGMA user_version=1")
        else:
            conn.execute("DROP TABLE symbols")
        conn.commit()
        conn.close()
    with pytest.raises(StoreInvalidError):
        Store.open(db)
    with caplog.at_level(logging.WARNING, logger="indexer"):
        with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
            assert "rebuilding" in caplog.text
            summary = ws.index()
            assert summary.files_indexed == 1
            assert [s.symbol for s in ws.definitions_of(["answer"])] == ["answer"]


def test_database_damaged_while_open_is_rebuilt_by_the_next_index(tmp_path, caplog):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "mod.py").write_text("def answer():\n    return 42\n")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        with open(ws.db_path, "r+b") as handle:  # another program scribbles over the header
            handle.write(b"\0" * 100)
        (repo / "other.py").write_text("def second():\n    return 2\n")
        with caplog.at_level(logging.WARNING, logger="indexer"):
            summary = ws.index()
        assert "rebuilding" in caplog.text
        assert summary.files_indexed == 2
        assert ws.symbols("answer") and ws.symbols("second")


def _fts_terms(store: Store) -> dict[str, int]:
    store.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, chunks_fts, row)")
    return dict(store.conn.execute("SELECT term, doc FROM temp.vocab WHERE doc > 0").fetchall())


def _expected_terms(store: Store) -> dict[str, int]:
    """term -> chunks holding it, recomputed from the stored bodies (what FTS5 must hold)."""
    from collections import Counter

    from indexer.retrieve.bm25 import _TOKEN

    counts: Counter[str] = Counter()
    for (body,) in store.conn.execute("SELECT body FROM chunks"):
        counts.update(set(_TOKEN.findall(search_text(body))))
    return dict(counts)


def test_contentless_fts_stays_exact_through_edits_reindexes_and_removals(tmp_path):
    """The FTS table keeps no copy of the terms: deleting a row re-derives them from the
    chunk's body. A wrong derivation would leave ghost postings; none may remain."""
    from tests.indexer.stdlib_repos import copy_stdlib

    repo = copy_stdlib(tmp_path / "repo", "json")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        assert _fts_terms(ws.store) == _expected_terms(ws.store)
        decoder = repo / "json" / "decoder.py"
        text = decoder.read_text()
        for i in range(5):   # live edits: a few windows change each time
            ws.update("json/decoder.py", text.replace("\n", f"\nrenamedCamelThing{i} = {i}\n", 1 + i))
        decoder.write_text(text.replace("JSONDecodeError", "JsonDecodingFailure"))
        ws.revert("json/decoder.py")                 # back to disk, which changed too
        ws.remove("json/tool.py")
        ws.index()                                   # re-adds tool.py
        assert ws.store.search('"renamed"', 5) == []
        assert ws.store.search('"decoding" AND "failure"', 5)
        assert _fts_terms(ws.store) == _expected_terms(ws.store)
        ws.index(rebuild=True)
        assert _fts_terms(ws.store) == _expected_terms(ws.store)


def test_records_pickle_compactly_and_come_back_identical(tmp_path):
    import pickle

    from indexer.config import IndexConfig
    from indexer.records import build_record
    from tests.indexer.stdlib_repos import STDLIB

    text = (STDLIB / "email" / "message.py").read_text()
    rec = build_record("email/message.py", text, "python", mtime=1.0, size=len(text), config=IndexConfig())
    assert any(c.span is None for c in rec.chunks) and any(c.span for c in rec.chunks)  # summaries too
    blob = pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL)
    copy = pickle.loads(blob)
    assert copy.chunks == rec.chunks and copy.symbols == rec.symbols and copy.items == rec.items
    assert len(blob) < 0.6 * sum(len(c.body) + len(c.tokens) for c in rec.chunks)
    # Every chunk's terms are search_text(body): what deleting it from FTS5 relies on.
    assert all(c.tokens == search_text(c.body) for c in rec.chunks)


class _LockedAtFirst:
    """A connection whose first ``BEGIN IMMEDIATE`` calls fail as SQLite's snapshot conflict does."""

    def __init__(self, conn, failures: int, message: str = "database is locked"):
        self.conn, self.failures, self.message, self.begins = conn, failures, message, 0

    def execute(self, sql, *args):
        if sql == "BEGIN IMMEDIATE":
            self.begins += 1
            if self.begins <= self.failures:
                raise sqlite3.OperationalError(self.message)
        return self.conn.execute(sql, *args)


def test_a_write_retries_a_lock_sqlite_did_not_wait_out(tmp_path, monkeypatch):
    import indexer.store

    store = Store.create(tmp_path / "i.sqlite3", root=str(tmp_path))
    flaky = store.conn = _LockedAtFirst(store.conn, failures=3)
    with store.transaction():
        store.conn.execute("INSERT INTO meta VALUES ('k', 'v')")
    assert flaky.begins == 4 and flaky.conn.execute("SELECT value FROM meta WHERE key='k'").fetchone() == ("v",)
    # other errors are not retried, and a lock that never clears gives up at the deadline
    store.conn = _LockedAtFirst(flaky.conn, failures=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="I/O"), store.transaction():
        pass
    monkeypatch.setattr(indexer.store, "BEGIN_RETRY_S", 0.05)
    store.conn = _LockedAtFirst(flaky.conn, failures=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"), store.transaction():
        pass
    assert store.conn.begins > 1
