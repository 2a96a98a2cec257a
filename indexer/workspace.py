"""A workspace: one repository, its index database, and retrieval over it.

This is the indexer's public face; the engine, the server, the language server, training
and the evals all go through it::

    with Workspace("/src/myrepo") as ws:
        ws.index()                              # incremental: only changed files are parsed
        ws.update("pkg/mod.py", editor_text)    # an unsaved buffer, reparsed in milliseconds
        snippets = ws.retrieve(RetrievalQuery("pkg/mod.py", prefix, suffix))

A ``Workspace`` is safe to share between threads (a lock serialises access to its
connection). Two processes may index the same workspace: a file lock makes the second wait.

It is the facade over the modules that do the work: :mod:`indexer.records` turns a file into
a record (a typed ``Built | Unchanged | Skipped`` result), :mod:`indexer.workers` parses in
worker processes during big runs, :mod:`indexer.store` keeps the rows (named row types) and
folds the write-ahead log (``WalFolder``), :mod:`indexer.retrieve` ranks context.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.config import IndexConfig
from indexer.errors import FileSkipError, IndexerError, PathOutsideWorkspaceError, RootNotDirectoryError
from indexer.languages import language_for_path
from indexer.retrieve.cursor import chunk_snippet
from indexer.retrieve.retriever import Retriever
from indexer.secrets import redact
from indexer.workers import parallel_map, starting_a_worker_process
from indexer.records import Built, FileJob, Prepared, Skipped, Unchanged, build_record, context_items, prepare_file
from indexer.store import Store, StoreInvalidError, WalFolder
from indexer.types import IndexProgress, IndexSummary, RetrievalQuery, Snippet
from indexer.walk import WalkConfig, classify, content_skip_reason, ignored, path_skip_reason, read_text, walk

log = logging.getLogger("indexer")

#: Fewer changed files than this are parsed in-process (starting workers costs ~0.5 s).
_PARALLEL_MIN_FILES = 64
#: How long a live-buffer write waits for another process's index run before deferring.
_LIVE_BUSY_MS = 50
#: Live-buffer writes between two background checkpoints of the write-ahead log.
_LIVE_WRITES_PER_CHECKPOINT = 32


def database_name(root: Path) -> str:
    """``<dir name>-<hash of the absolute root>.sqlite3``: readable, and unique per root."""
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return f"{root.name or 'root'}-{digest}.sqlite3"


def git_root(path: Path) -> Path | None:
    """The git work tree containing ``path`` (a file or folder): the nearest folder with a ``.git``
    (a directory, or a file in worktrees and submodules), or None outside any repository."""
    path = Path(path).expanduser().resolve()
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


class Workspace:
    """One repository's index: build it, keep it fresh, retrieve from it."""

    def __init__(self, root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                 config: IndexConfig | None = None) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise RootNotDirectoryError(f"not a directory: {root}")
        self.root = path.resolve()
        self.name = self.root.name
        self.config = dataclasses.replace(config or IndexConfig(), **({"cache_dir": Path(cache_dir)} if cache_dir else {}))
        folder = self.config.resolved_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.db_path = folder / database_name(self.root)
        self._lock = threading.RLock()
        #: Unsaved editor buffers (relpath -> text): re-applied after a rebuild swaps the file.
        self._live: dict[str, str] = {}
        #: Each live buffer's last parse (reparsed incrementally by the next update).
        self._parse_states: dict[str, object] = {}
        self._indexing = False
        #: Ignore-rule verdicts for buffer paths (git is asked once per path per index run).
        self._ignored: dict[str, bool] = {}
        #: Folds the write-ahead log after live writes and index runs (owned by the store module).
        self.wal = WalFolder(self.db_path, every=_LIVE_WRITES_PER_CHECKPOINT)
        self._store = self._open()
        self._inode = self._db_inode()
        self._retriever = Retriever(self._store, self.config, root_package=self.root.name)

    # -- the database file ---------------------------------------------------------------

    def _db_inode(self) -> int:
        try:
            return os.stat(self.db_path).st_ino
        except OSError:
            return -1

    def _open(self) -> Store:
        """Open the database, creating an empty one if it is missing, old or corrupt."""
        if self.db_path.exists():
            try:
                return self._with_loader(Store.open(self.db_path, busy_ms=_LIVE_BUSY_MS))
            except StoreInvalidError as exc:
                log.warning("index %s is unusable (%s); rebuilding it", self.db_path, exc)
        Store.create(self.db_path, root=str(self.root)).close()
        return self._with_loader(Store.open(self.db_path, busy_ms=_LIVE_BUSY_MS))

    def _with_loader(self, store: Store) -> Store:
        store.items_loader = self.context_items
        # Live writes leave folding the write-ahead log to self._wal, off the editor's path.
        return store.without_autocheckpoint()

    def _reconnect_if_replaced(self, *, force: bool = False) -> None:
        """Another process recreated the database file: read the new one."""
        if force or self._db_inode() != self._inode:
            self._store.close()
            self._store = self._open()
            self._inode = self._db_inode()
            self._retriever = Retriever(self._store, self.config, root_package=self.root.name)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Exclusive across processes: two ``index`` runs on one workspace take turns."""
        with open(f"{self.db_path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- indexing ------------------------------------------------------------------------

    def relpath(self, path: str | os.PathLike[str]) -> str:
        """``path`` (absolute, or relative to the root) as a POSIX path relative to the root."""
        p = Path(path).expanduser()
        if p.is_absolute():
            # The file may not exist yet (a new buffer), and the root may be reached via a symlink.
            resolved = p.resolve() if p.exists() else p.parent.resolve() / p.name
            for candidate in (p, resolved):
                if candidate.is_relative_to(self.root):
                    p = candidate.relative_to(self.root)
                    break
            else:
                raise PathOutsideWorkspaceError(f"{path} is outside the workspace {self.root}")
        rel = p.as_posix()
        if rel.startswith("../") or rel == "..":
            raise PathOutsideWorkspaceError(f"{path} is outside the workspace {self.root}")
        return rel[2:] if rel.startswith("./") else rel

    def index(self, progress: Callable[[IndexProgress], None] | None = None, *, rebuild: bool = False) -> IndexSummary:
        """Bring the index up to date with the files on disk; incremental by content hash.

        Unchanged files (same mtime and size, or same content hash) are not parsed again;
        files gone from the repository are removed; ``rebuild`` re-parses everything. The
        run commits at its end, so killing the process mid-run leaves the previous index.
        """
        if starting_a_worker_process():
            raise IndexerError("index() ran while an index worker process was starting: put the script's "
                               "entry point under `if __name__ == \"__main__\":`")
        start = time.perf_counter()
        with self._writer():
            try:
                summary = self._index_locked(progress, rebuild, start)
            except (sqlite3.DatabaseError, StoreInvalidError) as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise IndexerError(f"the index {self.db_path} is busy: {exc}") from None
                # Damaged under our feet (disk full, another program): start over, once.
                log.warning("index %s is unusable (%s); rebuilding it", self.db_path, exc)
                with self._lock:
                    self._store.close()
                    Store.create(self.db_path, root=str(self.root)).close()
                    self._reconnect_if_replaced(force=True)
                summary = self._index_locked(progress, True, start)
        summary.elapsed_s = time.perf_counter() - start
        return summary

    def _index_locked(self, progress, rebuild: bool, start: float) -> IndexSummary:
        summary = IndexSummary()
        with self._lock:
            self._reconnect_if_replaced()
            self._ignored.clear()   # ignore files may have changed
        # The run writes through its own connection, in one transaction: readers keep the
        # previous snapshot meanwhile, and a kill mid-run leaves that snapshot intact.
        # The run's commit does not fold the write-ahead log into the database itself: the
        # WalFolder does, in the background, once the run has committed.
        writer = Store.open(self.db_path).without_autocheckpoint()
        self._indexing = True
        try:
            with writer.transaction():
                if rebuild:
                    writer.clear()
                self._index_into(writer, summary, progress, start)
                if rebuild or summary.files_indexed or summary.files_removed:
                    writer.bump_generation()
        finally:
            self._indexing = False
            writer.close()
        with self._lock:
            self.wal.join()   # a live writes' fold (short)
            self.wal.fold(truncate=True)
        if self.config.dense:
            from indexer.retrieve.dense import embed_missing  # torch: only when asked for

            with self._lock:
                embed_missing(self._store)
        with self._lock:
            # Buffers edited while the run held the write lock, and any the run overwrote.
            for path, text in list(self._live.items()):
                self._write_live(path, text)
            self._retriever.invalidate(files=True, terms=True)
            # Start (re)building the BM25 snapshot now, in the background, if it is stale.
            self._retriever.bm25.snapshot()
            summary.files_by_language = self._store.languages()
            counts = self._store.counts()
            summary.symbols, summary.chunks = counts["symbols"], counts["chunks"]
        return summary

    def _index_into(self, writer: Store, summary: IndexSummary, progress, start: float) -> None:
        entries = list(walk(self.root, self.config.walk))
        states = writer.file_states()
        live = set(self._live)
        todo, seen = [], set()
        skipped: Counter[str] = Counter()
        for entry in entries:
            if entry.skipped:
                skipped[entry.skipped] += 1
                continue
            seen.add(entry.relpath)
            state = states.get(entry.relpath)
            if entry.relpath in live:
                continue  # the editor's unsaved text wins over the disk
            if state and not state.live and state.mtime == entry.mtime and state.size == entry.size:
                summary.files_unchanged += 1
                continue
            todo.append(entry)
        total = len(todo)
        jobs = [FileJob(e.relpath, str(e.abspath), e.language, e.mtime, e.size,
                        states[e.relpath].hash if e.relpath in states and not states[e.relpath].live else None)
                for e in todo]
        prepare = partial(prepare_file, config=self.config)
        done = 0

        def store(job: FileJob, result: Prepared) -> None:
            nonlocal done
            done += 1
            self._store_result(writer, job, result, states, summary, skipped)
            if progress is not None:
                progress(IndexProgress(done, total, summary.bytes, time.perf_counter() - start, job.relpath))

        try:
            with parallel_map(self.config.workers, len(jobs), min_jobs=_PARALLEL_MIN_FILES) as mapper:
                for job, result in zip(jobs, mapper(prepare, jobs)):
                    store(job, result)
        except BrokenProcessPool as exc:
            # Workers could not start or died (a script without an ``if __name__ ==
            # "__main__"`` guard re-runs itself in every spawned worker; the OOM killer):
            # the files stored so far stay, the rest are parsed here.
            log.warning("index workers failed (%s); parsing the remaining %d files in this process",
                        exc, len(jobs) - done)
            for job in jobs[done:]:
                store(job, prepare(job))
        for path in states:
            if path not in seen and path not in live:
                writer.remove_file(path)
                summary.files_removed += 1
        summary.skipped_by_reason = dict(skipped)

    @staticmethod
    def _store_result(writer: Store, job: FileJob, result: Prepared, states: dict, summary: IndexSummary,
                      skipped: Counter) -> None:
        if isinstance(result, Skipped):
            skipped[result.reason] += 1
            summary.errors.append(result.message)
            if job.relpath in states and writer.remove_file(job.relpath):
                summary.files_removed += 1
        elif isinstance(result, Unchanged):
            writer.touch_file(job.relpath, job.mtime, job.size)
            summary.files_unchanged += 1
        else:
            writer.put_file(result.record)
            summary.errors.extend(result.errors)
            summary.files_indexed += 1
            summary.bytes += job.size

    # -- live buffers --------------------------------------------------------------------

    def _write_live(self, path: str, text: str) -> None:
        # A record is thousands of small acyclic objects, freed with it: cyclic collections
        # set off by allocating them only rescan the process's heap (a server's or a
        # language server's is big), the slowest updates' main cost.
        collecting = gc.isenabled()
        gc.disable()
        try:
            rec = build_record(path, text, language_for_path(path), mtime=time.time(),
                               size=len(text.encode("utf-8", "surrogatepass")), config=self.config, live=True,
                               previous=self._parse_states.pop(path, None))
            if rec.parse_state is not None:
                self._parse_states[path] = rec.parse_state
            with self._store.transaction():
                self._store.put_file(rec)
        finally:
            if collecting:
                gc.enable()
        self._retriever.forget_identifiers(path)
        self.wal.after_write()

    def _forget_live(self, rel: str) -> None:
        self._live.pop(rel, None)
        self._parse_states.pop(rel, None)

    def context_items(self, path: str) -> dict[str, str]:
        """The RepoFusion context items of an indexed file (its live buffer, else the file
        on disk), secrets redacted: {context type: distinct items, one a line}."""
        from indexer.parse import parse_source

        language = language_for_path(path)
        text = self._live.get(path)
        if text is None and language is not None:
            try:
                text = read_text(self.root / path, self.config.walk)
            except (FileSkipError, OSError):
                return {}
        if text is None or language is None:
            return {}
        return context_items(parse_source(redact(text), language, references=False))

    def buffer_relpath(self, path: str | os.PathLike[str]) -> str:
        """:meth:`relpath` of an editor buffer, which must also *lead* inside the root: a path
        under the root that reaches outside through a symlink (``repo/link -> /etc``) is refused."""
        rel = self.relpath(path)
        if not (self.root / rel).resolve().is_relative_to(self.root):
            raise PathOutsideWorkspaceError(f"{path} leads outside the workspace {self.root} (through a symlink)")
        return rel

    def buffer_skip_reason(self, path: str | os.PathLike[str], text: str) -> str | None:
        """Why :meth:`update` would not index this buffer (the walk's rules: secret file names,
        ignore files, vendored, size, binary, minified, generated), or None."""
        rel = self.buffer_relpath(path)
        reason = path_skip_reason(rel) or ("ignored" if self._is_ignored(rel) else None)
        rules = self.config.walk or WalkConfig()
        if reason is None and len(text) > rules.max_file_bytes:
            return "too_large"   # characters, each at least a byte: no need to encode a huge buffer
        return reason or content_skip_reason(text.encode("utf-8", "surrogatepass"), rules)

    def _is_ignored(self, rel: str) -> bool:
        if rel not in self._ignored:
            self._ignored[rel] = ignored(self.root, rel, self.config.walk)
        return self._ignored[rel]

    def update(self, path: str | os.PathLike[str], text: str) -> str | None:
        """Index an unsaved editor buffer in place of the file's saved content (one transaction).

        The buffer goes through the rules the walk applies to files (:meth:`buffer_skip_reason`);
        one they exclude is not indexed (a buffer that grew past the size limit falls back to
        the saved file) and its skip reason is returned. None when it was indexed.
        """
        rel = self.buffer_relpath(path)
        reason = self.buffer_skip_reason(rel, text)
        if reason is not None:
            if rel in self._live:
                self.revert(rel)
            return reason
        with self._lock:
            self._reconnect_if_replaced()
            known = self._store.file_id(rel) is not None
            self._live[rel] = text
            if self._indexing:
                return None  # the running index() writes every live buffer when it commits
            try:
                self._write_live(rel, text)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                log.debug("index busy; %s will be written when the running index commits", rel)
            if not known:
                self._retriever.invalidate(files=True)
        return None

    def revert(self, path: str | os.PathLike[str]) -> None:
        """Forget a live buffer (closed without saving): index the file as it is on disk, if the
        walk would (a symlink out of the root, an ignored or oversized file stays out)."""
        rel = self.buffer_relpath(path)
        with self._lock:
            self._reconnect_if_replaced()
            self._forget_live(rel)
            entry = classify(self.root, rel, self.config.walk) if (self.root / rel).is_file() else None
            admitted = entry is not None and not entry.skipped and not self._is_ignored(rel)
            result = (prepare_file(FileJob(rel, str(entry.abspath), entry.language, entry.mtime, entry.size),
                                   config=self.config) if admitted else None)
            with self._store.transaction():
                if isinstance(result, Built):
                    self._store.put_file(result.record)
                else:
                    self._store.remove_file(rel)
            self._retriever.invalidate(files=True)

    def remove(self, path: str | os.PathLike[str]) -> bool:
        """Drop a file from the index (deleted in the editor); True if it was indexed.

        If the file still exists on disk, the next :meth:`index` adds it back.
        """
        rel = self.relpath(path)
        with self._lock:
            self._reconnect_if_replaced()
            self._forget_live(rel)
            with self._store.transaction():
                found = self._store.remove_file(rel)
            self._retriever.invalidate(files=True)
            return found

    # -- reading -------------------------------------------------------------------------

    def retrieve(self, query: RetrievalQuery) -> list[Snippet]:
        """Ranked, deduplicated snippets for a cursor, packed to ``query.budget_tokens``.

        A database that turns out to be corrupt yields no snippets (and a warning); the next
        :meth:`index` rebuilds it.
        """
        rel = self.relpath(query.filepath)
        with self._lock:
            self._reconnect_if_replaced()
            try:
                return self._retriever.retrieve(query, rel)
            except sqlite3.DatabaseError as exc:
                log.warning("index %s cannot be read (%s); retrieval skipped until it is rebuilt", self.db_path, exc)
                return []

    def rankings(self, query: RetrievalQuery) -> dict[str, list[Snippet]]:
        """Every requested source's ranking before fusion (for evals and debugging)."""
        rel = self.relpath(query.filepath)
        with self._lock:
            self._reconnect_if_replaced()
            return self._retriever.rankings(query, rel)[1]

    def proposals(self, query: RetrievalQuery, source: str, context_type: str | None = None, *,
                  max_files: int = 3, limit: int = 4) -> list[Snippet]:
        """One RepoFusion prompt proposal: ``source`` (import, parent_class, child_class, sibling,
        similar_name, in_file) with one context type (method_names_and_bodies, method_names,
        identifiers, type_identifiers, string_literals, field_declarations, lines).

        Training samples these combinations; :meth:`retrieve` uses one default type per source.
        """
        from indexer.retrieve.cursor import make_cursor
        from indexer.retrieve.proposals import propose

        rel = self.relpath(query.filepath)
        with self._lock:
            self._reconnect_if_replaced()
            cursor = make_cursor(query, rel, self.config.query_lines)
            return propose(self._store, cursor, source, self._retriever.modules, context_type=context_type,
                           max_files=max_files, limit=limit)

    def definitions_of(self, names: Iterable[str]) -> list[Snippet]:
        """Definition snippets (bodies, long classes summarised) of symbols named ``names``."""
        with self._lock:
            self._reconnect_if_replaced()
            ids = [row.chunk_id for row in self._store.definitions(names) if row.chunk_id is not None]
            return [chunk_snippet(r, "definition", 1.0) for r in self._store.chunks(ids)]

    def symbols(self, name: str) -> list[dict]:
        """Where ``name`` is defined: dicts with name, kind, path, start_line, end_line, parent, signature."""
        with self._lock:
            self._reconnect_if_replaced()
            return [row.as_dict() for row in self._store.definitions([name])]

    def files(self) -> list[str]:
        """Indexed files, relative to the root, sorted."""
        with self._lock:
            self._reconnect_if_replaced()
            return self._store.paths()

    @property
    def store(self) -> Store:
        """The open store (for training and evals that read chunks directly)."""
        return self._store

    @property
    def retriever(self) -> Retriever:
        return self._retriever

    def close(self) -> None:
        with self._lock:
            self.wal.join()
            self._store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, db={str(self.db_path)!r})"
