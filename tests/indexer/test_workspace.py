"""Workspace: incremental indexing of real code, skipped files, secrets, live buffers."""

from __future__ import annotations

import os
import statistics
import time

import pytest

from indexer.errors import IndexerError, RootNotDirectoryError
from indexer.types import RetrievalQuery
from indexer.workspace import Workspace, database_name
from tests.indexer.stdlib_repos import STDLIB, copy_stdlib


@pytest.fixture
def repo(tmp_path):
    return copy_stdlib(tmp_path / "repo", "json", "email")


@pytest.fixture
def ws(repo, tmp_path):
    with Workspace(repo, cache_dir=tmp_path / "cache") as workspace:
        yield workspace


def _py_files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))


def test_index_is_complete_then_incremental(ws, repo):
    first = ws.index()
    py = _py_files(repo)
    assert first.files_by_language["python"] == len(py)
    assert first.files_indexed == len([p for p in repo.rglob("*") if p.is_file()])
    assert first.symbols > 500 and first.chunks > 1000
    assert set(py) <= set(ws.files())
    assert ws.db_path.parent == repo.parent / "cache" and not list(repo.rglob("*.sqlite3"))

    again = ws.index()
    assert again.files_indexed == 0 and again.files_unchanged == first.files_indexed

    target = repo / "json" / "encoder.py"
    target.write_text(target.read_text() + "\n\ndef freshly_added_helper(value):\n    return value\n")
    changed = ws.index()
    assert changed.files_indexed == 1
    assert ws.symbols("freshly_added_helper")[0]["path"] == "json/encoder.py"

    # A new mtime with the same content is recognised by its hash: nothing is re-parsed.
    os.utime(target, (time.time() + 10, time.time() + 10))
    touched = ws.index()
    assert touched.files_indexed == 0 and touched.files_unchanged == first.files_indexed


def test_removed_files_leave_the_index(ws, repo):
    ws.index()
    (repo / "json" / "tool.py").unlink()
    summary = ws.index()
    assert summary.files_removed == 1
    assert "json/tool.py" not in ws.files()
    assert all(s["path"] != "json/tool.py" for s in ws.symbols("main"))


def test_skipped_files_are_counted_by_reason_and_the_run_completes(ws, repo):
    (repo / "blob.py").write_bytes(b"\x00\x01\x02binary")
    (repo / "latin1.py").write_bytes("# caf\xe9\n".encode("latin-1"))
    (repo / ".env").write_text("API_KEY=abc\n")
    (repo / "huge.py").write_text("x = 1\n" * 200_000)
    summary = ws.index()
    reasons = summary.skipped_by_reason
    assert reasons.get("binary") == 1 and reasons.get("not_utf8") == 1
    assert reasons.get("secret_file") == 1 and reasons.get("too_large") == 1
    assert not {"blob.py", "latin1.py", ".env", "huge.py"} & set(ws.files())
    assert summary.files_by_language["python"] == len(_py_files(repo)) - 3


def test_a_file_that_becomes_unreadable_is_dropped(ws, repo):
    ws.index()
    bad = repo / "json" / "scanner.py"
    bad.write_bytes(b"\xff\xfe not utf-8 any more \x00")
    summary = ws.index()
    assert "json/scanner.py" not in ws.files()
    assert summary.files_removed == 1 and summary.skipped_by_reason == {"binary": 1}


def test_files_deleted_during_the_run_are_reported_and_skipped(ws, repo):
    victims = [repo / "email" / "utils.py", repo / "json" / "tool.py"]

    def delete_later_files(progress):  # runs between files, like a user deleting mid-index
        if progress.files_done == 1:
            for victim in victims:
                victim.unlink()

    summary = ws.index(progress=delete_later_files)
    assert summary.skipped_by_reason.get("vanished") == 2
    assert len(summary.errors) == 2 and all("vanished" in e for e in summary.errors)
    assert not {"email/utils.py", "json/tool.py"} & set(ws.files())
    assert summary.files_indexed == len([p for p in repo.rglob("*") if p.is_file()])


def test_secrets_never_reach_stored_chunks(ws, repo):
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    (repo / "settings.py").write_text(f'AWS_KEY = "{key}"\nGITHUB = "{token}"\n\ndef connect():\n    return 1\n')
    ws.index()
    bodies = [row[0] for row in ws.store.conn.execute("SELECT body FROM chunks")]
    assert any("connect" in body for body in bodies)
    assert not any(key in body or token in body for body in bodies)
    ws.store.conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, chunks_fts, row)")
    terms = {row[0] for row in ws.store.conn.execute("SELECT term FROM temp.terms")}
    assert "connect" in terms
    assert not {key.lower(), token.lower(), token.lower().split("_")[1]} & terms


def test_live_buffer_update_and_remove(ws, repo):
    ws.index()
    text = (repo / "json" / "decoder.py").read_text() + "\ndef only_in_the_editor(x):\n    return x\n"
    ws.update("json/decoder.py", text)
    assert ws.symbols("only_in_the_editor")[0]["path"] == "json/decoder.py"
    # The next index run keeps the editor's text rather than the disk's.
    assert ws.index().files_indexed == 0
    assert ws.symbols("only_in_the_editor")
    ws.revert("json/decoder.py")  # closed without saving: the disk's text again
    assert ws.symbols("only_in_the_editor") == [] and ws.symbols("JSONDecoder")
    ws.update(str(repo / "json" / "brand_new.py"), "def unsaved_file():\n    pass\n")
    assert "json/brand_new.py" in ws.files()
    assert ws.remove("json/brand_new.py") and "json/brand_new.py" not in ws.files()
    assert ws.symbols("unsaved_file") == []


def test_context_items_are_computed_on_demand_from_the_live_buffer(ws, repo):
    ws.index()
    query = RetrievalQuery("json/editing.py", "import re\n", "")
    text = "from json import loads\n\nfirst_name = 'unsaved literal'\n"
    ws.update("json/editing.py", text)
    ws.update("json/editing.py", text + "second_name = loads(first_name)\n")   # reparsed incrementally
    identifiers = ws.proposals(query, "in_file", "identifiers")[0].body.split("\n")
    assert identifiers == ["json", "loads", "first_name", "second_name"]
    assert ws.proposals(query, "in_file", "string_literals")[0].body == "'unsaved literal'"
    # Closed without saving: the same items again, now from the file on disk.
    (repo / "json" / "editing.py").write_text(text + "second_name = loads(first_name)\n")
    ws.revert("json/editing.py")
    assert ws.proposals(query, "in_file", "identifiers")[0].body.split("\n") == identifiers


def test_update_of_a_2000_line_file_is_fast(ws):
    from indexer.parse import parse_source

    ws.index()
    source = (STDLIB / "email" / "_header_value_parser.py").read_text().split("\n")
    text = "\n".join((source * 2)[:2000])
    updates, parses = [], []
    for i in range(21):
        edited = text.replace("\n", f"  # edit {i}\n", 1)  # a keystroke's worth of change
        start = time.perf_counter()
        ws.update("email/_header_value_parser.py", edited)
        updates.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        parse_source(edited, "python")
        parses.append((time.perf_counter() - start) * 1000)
    p95 = statistics.quantiles(updates, n=20)[-1]
    update_ms, parse_ms = statistics.median(updates), statistics.median(parses)
    print(f"update() of 2000 lines: p50 {update_ms:.1f} ms, p95 {p95:.1f} ms; parse alone {parse_ms:.1f} ms")
    # Target: p95 <= 20 ms on an idle machine (bench/indexing.py measures it). On the shared
    # test machine compare with parsing alone, measured in the same loop.
    assert p95 <= 20 or update_ms <= 2.5 * parse_ms


def test_live_writes_leave_the_write_ahead_log_to_a_background_checkpoint(ws):
    """SQLite's automatic checkpoint ran inside one live commit in ~30 (the slowest updates);
    live writes switch it off, and a background thread keeps the log from growing anyway."""
    ws.index()
    assert ws.store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    source = (STDLIB / "email" / "_header_value_parser.py").read_text()
    wal = ws.db_path.with_name(ws.db_path.name + "-wal")

    def edit(count: int, offset: int) -> int:
        for i in range(offset, offset + count):
            ws.update("email/_header_value_parser.py", source.replace("\n", f"  # edit {i}\n", 1))
            # Keystrokes are tens of milliseconds apart and a fold of 32 writes takes a few: let
            # a running fold finish, as it does between an editor's updates. Back-to-back writes
            # (no pause at all) can keep the log from ever being wholly folded, so SQLite
            # cannot restart it, and the test would measure that race instead.
            ws.wal.join()
        return wal.stat().st_size

    ws.update("email/_header_value_parser.py", source)
    after_one_round = edit(32, 0)
    after_ten_rounds = edit(320, 32)
    # Without checkpoints the log would hold ten times as many frames; with them it is
    # reused from its start once folded back.
    assert after_ten_rounds < 3 * after_one_round, (after_one_round, after_ten_rounds)
    assert len(ws.files()) > 10 and ws.symbols("get_qcontent")


def test_paths_outside_the_workspace_are_refused(ws, tmp_path):
    with pytest.raises(IndexerError):
        ws.update(tmp_path / "elsewhere.py", "x = 1")
    with pytest.raises(IndexerError):
        ws.update("../elsewhere.py", "x = 1")


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(RootNotDirectoryError):
        Workspace(tmp_path / "missing", cache_dir=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(RootNotDirectoryError):
        Workspace(tmp_path / "file", cache_dir=tmp_path)


def test_database_name_is_per_root(tmp_path):
    a, b = tmp_path / "a" / "proj", tmp_path / "b" / "proj"
    assert database_name(a) != database_name(b)
    assert database_name(a).startswith("proj-")


def test_cache_dir_from_environment(monkeypatch, tmp_path, repo):
    monkeypatch.setenv("REPOCOMPLETE_CACHE_DIR", str(tmp_path / "envcache"))
    with Workspace(repo) as ws:
        assert ws.db_path.parent == tmp_path / "envcache"


def test_parallel_index_writes_what_a_serial_one_writes(tmp_path, monkeypatch):
    """Worker processes send records compactly (line spans, not copies); the index they
    produce is row for row the serial one."""
    import dataclasses

    import indexer.workspace as workspace_module
    from indexer.config import IndexConfig

    monkeypatch.setattr(workspace_module, "_PARALLEL_MIN_FILES", 1)
    repo = copy_stdlib(tmp_path / "repo", "json", "email")

    def rows(workers: int) -> tuple:
        config = dataclasses.replace(IndexConfig(), workers=workers)
        with Workspace(repo, cache_dir=tmp_path / f"cache{workers}", config=config) as ws:
            summary = ws.index()
            c = ws.store.conn
            chunks = c.execute("SELECT f.path, k.kind, k.start_line, k.end_line, k.symbol, k.body FROM chunks k"
                               " JOIN files f ON f.id = k.file_id ORDER BY 1, 2, 3, 4, 5").fetchall()
            symbols = c.execute("SELECT f.path, s.name, s.kind, s.start_line, s.end_line, s.parent, s.signature"
                                " FROM symbols s JOIN files f ON f.id = s.file_id ORDER BY 1, 4, 2").fetchall()
            hits = [ws.store.chunks([cid])[0].body for cid, _ in ws.store.search('"header" AND "parse"', 20)]
            return summary.files_indexed, chunks, symbols, sorted(hits)

    serial, parallel = rows(1), rows(2)
    assert serial[0] == parallel[0] > 30 and len(serial[1]) > 1000
    assert serial == parallel
    from indexer.workers import auto_workers

    assert auto_workers(1) == 1 and auto_workers(2) == 2
    assert auto_workers(4) == 3 and auto_workers(64) == 8


_UNGUARDED_SCRIPT = """
import dataclasses, sys, threading, time
import indexer.workspace as workspace_module
from indexer.config import IndexConfig
workspace_module._PARALLEL_MIN_FILES = 1
if sys.argv[2] == "threaded":   # the server indexes from a thread: workers are spawned
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
config = dataclasses.replace(IndexConfig(), workers=2)
with workspace_module.Workspace(sys.argv[1], cache_dir=sys.argv[1] + "-cache", config=config) as ws:
    print("indexed", ws.index().files_indexed)
"""


@pytest.mark.parametrize("mode", ["single-threaded", "threaded"])
def test_a_script_without_a_main_guard_still_indexes(tmp_path, repo, mode):
    """Spawned workers re-import the caller's main module; one that calls index() at import
    time used to wait forever on the parent's write lock. Single-threaded callers fork (no
    re-import); threaded ones see the workers fail fast and the run finish in-process."""
    import subprocess
    import sys

    script = tmp_path / "index_it.py"
    script.write_text(_UNGUARDED_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, str(script), str(repo), mode], capture_output=True, text=True,
                            timeout=180, cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    assert result.returncode == 0, result.stderr[-3000:]
    indexed = len([p for p in repo.rglob("*") if p.is_file()])
    assert result.stdout.strip() == f"indexed {indexed}"
    if mode == "threaded":
        assert "parsing the remaining" in result.stderr and "__main__" in result.stderr


# --- editor buffers go through the walk's rules (issue 21.6 / 21.7) ---------------------------

def test_buffers_obey_the_walks_rules(tmp_path):
    from indexer.errors import PathOutsideWorkspaceError

    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "pkg").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    (repo / "link").symlink_to(outside, target_is_directory=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "pkg" / "mod.py").write_text("def saved_version():\n    pass\n")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        for path in (repo / "link" / "passwd", repo / "link" / "new.py", outside / "passwd"):
            with pytest.raises(PathOutsideWorkspaceError):
                ws.update(path, "root:x:0:0\n")
        assert ws.update(repo / ".env", "TOKEN=abc\n") == "secret_file"
        assert ws.update(repo / "build" / "out.py", "x = 1\n") == "ignored"
        assert ws.update(repo / "node_modules" / "m.js", "x\n") == "vendored"
        assert ws.update(repo / "pkg" / "bin.py", "a\0b") == "binary"
        assert ws.update(repo / "pkg" / "mod.py", "def live_version():\n    pass\n") is None
        assert ws.symbols("live_version") and not ws.symbols("saved_version")
        # the buffer grows past the size limit: the saved file is indexed again, not the buffer
        assert ws.update(repo / "pkg" / "mod.py", "def huge_version():\n    pass\n" + "x = 1\n" * 200_000) == "too_large"
        assert ws.symbols("saved_version") and not ws.symbols("huge_version") and not ws.symbols("live_version")
        assert ws.files() == [".gitignore", "pkg/mod.py"]
