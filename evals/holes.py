"""Evaluation holes mined from a real repository (CrossCodeEval- and RepoFusion-style).

Three kinds of hole, all single-line targets:

- ``cross_file``: a line that uses an identifier defined in *another* file of the repository
  and not in its own (static analysis with ``indexer.parse``: references resolved against the
  top-level definitions of every file). The cursor is at the start of the line (after its
  indentation); the target is the line. Its gold documents are the defining definitions.
- ``line``: any non-blank, non-comment line; cursor after the indentation, target = the line.
- ``rest_of_line``: RepoFusion's hole: the cursor somewhere inside a line (at a token
  boundary), target = the rest of the line.

The prefix is the file up to the cursor and the suffix is everything after the target line, so
the hole is exactly the target.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from indexer.languages import language_for_path
from indexer.parse import parse_source

HOLE_KINDS = ("cross_file", "line", "rest_of_line")

#: Names too common to say which file defines them (every package has a ``main``).
_MIN_NAME_LENGTH = 3
#: A name defined in more files than this is ambiguous: no single gold file.
_MAX_DEFINING_FILES = 3
_MIN_TARGET_CHARS, _MAX_TARGET_CHARS = 6, 120
_TOKEN_BOUNDARY = re.compile(r"(?<=[\s(\[{,.=:])(?=\S)")


@dataclass(frozen=True)
class Gold:
    """A definition the hole's completion needs: where it lives."""

    name: str
    path: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Hole:
    """One completion to make: ``prefix`` + target + ``suffix`` is the original file."""

    id: str
    kind: str
    path: str           # relative to the repository root
    language: str
    line: int           # 1-based line of the target
    prefix: str
    suffix: str
    target: str
    gold: tuple[Gold, ...] = field(default=())

    @property
    def gold_files(self) -> frozenset[str]:
        return frozenset(g.path for g in self.gold)


def _comment_prefixes(language: str) -> tuple[str, ...]:
    return {"python": ("#",), "r": ("#",), "racket": (";",)}.get(language, ("//", "#", "/*", "*", "--", ";"))


def _eligible(line: str, language: str) -> bool:
    stripped = line.strip()
    return (_MIN_TARGET_CHARS <= len(stripped) <= _MAX_TARGET_CHARS
            and not stripped.startswith(_comment_prefixes(language))
            and not stripped.startswith(('"""', "'''", "import ", "from ")))


def _hole(kind: str, path: str, language: str, lines: list[str], line_no: int, column: int,
          gold: tuple[Gold, ...] = ()) -> Hole:
    """The hole with the cursor at ``column`` of 1-based ``line_no``; the target is the rest of that line."""
    before = "\n".join(lines[: line_no - 1])
    line = lines[line_no - 1]
    prefix = (before + "\n" if line_no > 1 else "") + line[:column]
    suffix = "\n" + "\n".join(lines[line_no:]) if line_no < len(lines) else ""
    return Hole(f"{path}:{line_no}:{kind}", kind, path, language, line_no, prefix, suffix, line[column:], gold)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def read_sources(files: dict[str, str], languages: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """relpath -> (language, text) for the files in ``languages``."""
    out = {}
    for path, text in files.items():
        language = language_for_path(path)
        if language in languages and text.strip():
            out[path] = (language, text)
    return out


def load_files(root: Path, paths: list[str], max_bytes: int = 400_000) -> dict[str, str]:
    """Text of each (relative) path, skipping unreadable and very large files."""
    out = {}
    for rel in paths:
        full = root / rel
        try:
            if full.stat().st_size <= max_bytes:
                out[rel] = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return out


def mine_holes(files: dict[str, str], *, languages: tuple[str, ...] = ("python",),
               kinds: tuple[str, ...] = HOLE_KINDS, limit: int | None = None, seed: int = 0,
               keep: Callable[[Hole], bool] | None = None) -> list[Hole]:
    """Holes of each kind (at most ``limit`` per kind, a seeded sample) from ``files`` (relpath -> text),
    only those ``keep`` accepts when given (chosen before sampling)."""
    sources = read_sources(files, languages)
    parsed = {path: parse_source(text, language) for path, (language, text) in sources.items()}
    defined_in: dict[str, list[Gold]] = defaultdict(list)
    for path, result in parsed.items():
        for d in result.definitions:
            if d.parent is None and len(d.name) >= _MIN_NAME_LENGTH:
                defined_in[d.name].append(Gold(d.name, path, d.start_line, d.end_line))
    rng = random.Random(seed)
    candidates: dict[str, list[Hole]] = {kind: [] for kind in kinds}
    for path, (language, text) in sorted(sources.items()):
        lines = text.split("\n")
        own = {d.name for d in parsed[path].definitions}
        if "cross_file" in kinds:
            seen_lines: set[int] = set()
            for ref in parsed[path].references:
                golds = [g for g in defined_in.get(ref.name, ()) if g.path != path]
                if (ref.name in own or not golds or len(golds) > _MAX_DEFINING_FILES or ref.line in seen_lines
                        or ref.line > len(lines) or not _eligible(lines[ref.line - 1], language)):
                    continue
                seen_lines.add(ref.line)
                candidates["cross_file"].append(_hole("cross_file", path, language, lines, ref.line,
                                                      _indent(lines[ref.line - 1]), tuple(golds)))
        for number, line in enumerate(lines, start=1):
            if not _eligible(line, language):
                continue
            if "line" in kinds:
                candidates["line"].append(_hole("line", path, language, lines, number, _indent(line)))
            if "rest_of_line" in kinds:
                cuts = [m.start() for m in _TOKEN_BOUNDARY.finditer(line)
                        if _indent(line) < m.start() <= len(line) - 3]
                if cuts:
                    candidates["rest_of_line"].append(_hole("rest_of_line", path, language, lines, number,
                                                            rng.choice(cuts)))
    holes: list[Hole] = []
    for kind in kinds:
        pool = [h for h in candidates[kind] if keep(h)] if keep else candidates[kind]
        if limit is not None and len(pool) > limit:
            pool = [pool[i] for i in sorted(random.Random(seed).sample(range(len(pool)), limit))]
        holes += pool
    return holes
