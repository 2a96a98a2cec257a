"""Chunks of a source file and the identifier-aware terms they are searched by.

Two kinds of chunk cover a file: ``window`` chunks are sliding windows of a few lines
(CrossCodeEval / RepoCoder retrieve 10-line windows), ``definition`` chunks follow the
syntax tree (one per function, method or class; long classes are summarised by their
member signatures). Terms split identifiers the way people search for them:
``parseHTTPResponse_code`` -> ``parse http response code``, so a query for ``response``
finds ``HttpResponse``. Two tokenizations share those rules: :func:`search_text` (regex
substitutions run in C over a whole file, then FTS5's tokenizer) for what BM25 indexes,
and :func:`line_terms` (per word, also yielding the whole compound name) for the term sets
Jaccard compares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

_WORD = re.compile(r"\w+")
# camelCase boundaries: "parseHTTPResponse" -> "parse HTTP Response" (see search_text).
_UPPER_RUN = re.compile(r"[A-Z]+")
_LOWER_OR_DIGIT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
#: ASCII punctuation, ``_`` and whitespace to spaces (FTS5 splits there too); UTF-8 bytes
#: of other characters stay, as parts of words.
_NOT_WORD_BYTES = bytes(b if chr(b).isalnum() or b >= 0x80 else 0x20 for b in range(256))
# What FTS5's unicode61 tokenizer keeps as one token: letters and digits (``_`` separates).
_SEARCH_TERM = re.compile(r"[^\W_]{2,}")
# Pieces of a camelCase word: "HTTPResponse" -> HTTP, Response; "utf8Decode" -> utf8, Decode.
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")


@lru_cache(maxsize=262_144)
def identifier_terms(word: str) -> tuple[str, ...]:
    """Search terms of one identifier: its lower-cased parts, then the whole name if compound.

    Single characters are dropped: loop variables and operators' neighbours are noise for
    lexical retrieval.
    """
    parts = [p.lower() for piece in word.split("_") if piece for p in (_CAMEL.findall(piece) or [piece])]
    terms = [p for p in parts if len(p) > 1]
    whole = word.replace("_", "").lower()
    if len(parts) > 1 and len(whole) > 1:
        terms.append(whole)
    return tuple(terms)


def line_terms(line: str) -> list[str]:
    """Terms of one line, in order (duplicates kept: BM25 counts term frequency)."""
    out: list[str] = []
    for word in _WORD.findall(line):
        out.extend(identifier_terms(word))
    return out


def token_text(text: str) -> str:
    """``text``'s terms joined by spaces (compound names included)."""
    return " ".join(line_terms(text))


def search_text(text: str) -> str:
    """What FTS5 indexes for ``text``: camelCase split, lower-cased; line breaks are kept so
    a file transformed once can be cut into windows. FTS5 splits on ``_`` and punctuation."""
    # A space goes before an uppercase run that follows a lowercase letter or digit
    # ("utf8Decode"), and before the last letter of a run followed by lowercase
    # ("HTTPResponse"). Scanning only uppercase runs (sparse in code) is ~2x faster than
    # lookahead substitutions tried at every position.
    out: list[str] = []
    done = 0
    for run in _UPPER_RUN.finditer(text):
        start, end = run.span()
        if start and text[start - 1] in _LOWER_OR_DIGIT:
            out += (text[done:start], " ")
            done = start
        if end - start >= 2 and end < len(text) and text[end] in _LOWER:
            out += (text[done:end - 1], " ")
            done = end - 1
    out.append(text[done:])
    return "".join(out).lower()


def search_terms(text: str) -> list[str]:
    """The BM25 query terms of ``text``, tokenized exactly as :func:`search_text` is indexed."""
    return _SEARCH_TERM.findall(search_text(text))


def file_terms(searched: str) -> set[str]:
    """The distinct BM25 terms of a file, given its :func:`search_text` (what the sibling
    source ranks files by). Bytes-level translate and split run in C, ~10x faster than a
    regex over the text."""
    words = searched.encode("utf-8", "surrogatepass").translate(_NOT_WORD_BYTES).split()
    decoded = (w.decode("utf-8", "replace") for w in set(words) if len(w) > 1)
    return {w for w in decoded if len(w) > 1}


def term_set(text: str) -> set[str]:
    """Distinct terms of ``text`` (the sets Jaccard similarity compares)."""
    return set(line_terms(text))


class Chunk:
    """A contiguous piece of a file; lines are 1-based and inclusive.

    ``kind`` is "window" or "definition"; ``tokens`` is ``search_text(body)`` (what FTS5
    indexes). A chunk cut from a file's lines (``span``) joins its body and tokens only when
    they are read: index workers send chunks as spans (:class:`indexer.store.FileRecord`),
    so joining them there would be wasted, and the writing process joins each once.
    """

    __slots__ = ("kind", "start_line", "end_line", "symbol", "span", "_body", "_tokens", "_lines", "_terms")

    def __init__(self, kind: str, start_line: int, end_line: int, body: str | None, tokens: str | None,
                 symbol: str | None = None, span: tuple[int, int] | None = None, *,
                 lines: Sequence[str] | None = None, terms: Sequence[str] | None = None) -> None:
        self.kind = kind
        self.start_line = start_line
        self.end_line = end_line
        self.symbol = symbol
        #: ``(lo, hi)`` when ``body`` is the file's lines[lo:hi] and ``tokens`` the same lines
        #: of its search text: a record then travels between processes without the copies.
        self.span = span
        self._body = body
        self._tokens = tokens
        self._lines = lines      # the file's lines and search-text lines, while not joined
        self._terms = terms

    @property
    def body(self) -> str:
        return self._body if self._body is not None else self._join()[0]

    @property
    def tokens(self) -> str:
        return self._tokens if self._tokens is not None else self._join()[1]

    def _join(self) -> tuple[str, str]:
        lo, hi = self.span
        self._body, self._tokens = "\n".join(self._lines[lo:hi]), "\n".join(self._terms[lo:hi])
        self._lines = self._terms = None
        return self._body, self._tokens

    def _key(self) -> tuple:
        return (self.kind, self.start_line, self.end_line, self.body, self.tokens, self.symbol, self.span)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Chunk) else NotImplemented

    __hash__ = None  # mutable, like the dataclass it replaced

    def __reduce__(self) -> tuple:
        return (Chunk, (self.kind, self.start_line, self.end_line, self.body, self.tokens, self.symbol, self.span))

    def __repr__(self) -> str:
        return (f"Chunk(kind={self.kind!r}, start_line={self.start_line}, end_line={self.end_line}, "
                f"body={self.body!r}, tokens={self.tokens!r}, symbol={self.symbol!r}, span={self.span!r})")


def chunk_texts(chunks: Iterable[Chunk]) -> list[tuple[str, str]]:
    """(body, tokens) of each chunk (what the store writes)."""
    return [(ch._body, ch._tokens) if ch._body is not None and ch._tokens is not None else ch._join()
            for ch in chunks]


def windows(lines: Sequence[str], terms: Sequence[str], size: int, stride: int) -> list[Chunk]:
    """Sliding windows of ``size`` lines every ``stride`` lines; the file's end is always covered.

    ``terms`` holds the :func:`search_text` of every line, computed once for the whole file.
    Windows of blank lines only are left out. Bodies and tokens are joined when first read.
    """
    n = len(lines)
    if n == 0:
        return []
    starts = list(range(0, max(n - size, 0) + 1, stride))
    if starts[-1] + size < n:
        starts.append(n - size)
    out = []
    for start in starts:
        end = start + size if start + size < n else n
        if lines[start].strip() or any(map(str.strip, lines[start + 1:end])):
            out.append(Chunk("window", start + 1, end, None, None, span=(start, end), lines=lines, terms=terms))
    return out


def _summary(lines: Sequence[str], start: int, end: int, members: list[int], max_lines: int) -> str:
    """A long class as its header plus one line per member (its signature line)."""
    header_end = min(members[0] - 1 if members else end, start - 1 + max(max_lines // 4, 1))
    picked = list(lines[start - 1:header_end])
    for line_no in members:
        if len(picked) >= max_lines:
            break
        picked.append(lines[line_no - 1])
    return "\n".join(picked)


def definition_chunks(lines: Sequence[str], definitions: Iterable, max_lines: int,
                      terms: Sequence[str] | None = None) -> list[Chunk]:
    """One chunk per multi-line definition (function, method, class) of a parsed file.

    ``definitions`` are ``indexer.parse.Definition`` values (name, kind, start_line,
    end_line, parent). Classes longer than ``max_lines`` become a summary of their members'
    signature lines; other long definitions are cut at ``max_lines``. ``terms`` (the
    :func:`search_text` of every line, when already computed) saves tokenizing bodies again.
    """
    defs = [d for d in definitions if d.end_line > d.start_line]
    members: dict[str, list[int]] = {}
    for d in defs:
        if d.parent:
            members.setdefault(d.parent, []).append(d.start_line)
    out = []
    for d in defs:
        start, end = d.start_line, min(d.end_line, len(lines))
        if start < 1 or start > end:
            continue
        summarised = end - start + 1 > max_lines and d.name in members and "class" in str(d.kind)
        span = None
        if summarised:
            inside = sorted(m for m in members[d.name] if start < m <= end)
            body = _summary(lines, start, end, inside, max_lines)
            tokens = search_text(body)
        else:
            last = min(end, start - 1 + max_lines)
            if terms:
                out.append(Chunk("definition", start, end, None, None, d.name, (start - 1, last),
                                 lines=lines, terms=terms))
                continue
            body = "\n".join(lines[start - 1:last])
            tokens = search_text(body)
        out.append(Chunk("definition", start, end, body, tokens, symbol=d.name, span=span))
    return out
