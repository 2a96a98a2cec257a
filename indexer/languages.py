"""Which language a file is written in, by file name, extension or first line.

Our names are the keys of ``LANGUAGES``; ``GRAMMARS`` maps them to the grammar names of
``tree-sitter-language-pack`` (they coincide today, but the mapping keeps our API stable).
"""

from __future__ import annotations

import re
from pathlib import PurePath

#: Every language the indexer parses (each has ``queries/<name>.scm``).
LANGUAGES: tuple[str, ...] = (
    "python", "javascript", "typescript", "tsx", "java", "go", "rust", "c", "cpp",
    "csharp", "ruby", "php", "kotlin", "r", "racket",
)

#: Our language name -> tree-sitter-language-pack grammar name.
GRAMMARS: dict[str, str] = {name: name for name in LANGUAGES}

_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hh": "cpp", ".hpp": "cpp",
    ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".ru": "ruby",
    ".php": "php", ".phtml": "php",
    ".kt": "kotlin", ".kts": "kotlin",
    ".r": "r",
    ".rkt": "racket", ".rktl": "racket", ".rktd": "racket",
}

_FILENAMES: dict[str, str] = {
    "Rakefile": "ruby", "Gemfile": "ruby", "Guardfile": "ruby", "Vagrantfile": "ruby",
    "SConstruct": "python", "SConscript": "python",
    ".Rprofile": "r",
}

# "#!/usr/bin/env python3 -u" -> "python3"; "#!/bin/node" -> "node".
_SHEBANG = re.compile(r"^#!\s*(?:\S*/)?(?:env\s+(?:-\S+\s+)*)?([A-Za-z]+)")
_INTERPRETERS: dict[str, str] = {
    "python": "python", "pypy": "python", "node": "javascript", "nodejs": "javascript",
    "deno": "typescript", "ruby": "ruby", "php": "php", "Rscript": "r", "racket": "racket",
}


def language_for_path(path: str | PurePath, first_line: str | None = None) -> str | None:
    """Return the language of ``path`` (one of ``LANGUAGES``), or None when unknown.

    ``first_line`` (optional) lets extension-less scripts be recognised by their shebang,
    and ``#lang racket`` files by their first line.
    """
    name = PurePath(path).name
    if name in _FILENAMES:
        return _FILENAMES[name]
    suffix = PurePath(name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if first_line:
        if first_line.startswith("#lang "):
            return "racket"
        match = _SHEBANG.match(first_line)
        if match:
            # "python3.11" -> "python": strip version digits the regex already left out.
            return _INTERPRETERS.get(match.group(1))
    return None
