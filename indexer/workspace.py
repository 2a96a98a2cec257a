"""A workspace: one repository, its index database, and retrieval over it.

This is the indexer's public face; the engine, the server, the language server, training
and the evals all go through it::

    with Workspace("/src/myrepo") as ws:
        ws.index()                              # incremental: only changed files are parsed
        ws.update("pkg/mod.py", editor_text)    # an unsaved buffer, reparsed in milliseconds
        snippets = ws.retrieve(RetrievalQuery("pkg/mod.py", prefix, suffix))

A ``Workspace`` is safe to share between threads (a lock serialises access to its
connection). Two processes may index the same workspace: a file lock makes the second wait.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import hashlib
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.chunks import definition_chunks, file_terms, search_text, windows
from indexer.config import IndexConfig
from indexer.errors import FileSkipError, IndexerError, PathOutsideWorkspaceError, RootNotDirectoryError
from indexer.languages import language_for_path
from indexer.retrieve.cursor import chunk_snippet
from indexer.retrieve.retriever import Retriever
from indexer.secrets import redact
from indexer.store import FileRecord, Store, StoreInvalidError
from indexer.types import IndexProgress, IndexSummary, RetrievalQuery, Snippet
from indexer.walk import WalkConfig, classify, content_skip_reason, ignored, path_skip_reason, read_text, walk

log = logging.getLogger("indexer")

#: RepoFusion context types (lists of (text, line) in ParsedFile), computed on demand.
_ITEM_KINDS = ("identifiers", "type_identifiers", "string_literals", "field_declarations")
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


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def build_record(path: str, text: str, language: str | None, *, mtime: float, size: int,
                 config: IndexConfig, live: bool = False, errors: list[str] | None = None,
                 previous: object | None = None) -> FileRecord:
    """Parse one file and derive everything the store keeps about it (secrets redacted).

    The RepoFusion context items (identifiers, strings, ...) are not among them: extracting
    them costs most of a parse again, and only item proposals read them, so
    :meth:`Workspace.context_items` computes them on demand. ``previous`` (the
    ``parse_state`` of this path's last live record) makes the parse incremental; live
    records carry their ``parse_state`` for the next update.
    """
    from indexer.parse import parse_source  # tree-sitter grammars load on first use

    clean = redact(text)
    lines = clean.split("\n")
    parsed = None
    if language is not None:
        try:
            # Redaction keeps line numbers, so symbols parsed from the clean text line up.
            parsed = parse_source(clean, language, references=False, context=False, previous=previous,
                                  bodies=False)
        except Exception as exc:  # noqa: BLE001 - one unparsable file must not stop an index run
            if errors is not None:
                errors.append(f"{path}: parse failed ({type(exc).__name__}: {exc})")
    searched = search_text(clean)
    terms = searched.split("\n")
    rec_items = {"identifier_terms": " ".join(sorted(file_terms(searched)))}
    chunks = windows(lines, terms, config.window_lines, config.window_stride)
    rec = FileRecord(path=path, hash=content_hash(text), mtime=mtime, size=size, language=language,
                     lines=len(lines), live=live, items=rec_items, text=clean, searched=searched)
    if parsed is not None:
        chunks += definition_chunks(lines, parsed.definitions, config.max_definition_lines, terms)
        rec.symbols = [(d.name, d.kind, d.start_line, d.end_line, d.parent,
                        d.signature or lines[d.start_line - 1].strip() if 0 < d.start_line <= len(lines) else d.signature)
                       for d in parsed.definitions]
        for imp in parsed.imports:
            names = list(imp.names or [])
            rec.imports += [(imp.module, n, imp.alias, imp.line) for n in names] or [(imp.module, None, imp.alias, imp.line)]
        rec.parents = [(p.class_name, p.parent_name, p.line) for p in parsed.class_parents]
        if live:
            rec.parse_state = parsed.tree_state
    rec.chunks = chunks
    return rec


def context_items(parsed) -> dict[str, str]:
    """A ParsedFile's RepoFusion context items as the store keeps them (distinct, one a line)."""
    return {kind: "\n".join(dict.fromkeys(str(v[0]) for v in getattr(parsed, kind, None) or []))
            for kind in _ITEM_KINDS}


def prepare_file(job: tuple, *, config: IndexConfig) -> tuple:
    """Read, hash and parse one file (in a worker process during big runs).

    ``job`` is (relpath, abspath, language, mtime, size, stored hash or None). Returns
    ("skip", reason, message), ("touch",) when the content hash did not change, or
    ("put", FileRecord, errors).
    """
    relpath, abspath, language, mtime, size, old_hash = job
    try:
        text = read_text(abspath, config.walk)
    except FileSkipError as exc:
        return ("skip", exc.reason, f"{relpath}: {exc.reason.replace('_', ' ')}")
    if old_hash is not None and old_hash == content_hash(text):
        return ("touch",)
    errors: list[str] = []
    return ("put", build_record(relpath, text, language, mtime=mtime, size=size, config=config, errors=errors), errors)


def auto_workers(cpus: int) -> int:
    """Parse workers for ``cpus`` CPUs: one CPU is left to the writer, except on two CPUs.

    The writer spends about half as long in SQLite as the workers spend parsing, so on a
    2-CPU machine two workers and the writer share the CPUs evenly (stdlib full index 10.9 s
    in-process, 6.7 s that way; 6.0 s after later savings); with one worker the writer would
    wait on it.
    """
    if cpus < 2:
        return 1
    return 2 if cpus == 2 else min(cpus - 1, 8)


@contextmanager
def _parallel_map(workers: int, jobs: int) -> Iterator[Callable]:
    """``map`` over worker processes for big runs, the built-in ``map`` for small ones.

    Parsing is CPU-bound Python and tree-sitter work; the writer (this process) stores
    results in order while the workers parse ahead. A single-threaded caller (the CLI, a
    script) forks its workers: they start at once and never re-import the caller's main
    module. A threaded one (the server indexes from a thread) spawns them, because forking
    a threaded process can copy a lock some other thread holds.
    """
    count = workers if workers > 0 else auto_workers(os.cpu_count() or 1)
    if count <= 1 or jobs < _PARALLEL_MIN_FILES:
        yield map
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(count, jobs // 16 + 1), initializer=_start_worker,
                             initargs=(os.getpid(),), mp_context=multiprocessing.get_context(method)) as pool:
        yield lambda fn, items: pool.map(fn, items, chunksize=8)


def _start_worker(writer_pid: int) -> None:
    """Worker start-up: die with the writer, and yield the CPU to it."""
    _die_with_parent(writer_pid)
    _yield_to_the_writer()


def _die_with_parent(writer_pid: int) -> None:
    """A killed writer (``kill -9`` of ``repocomplete index``) takes its workers along.

    Without this they wait forever on the task queue, whose pipe other workers keep open.
    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); elsewhere
    a daemon thread polls the parent's pid. Either way a parent already gone ends the worker.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:   # PR_SET_PDEATHSIG
                if os.getppid() != writer_pid:             # it died before the call
                    os._exit(1)
                return
        except OSError:
            pass

    def watch() -> None:
        while os.getppid() == writer_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _yield_to_the_writer() -> None:
    """A lower CPU priority than the writing process. Workers and writer
    share the CPUs; the writer is the critical path (records queue up for it), so it runs
    whenever it has work and the workers fill the remaining time.

    Workers also run without the cyclic garbage collector: a record is thousands of small
    acyclic objects, freed once it is sent, and collections set off by allocating them cost
    about 5% of a worker's time; parsing the whole stdlib leaves a few dozen cyclic objects.
    """
    gc.disable()
    try:
        os.nice(5)
    except OSError:  # not permitted here: equal priority still works, a little slower
        pass


def _starting_a_worker_process() -> bool:
    """True while a spawned worker re-imports its parent's main module: an unguarded
    script calling index() at import time would wait forever on its parent's write lock."""
    mp = sys.modules.get("multiprocessing")
    return mp is not None and bool(getattr(mp.current_process(), "_inheriting", False))


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
        self._live_writes = 0
        self._checkpointer: threading.Thread | None = None
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
        # Live writes must not fold the write-ahead log into the database themselves: SQLite's
        # automatic checkpoint runs inside the commit that crosses its threshold, and turned
        # one update in thirty into the slowest (p95 25 ms -> 15 ms on the stdlib bench
        # without it). _checkpoint_in_background() does that work off the editor's path.
        store.conn.execute("PRAGMA wal_autocheckpoint=0")
        return store

    def _checkpoint_in_background(self) -> None:
        """After every few live writes, fold the write-ahead log back (see :meth:`_fold_wal`)."""
        self._live_writes += 1
        if self._live_writes % _LIVE_WRITES_PER_CHECKPOINT or (
                self._checkpointer is not None and self._checkpointer.is_alive()):
            return
        self._fold_wal(truncate=False)

    def _fold_wal(self, *, truncate: bool) -> None:
        """Fold the write-ahead log back on a thread with its own connection: a passive
        checkpoint never blocks readers or the next write. ``truncate`` then also empties
        the log file, if no reader is using it (else the next write reuses its space)."""

        def fold(path: Path) -> None:
            try:
                conn = sqlite3.connect(str(path), timeout=0.05)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if truncate:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()
            except sqlite3.Error as exc:  # busy or gone: the next one, or the next index run, folds it
                log.debug("background checkpoint of %s skipped: %s", path, exc)

        self._checkpointer = threading.Thread(target=fold, args=(self.db_path,), name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

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
        if _starting_a_worker_process():
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
        writer = Store.open(self.db_path)
        # The run's commit must not fold the write-ahead log into the database itself (the
        # automatic checkpoint would): copying and syncing a full index's pages took 0.4 s
        # of the stdlib's 6.5 s, with the parse workers done and one CPU idle. A background
        # thread does it once the run has committed; readers see the new index either way.
        writer.conn.execute("PRAGMA wal_autocheckpoint=0")
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
            if self._checkpointer is not None:
                self._checkpointer.join()   # a live writes' fold (short)
            self._fold_wal(truncate=True)
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
            if state and not state[3] and state[1] == entry.mtime and state[2] == entry.size:
                summary.files_unchanged += 1
                continue
            todo.append(entry)
        total = len(todo)
        jobs = [(e.relpath, str(e.abspath), e.language, e.mtime, e.size,
                 states[e.relpath][0] if e.relpath in states and not states[e.relpath][3] else None)
                for e in todo]
        prepare = partial(prepare_file, config=self.config)
        done = 0

        def store(job: tuple, result: tuple) -> None:
            nonlocal done
            done += 1
            self._store_result(writer, job, result, states, summary, skipped)
            if progress is not None:
                progress(IndexProgress(done, total, summary.bytes, time.perf_counter() - start, job[0]))

        try:
            with _parallel_map(self.config.workers, len(jobs)) as mapper:
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
    def _store_result(writer: Store, job: tuple, result: tuple, states: dict, summary: IndexSummary,
                      skipped: Counter) -> None:
        relpath, _abspath, _language, mtime, size, _hash = job
        action = result[0]
        if action == "skip":
            skipped[result[1]] += 1
            summary.errors.append(result[2])
            if relpath in states and writer.remove_file(relpath):
                summary.files_removed += 1
        elif action == "touch":
            writer.touch_file(relpath, mtime, size)
            summary.files_unchanged += 1
        else:
            writer.put_file(result[1])
            summary.errors.extend(result[2])
            summary.files_indexed += 1
            summary.bytes += size

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
        self._checkpoint_in_background()

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
            result = (prepare_file((rel, str(entry.abspath), entry.language, entry.mtime, entry.size, None),
                                   config=self.config) if admitted else ("skip",))
            with self._store.transaction():
                if result[0] == "put":
                    self._store.put_file(result[1])
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
            ids = [row[7] for row in self._store.definitions(names) if row[7] is not None]
            return [chunk_snippet(r, "definition", 1.0) for r in self._store.chunks(ids)]

    def symbols(self, name: str) -> list[dict]:
        """Where ``name`` is defined: dicts with name, kind, path, start_line, end_line, parent, signature."""
        keys = ("name", "kind", "path", "start_line", "end_line", "parent", "signature")
        with self._lock:
            self._reconnect_if_replaced()
            return [dict(zip(keys, row[:7])) for row in self._store.definitions([name])]

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
            if self._checkpointer is not None:
                self._checkpointer.join()
            self._store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, db={str(self.db_path)!r})"
