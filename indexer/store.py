"""The SQLite store of one workspace: files, symbols, import and inheritance edges, chunks.

One database file per workspace, in WAL mode so readers (the server) never block the
writer (the indexer). Chunks are searched through an FTS5 table holding their
identifier-aware terms (:mod:`indexer.chunks`), which gives BM25 for free. That table is
contentless: it keeps the inverted index only, not a second copy of the terms (which are
``search_text(body)``, recomputed when a row is deleted or the BM25 snapshot is built).

The schema version lives in ``PRAGMA user_version``. There are no migrations: a database
of another version, or one that is not a database at all, is rebuilt from the repository
(the caller prints why). An index run writes inside one transaction: readers keep seeing
the previous snapshot until it commits, and a crash or SIGKILL mid-run leaves the previous
index intact (the uncommitted tail of the write-ahead log is discarded on the next open).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from indexer.chunks import Chunk, chunk_texts, search_text
from indexer.errors import IndexerError

#: Bump whenever a table, a column or the meaning of stored text changes.
SCHEMA_VERSION = 7
#: Files whose on-demand context items stay in memory.
_LOADED_ITEMS_FILES = 256

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE files(
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT NOT NULL, mtime REAL NOT NULL,
    size INTEGER NOT NULL, language TEXT, lines INTEGER NOT NULL DEFAULT 0,
    live INTEGER NOT NULL DEFAULT 0);
CREATE TABLE symbols(
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT,
    start_line INTEGER, end_line INTEGER, parent TEXT, signature TEXT, chunk_id INTEGER);
CREATE INDEX symbols_name ON symbols(name);
CREATE INDEX symbols_file ON symbols(file_id);
CREATE TABLE imports(file_id INTEGER NOT NULL, module TEXT, name TEXT, alias TEXT, line INTEGER);
CREATE INDEX imports_file ON imports(file_id);
CREATE TABLE parents(file_id INTEGER NOT NULL, class_name TEXT, parent_name TEXT, line INTEGER);
CREATE INDEX parents_file ON parents(file_id);
CREATE INDEX parents_parent ON parents(parent_name);
CREATE TABLE items(file_id INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX items_file ON items(file_id);
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_id INTEGER NOT NULL, kind TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, symbol TEXT, body TEXT NOT NULL);
CREATE INDEX chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(tokens, content='', tokenize='unicode61 remove_diacritics 0');
CREATE TABLE vectors(chunk_id INTEGER PRIMARY KEY, vec BLOB NOT NULL);
"""

_TABLES = {"meta", "files", "symbols", "imports", "parents", "items", "chunks", "chunks_fts", "vectors"}


class StoreInvalidError(IndexerError):
    """The database file is of another schema version, or not a database at all."""


@dataclass
class FileRecord:
    """Everything the store keeps about one file, ready to be written in one go."""

    path: str
    hash: str
    mtime: float
    size: int
    language: str | None
    lines: int = 0
    live: bool = False
    chunks: list[Chunk] = field(default_factory=list)
    #: (name, kind, start_line, end_line, parent, signature)
    symbols: list[tuple] = field(default_factory=list)
    #: (module, name, alias, line); name is None for ``import module``
    imports: list[tuple] = field(default_factory=list)
    #: (class_name, parent_name, line)
    parents: list[tuple] = field(default_factory=list)
    #: kind -> text: ``identifier_terms`` (what the sibling source ranks files by) at index
    #: time; the RepoFusion context items come from :attr:`Store.items_loader` on demand
    items: dict[str, str] = field(default_factory=dict)
    #: The parse of a live buffer (``indexer.parse.ParseState``), kept in memory for the next
    #: incremental reparse; never stored, never sent to a worker process.
    parse_state: object | None = None
    #: The redacted text and its search text (``indexer.chunks.search_text``) the chunks
    #: were cut from; not stored. With them a record pickles compactly (see __getstate__).
    text: str | None = None
    searched: str | None = None

    def __getstate__(self) -> dict:
        """Chunks cut from the file's lines travel as line spans, not as copies.

        Index workers send every record to the writing process: overlapping windows and
        definitions hold each line about three times over, twice (body and terms), which made
        pickling cost a quarter of the parsing it was meant to parallelise.
        """
        state = {k: v for k, v in self.__dict__.items() if k not in ("parse_state", "_compact")}
        if self.text is not None and self.searched is not None:
            state["chunks"] = self.__dict__.get("_compact") if "chunks" not in self.__dict__ else [
                (c.kind, c.start_line, c.end_line, c.symbol, c.span) if c.span is not None
                else (c.kind, c.start_line, c.end_line, c.symbol, None, c.body, c.tokens)
                for c in self.chunks]
            state["compact"] = True
        return state

    def __setstate__(self, state: dict) -> None:
        if state.pop("compact", False):
            # The writing process turns these rows straight into SQL parameters
            # (:meth:`insert_rows`); ``chunks`` is built only if something reads it.
            state["_compact"] = state.pop("chunks")
        self.__dict__.update(state)
        self.parse_state = None

    def __getattr__(self, name: str):
        # Only called for a missing attribute: the chunks of an unpickled record, on first use.
        compact = self.__dict__.get("_compact")
        if name != "chunks" or compact is None:
            raise AttributeError(name)
        lines, terms = self.text.split("\n"), self.searched.split("\n")
        self.chunks = [Chunk(row[0], row[1], row[2], None, None, row[3], row[4], lines=lines, terms=terms)
                       if row[4] is not None else Chunk(row[0], row[1], row[2], row[5], row[6], row[3])
                       for row in compact]
        return self.chunks

    def insert_rows(self, file_id: int, first_id: int) -> tuple[list[tuple], list[tuple], dict[tuple, int]]:
        """Every chunk as new rows with ids from ``first_id``: the parameters of the chunks
        and FTS inserts, and (symbol, start line) -> id of the definition chunks."""
        compact = self.__dict__.get("_compact")
        if compact is None or "chunks" in self.__dict__:
            chunks = self.chunks
            compact = [(c.kind, c.start_line, c.end_line, c.symbol, None, body, tokens)
                       for c, (body, tokens) in zip(chunks, chunk_texts(chunks))]
            lines = terms = ()
        else:
            lines, terms = self.text.split("\n"), self.searched.split("\n")
        join = "\n".join
        rows, fts, chunk_of = [], [], {}
        cid = first_id
        for row in compact:     # (kind, start, end, symbol, span) or (..., None, body, tokens)
            span = row[4]
            if span is None:
                body, tokens = row[5], row[6]
            else:
                lo, hi = span
                body, tokens = join(lines[lo:hi]), join(terms[lo:hi])
            rows.append((cid, file_id, row[0], row[1], row[2], row[3], body))
            fts.append((cid, tokens))
            if row[0] == "definition":
                chunk_of[row[3], row[1]] = cid
            cid += 1
        return rows, fts, chunk_of


@dataclass
class ChunkRow:
    id: int
    path: str
    kind: str
    start_line: int
    end_line: int
    symbol: str | None
    body: str


class FileState(NamedTuple):
    """What the index holds about one file, to decide whether it must be parsed again."""

    hash: str
    mtime: float
    size: int
    #: The row holds an editor's unsaved buffer, not the file on disk.
    live: bool


class DefinitionRow(NamedTuple):
    """One symbol definition (``Store.definitions``)."""

    name: str
    kind: str
    path: str
    start_line: int
    end_line: int
    parent: str | None
    signature: str | None
    #: Its definition chunk, or None when it has none.
    chunk_id: int | None

    def as_dict(self) -> dict:
        """Where it is defined, without the chunk id."""
        return {k: getattr(self, k) for k in self._fields if k != "chunk_id"}


log = logging.getLogger("indexer")


class WalFolder:
    """Folds a database's write-ahead log back into it on a background thread.

    The writers of this package turn SQLite's automatic checkpoint off (``PRAGMA
    wal_autocheckpoint=0``): it runs inside the commit that crosses its threshold, on the
    editor's or the index run's path (measurements: docs/BENCHMARKS.md, "Indexer"). This does
    that work instead, with its own connection: a passive checkpoint never blocks readers
    or the next write.
    """

    def __init__(self, path: Path, *, every: int) -> None:
        self.path = path
        self.every = every
        self._writes = 0
        self._thread: threading.Thread | None = None

    def after_write(self) -> None:
        """Count a small write; every ``every`` writes, fold (unless a fold is running)."""
        self._writes += 1
        if self._writes % self.every or self.running:
            return
        self.fold(truncate=False)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def fold(self, *, truncate: bool) -> None:
        """Start a fold; ``truncate`` then also empties the log file if no reader uses it
        (else the next write reuses its space)."""

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

        self._thread = threading.Thread(target=fold, args=(self.path,), name="wal-checkpoint", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the running fold, if any."""
        if self._thread is not None:
            self._thread.join()


#: How long a write transaction retries a "database is locked" that SQLite did not wait out.
BEGIN_RETRY_S = 10.0


def _connect(path: Path, *, busy_ms: int = 30_000) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (``Store.transaction``).
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


class Store:
    """An open index database. Not thread-safe for writes: one writer at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        #: path -> {context type: text}, for items not stored (set by the Workspace, which can
        #: read and parse files); results are kept in memory per (path, content hash).
        self.items_loader: Callable[[str], dict[str, str]] | None = None
        self._loaded_items: dict[tuple[str, str], dict[str, str]] = {}

    # -- opening and creating ------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, busy_ms: int = 30_000) -> Store:
        """Open an existing database; raise :class:`StoreInvalidError` if it cannot be used."""
        try:
            conn = _connect(path, busy_ms=busy_ms)
        except sqlite3.DatabaseError as exc:
            raise StoreInvalidError(f"{path}: {exc}") from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise StoreInvalidError(f"schema version {version}, expected {SCHEMA_VERSION}")
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not _TABLES <= names:
                raise StoreInvalidError(f"tables missing: {', '.join(sorted(_TABLES - names))}")
            conn.execute("SELECT count(*) FROM files").fetchone()
        except (sqlite3.DatabaseError, StoreInvalidError) as exc:
            conn.close()
            if isinstance(exc, StoreInvalidError):
                raise
            raise StoreInvalidError(str(exc)) from exc
        return cls(conn, path)

    @classmethod
    def create(cls, path: Path, *, root: str) -> Store:
        """A new, empty database at ``path`` (whatever was there is deleted)."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        conn = _connect(path)
        conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        conn.execute("INSERT INTO meta VALUES ('root', ?)", (root,))
        conn.execute("INSERT INTO meta VALUES ('db_id', ?)", (uuid.uuid4().hex,))
        return cls(conn, path)

    def checkpoint(self) -> None:
        """Fold the write-ahead log back into the database file (after a large write)."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:  # a reader holds an old snapshot: the next run will do it
            pass

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:  # closing a connection to a corrupt file must not raise
            pass

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: everything inside commits together or not at all."""
        self._begin_immediate()
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        # The connection's busy timeout covers another writer holding the lock, but SQLite does
        # not wait when this connection reads from a snapshot older than the last commit (WAL
        # SQLITE_BUSY_SNAPSHOT: another thread's read on this shared connection, a background
        # write just committed): it answers "database is locked" at once. Retry that briefly.
        deadline = time.monotonic() + BEGIN_RETRY_S
        delay = 0.005
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- writing -------------------------------------------------------------------------

    def clear(self) -> None:
        """Delete every file's rows (call inside :meth:`transaction`, before re-indexing all)."""
        for table in ("files", "symbols", "imports", "parents", "items", "chunks", "vectors"):
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('delete-all')")

    def file_states(self) -> dict[str, FileState]:
        """path -> :class:`FileState` of every indexed file."""
        rows = self.conn.execute("SELECT path, hash, mtime, size, live FROM files")
        return {r[0]: FileState(r[1], r[2], r[3], bool(r[4])) for r in rows}

    def without_autocheckpoint(self) -> Store:
        """Leave folding the write-ahead log to a :class:`WalFolder` (see there); returns self."""
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        return self

    def remove_file(self, path: str) -> bool:
        """Delete a file and everything derived from it; True if it was indexed."""
        row = self.conn.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
        if row is None:
            return False
        self._delete_rows(row[0])
        self.conn.execute("DELETE FROM files WHERE id=?", (row[0],))
        return True

    def _delete_search_rows(self, rows: Iterable[tuple[int, str]]) -> None:
        """Take chunks, as (id, body), out of the contentless FTS table: it needs the very
        terms the row was inserted with, which are ``search_text(body)``."""
        self.conn.executemany("INSERT INTO chunks_fts(chunks_fts, rowid, tokens) VALUES('delete', ?, ?)",
                              [(cid, search_text(body)) for cid, body in rows])

    def _delete_rows(self, file_id: int) -> None:
        c = self.conn
        self._delete_search_rows(c.execute("SELECT id, body FROM chunks WHERE file_id=?", (file_id,)).fetchall())
        c.execute("DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE file_id=?)", (file_id,))
        for table in ("chunks", "symbols", "imports", "parents", "items"):
            c.execute(f"DELETE FROM {table} WHERE file_id=?", (file_id,))

    def touch_file(self, path: str, mtime: float, size: int) -> None:
        """Record a new mtime for a file whose content hash did not change."""
        self.conn.execute("UPDATE files SET mtime=?, size=? WHERE path=?", (mtime, size, path))

    def put_file(self, rec: FileRecord) -> int:
        """Insert or replace one file's rows (call inside :meth:`transaction`).

        Chunks whose text and place did not change keep their rows: rewriting FTS5 rows is
        the expensive part, and an edit inside one line changes only the windows around it.
        """
        c = self.conn
        row = c.execute("SELECT id FROM files WHERE path=?", (rec.path,)).fetchone()
        old: dict[tuple, int] = {}
        if row is not None:
            file_id = row[0]
            for cid, *key in c.execute(
                    "SELECT id, kind, start_line, end_line, symbol, body FROM chunks WHERE file_id=?", (file_id,)):
                old[tuple(key)] = cid   # key[-1] is the body
            for table in ("symbols", "imports", "parents", "items"):
                c.execute(f"DELETE FROM {table} WHERE file_id=?", (file_id,))
            c.execute(
                "UPDATE files SET hash=?, mtime=?, size=?, language=?, lines=?, live=? WHERE id=?",
                (rec.hash, rec.mtime, rec.size, rec.language, rec.lines, int(rec.live), file_id),
            )
        else:
            file_id = c.execute(
                "INSERT INTO files(path, hash, mtime, size, language, lines, live) VALUES (?,?,?,?,?,?,?)",
                (rec.path, rec.hash, rec.mtime, rec.size, rec.language, rec.lines, int(rec.live)),
            ).lastrowid
        # Explicit ids let one executemany fill both the chunks and their FTS rows. Ids are
        # never reused (AUTOINCREMENT), so "newer than the BM25 snapshot" means "id > its max".
        next_id = self.max_chunk_id() + 1
        if old:
            ids: list[int] = []
            fresh: list[tuple[int, Chunk]] = []
            for ch in rec.chunks:
                cid = old.pop((ch.kind, ch.start_line, ch.end_line, ch.symbol, ch.body), None)
                if cid is None:
                    cid, next_id = next_id, next_id + 1
                    fresh.append((cid, ch))
                ids.append(cid)
            if old:
                gone = [(cid,) for cid in old.values()]
                self._delete_search_rows((cid, key[-1]) for key, cid in old.items())
                c.executemany("DELETE FROM vectors WHERE chunk_id=?", gone)
                c.executemany("DELETE FROM chunks WHERE id=?", gone)
            texts = chunk_texts(ch for _, ch in fresh)
            rows = [(i, file_id, ch.kind, ch.start_line, ch.end_line, ch.symbol, text[0])
                    for (i, ch), text in zip(fresh, texts)]
            fts = [(i, text[1]) for (i, _), text in zip(fresh, texts)]
            chunk_of = {(ch.symbol, ch.start_line): i for i, ch in zip(ids, rec.chunks) if ch.kind == "definition"}
        else:   # a new file (every file of a first index run): every chunk is fresh
            rows, fts, chunk_of = rec.insert_rows(file_id, next_id)
        c.executemany(
            "INSERT INTO chunks(id, file_id, kind, start_line, end_line, symbol, body) VALUES (?,?,?,?,?,?,?)", rows)
        c.executemany("INSERT INTO chunks_fts(rowid, tokens) VALUES (?,?)", fts)
        get = chunk_of.get
        c.executemany(
            "INSERT INTO symbols(file_id, name, kind, start_line, end_line, parent, signature, chunk_id)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(file_id, *s, get((s[0], s[2]))) for s in rec.symbols],
        )
        c.executemany("INSERT INTO imports VALUES (?,?,?,?,?)", [(file_id, *i) for i in rec.imports])
        c.executemany("INSERT INTO parents VALUES (?,?,?,?)", [(file_id, *p) for p in rec.parents])
        c.executemany("INSERT INTO items VALUES (?,?,?)", [(file_id, k, v) for k, v in rec.items.items() if v])
        return file_id

    # -- reading -------------------------------------------------------------------------

    def paths(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM files ORDER BY path")]

    def file_id(self, path: str) -> int | None:
        row = self.conn.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        c = self.conn
        return {
            "files": c.execute("SELECT count(*) FROM files").fetchone()[0],
            "symbols": c.execute("SELECT count(*) FROM symbols").fetchone()[0],
            "chunks": c.execute("SELECT count(*) FROM chunks").fetchone()[0],
        }

    def languages(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT coalesce(language, 'other'), count(*) FROM files GROUP BY 1 ORDER BY 2 DESC")
        return dict(rows.fetchall())

    def search(self, match: str, limit: int, *, min_rowid: int = 0) -> list[tuple[int, float]]:
        """FTS5 BM25 search among chunks with id > ``min_rowid``: (chunk id, score), best first."""
        rows = self.conn.execute(
            "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid > ? ORDER BY rank LIMIT ?",
            (match, min_rowid, limit))
        return [(r[0], -r[1]) for r in rows]

    def max_chunk_id(self) -> int:
        """The highest chunk id ever given (ids grow monotonically, even across deletes)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
        return row[0] if row else 0

    def generation(self) -> str:
        """A random token renewed by every index run that changed something (caches key on it;
        random, so a database rebuilt from scratch never matches an old cache)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return row[0] if row else ""

    def db_id(self) -> str:
        """A random identity given when the database was created (caches of another file differ)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='db_id'").fetchone()
        return row[0] if row else ""

    def chunks_up_to(self, max_id: int) -> int:
        """How many chunks have an id <= ``max_id`` (a scan: call once per index generation)."""
        return self.conn.execute("SELECT count(*) FROM chunks WHERE id <= ?", (max_id,)).fetchone()[0]

    def document_frequencies(self) -> dict[str, int]:
        """term -> number of chunks containing it, from the FTS5 vocabulary."""
        c = self.conn
        c.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_vocab USING fts5vocab(main, chunks_fts, row)")
        return dict(c.execute("SELECT term, doc FROM temp.fts_vocab").fetchall())

    def bump_generation(self) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (uuid.uuid4().hex,))

    def chunk_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunks(self, ids: Sequence[int]) -> list[ChunkRow]:
        """Chunks by id, in the order of ``ids``."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT c.id, f.path, c.kind, c.start_line, c.end_line, c.symbol, c.body FROM chunks c"
            f" JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})", list(ids))
        by_id = {r[0]: ChunkRow(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def file_chunks(self, path: str, kind: str | None = None) -> list[ChunkRow]:
        sql = ("SELECT c.id, f.path, c.kind, c.start_line, c.end_line, c.symbol, c.body FROM chunks c"
               " JOIN files f ON f.id = c.file_id WHERE f.path=?")
        args: list = [path]
        if kind:
            sql += " AND c.kind=?"
            args.append(kind)
        return [ChunkRow(*r) for r in self.conn.execute(sql + " ORDER BY c.start_line", args)]

    def definitions(self, names: Iterable[str], path: str | None = None) -> list[DefinitionRow]:
        """Symbols named ``names`` (optionally only in ``path``)."""
        names = list(dict.fromkeys(names))
        if not names:
            return []
        marks = ",".join("?" * len(names))
        sql = ("SELECT s.name, s.kind, f.path, s.start_line, s.end_line, s.parent, s.signature, s.chunk_id"
               f" FROM symbols s JOIN files f ON f.id = s.file_id WHERE s.name IN ({marks})")
        args = list(names)
        if path is not None:
            sql += " AND f.path=?"
            args.append(path)
        return [DefinitionRow(*row) for row in self.conn.execute(sql, args)]

    def file_symbols(self, path: str) -> list[tuple]:
        """(name, kind, start_line, end_line, parent, signature, chunk_id) of one file, in order."""
        return self.conn.execute(
            "SELECT s.name, s.kind, s.start_line, s.end_line, s.parent, s.signature, s.chunk_id"
            " FROM symbols s JOIN files f ON f.id = s.file_id WHERE f.path=? ORDER BY s.start_line", (path,)
        ).fetchall()

    def file_imports(self, path: str) -> list[tuple]:
        """(module, name, alias, line) of one file."""
        return self.conn.execute(
            "SELECT i.module, i.name, i.alias, i.line FROM imports i JOIN files f ON f.id = i.file_id"
            " WHERE f.path=?", (path,)).fetchall()

    def file_parents(self, path: str) -> list[tuple]:
        """(class_name, parent_name, line) edges declared in one file."""
        return self.conn.execute(
            "SELECT p.class_name, p.parent_name, p.line FROM parents p JOIN files f ON f.id = p.file_id"
            " WHERE f.path=?", (path,)).fetchall()

    def children_of(self, class_names: Sequence[str]) -> list[tuple]:
        """(class_name, parent_name, path) of classes deriving from any of ``class_names``."""
        if not class_names:
            return []
        marks = ",".join("?" * len(class_names))
        return self.conn.execute(
            "SELECT p.class_name, p.parent_name, f.path FROM parents p JOIN files f ON f.id = p.file_id"
            f" WHERE p.parent_name IN ({marks})", list(class_names)).fetchall()

    def items(self, path: str, kind: str) -> str:
        """One file's ``kind`` items, one a line: stored, else from :attr:`items_loader`."""
        row = self.conn.execute(
            "SELECT i.text FROM items i JOIN files f ON f.id = i.file_id WHERE f.path=? AND i.kind=?",
            (path, kind)).fetchone()
        if row:
            return row[0]
        found = self.conn.execute("SELECT hash FROM files WHERE path=?", (path,)).fetchone()
        if found is None or self.items_loader is None:
            return ""
        key = (path, found[0])
        items = self._loaded_items.get(key)
        if items is None:
            items = self.items_loader(path)
            if len(self._loaded_items) >= _LOADED_ITEMS_FILES:
                del self._loaded_items[next(iter(self._loaded_items))]   # the oldest
            self._loaded_items[key] = items
        return items.get(kind, "")

    def file_items(self, paths: Sequence[str], kind: str) -> dict[str, str]:
        if not paths:
            return {}
        marks = ",".join("?" * len(paths))
        rows = self.conn.execute(
            "SELECT f.path, i.text FROM items i JOIN files f ON f.id = i.file_id"
            f" WHERE i.kind=? AND f.path IN ({marks})", [kind, *paths])
        return dict(rows.fetchall())
