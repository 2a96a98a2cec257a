"""A SIGKILL in the middle of indexing leaves the previous index intact and usable."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.types import RetrievalQuery
from indexer.workspace import Workspace
from tests.indexer.stdlib_repos import STDLIB, copy_stdlib
from tests.processes import alive, children_of, cmdline, timeout, wait_for


def _wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


@pytest.mark.slow
def test_sigkill_mid_index_keeps_the_previous_index(tmp_path):
    repo = copy_stdlib(tmp_path / "repo", "json")
    cache = tmp_path / "cache"
    with Workspace(repo, cache_dir=cache) as ws:
        ws.index()
        before_files = ws.files()
        db = ws.db_path
    # A big change: the standard library lands in the repository, and a full index starts.
    # Twice ~200 files, ~8 MB: far more than a second's work, and more than the page cache
    # holds, so the transaction spills to the write-ahead log before it commits.
    for copy in ("lib", "lib2"):
        (repo / copy).mkdir()
        for module in STDLIB.glob("*.py"):
            shutil.copy2(module, repo / copy / module.name)
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "index", str(repo), "--cache-dir", str(cache),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Kill once the run has written a good part of its transaction to the write-ahead log.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _wal(db).exists() and _wal(db).stat().st_size > 1_000_000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "indexing finished before it could be killed"
        assert _wal(db).stat().st_size > 1_000_000
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Workspace(repo, cache_dir=cache) as ws:
        files = ws.files()
        if files != before_files:
            # On a quiet machine the run can commit before the kill lands: then all of it is
            # visible, never a part: indexing again finds nothing left to do.
            assert ws.index().files_indexed == 0 and ws.files() == files, "a part of the killed run is visible"
        text = (repo / "json" / "__init__.py").read_text()
        i = text.index("_default_decoder.decode(") + len("_default_decoder.")
        snippets = ws.retrieve(RetrievalQuery("json/__init__.py", text[:i], text[i:], sources=("definition",)))
        assert snippets and snippets[0].filepath == "json/decoder.py"
        # And the next run completes normally.
        shutil.rmtree(repo / "lib")
        shutil.rmtree(repo / "lib2")
        (repo / "json" / "extra.py").write_text("def after_the_crash():\n    return 1\n")
        summary = ws.index()
        assert summary.files_indexed == 1 and ws.symbols("after_the_crash")



@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="reads /proc; one CPU parses without workers")
def test_sigkill_of_the_index_command_takes_its_workers_along(tmp_path):
    """Issue 21.14: after ``kill -9`` of ``repocomplete index`` its parse workers stayed alive (> 60 s)."""
    repo = tmp_path / "repo"
    for copy in ("lib", "lib2"):
        (repo / copy).mkdir(parents=True)
        for module in STDLIB.glob("*.py"):
            shutil.copy2(module, repo / copy / module.name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "index", str(repo), "--cache-dir",
                             str(tmp_path / "cache")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        def two_workers() -> bool:
            nonlocal workers
            assert proc.poll() is None, "indexing ended before its workers were seen"
            workers = [pid for pid in children_of(proc.pid) if "python" in cmdline(pid)]  # not git
            return len(workers) >= 2

        wait_for(two_workers, 120, "two parse workers", interval=0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=timeout(10)) == -signal.SIGKILL
        wait_for(lambda: not any(alive(pid) for pid in workers), 10, "the workers of the killed index command to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
