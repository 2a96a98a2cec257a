"""Turning one file into what the store keeps: read, hash, parse, chunk, redact.

:func:`prepare_file` runs in a worker process during big index runs (:mod:`indexer.workers`)
and returns a typed result the writer stores: :class:`Skipped`, :class:`Unchanged` or
:class:`Built`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from indexer.chunks import definition_chunks, file_terms, search_text, windows
from indexer.config import IndexConfig
from indexer.errors import FileSkipError
from indexer.secrets import redact
from indexer.store import FileRecord
from indexer.walk import read_text

#: RepoFusion context types (lists of (text, line) in ParsedFile), computed on demand.
ITEM_KINDS = ("identifiers", "type_identifiers", "string_literals", "field_declarations")


class FileJob(NamedTuple):
    """One file an index run must look at (sent to a worker process)."""

    relpath: str
    abspath: str
    language: str | None
    mtime: float
    size: int
    #: The content hash the index holds for it, or None (then it is always parsed).
    stored_hash: str | None = None


@dataclass(frozen=True)
class Skipped:
    """The file is not indexed (binary, too large, vanished, ...)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Unchanged:
    """The content hash is the stored one: only mtime and size need updating."""


@dataclass(frozen=True)
class Built:
    """A fresh record to store, and the parse errors met building it."""

    record: FileRecord
    errors: list[str] = field(default_factory=list)


Prepared = Skipped | Unchanged | Built


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def build_record(path: str, text: str, language: str | None, *, mtime: float, size: int,
                 config: IndexConfig, live: bool = False, errors: list[str] | None = None,
                 previous: object | None = None) -> FileRecord:
    """Parse one file and derive everything the store keeps about it (secrets redacted).

    The RepoFusion context items (identifiers, strings, ...) are not among them: extracting
    them costs most of a parse again, and only item proposals read them, so
    :meth:`indexer.workspace.Workspace.context_items` computes them on demand. ``previous`` (the
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
            for kind in ITEM_KINDS}


def prepare_file(job: FileJob, *, config: IndexConfig) -> Prepared:
    """Read, hash and parse one file (in a worker process during big runs)."""
    try:
        text = read_text(job.abspath, config.walk)
    except FileSkipError as exc:
        return Skipped(exc.reason, f"{job.relpath}: {exc.reason.replace('_', ' ')}")
    if job.stored_hash is not None and job.stored_hash == content_hash(text):
        return Unchanged()
    errors: list[str] = []
    record = build_record(job.relpath, text, job.language, mtime=job.mtime, size=job.size, config=config, errors=errors)
    return Built(record, errors)
