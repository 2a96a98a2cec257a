"""RepoFusion / RLPG prompt proposals: which files to take context from, and what of them.

A proposal is a *source* (where: the files the current file imports, the files defining
its classes' parents or children, its siblings in the folder, files with a similar name,
the current file itself) combined with a *context type* (what: method names and bodies,
method names, identifiers, type identifiers, string literals, field declarations, lines).
:func:`propose` renders any combination, so training can sample them all; retrieval uses
one context type per source (:data:`DEFAULT_CONTEXT_TYPES`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from indexer.chunks import line_terms, term_set
from indexer.retrieve.cursor import VISIBLE_FRACTION, Cursor, chunk_snippet
from indexer.retrieve.jaccard import ChunkTerms, jaccard, rank_by_jaccard
from indexer.store import Store
from indexer.types import Snippet

PROPOSAL_SOURCES: tuple[str, ...] = ("import", "parent_class", "child_class", "sibling", "similar_name", "in_file")

CONTEXT_TYPES: tuple[str, ...] = (
    "method_names_and_bodies", "method_names", "identifiers", "type_identifiers",
    "string_literals", "field_declarations", "lines",
)

#: The context type retrieval uses for each source.
DEFAULT_CONTEXT_TYPES: dict[str, str] = {
    "import": "method_names_and_bodies",
    "parent_class": "method_names_and_bodies",
    "child_class": "method_names",
    "sibling": "lines",
    "similar_name": "method_names_and_bodies",
    "in_file": "lines",
}

# Kinds of definition that make up a file's outline (method_names).
_OUTLINE_KINDS = ("function", "method", "class", "interface", "struct", "trait", "enum", "module", "type")
# Item lists are cut so that one snippet never swamps the budget.
_MAX_ITEMS = 60
_TEST_AFFIX = re.compile(r"^(tests?_|spec_)|(_tests?|_spec|tests?|spec)$")


@dataclass
class ProposalFile:
    """A file proposed as context: its path, a score, and the names in it that matter."""

    path: str
    score: float
    focus: list[str] = field(default_factory=list)


class ModuleMap:
    """Resolves import strings (``email.utils``, ``./util``, ``..base``) to files of the repository."""

    def __init__(self, paths: Sequence[str], *, chunk_terms: ChunkTerms | None = None,
                 root_package: str | None = None) -> None:
        self.paths = frozenset(paths)
        #: The workspace folder's name: when the root is a package (``email/``), its own
        #: modules import each other as ``email.utils``, which lives at ``utils.py``.
        self.root_package = root_package
        #: Term sets of chunks (shared with the retriever's lexical sources).
        self.chunk_terms = chunk_terms or ChunkTerms()
        self._by_key: dict[str, list[str]] = {}
        self.by_folder: dict[str, list[str]] = {}
        #: path -> terms of its identifiers, filled as siblings are ranked (stale until the
        #: next re-index at worst: it only orders siblings).
        self.identifier_terms: dict[str, frozenset[str]] = {}
        self._windows: dict[str, list[tuple[object, frozenset[str]]]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for path in sorted(paths):
            self.by_folder.setdefault(posixpath.dirname(path), []).append(path)
            self.by_stem.setdefault(_normalized_stem(path), []).append(path)
            stem = path.rsplit(".", 1)[0] if "." in path.rpartition("/")[2] else path
            parts = stem.split("/")
            if parts[-1] in ("__init__", "index", "mod", "lib") and len(parts) > 1:
                parts = parts[:-1]
            for i in range(len(parts)):
                self._by_key.setdefault(".".join(parts[i:]), []).append(path)

    def windows(self, store: Store, path: str) -> list[tuple[object, frozenset[str]]]:
        """A file's window chunks with their term sets (cached for the few files asked about)."""
        cached = self._windows.get(path)
        if cached is None:
            if len(self._windows) > 256:  # bounded: only siblings and proposals come here
                self._windows.clear()
            cached = [(r, self.chunk_terms(r)) for r in store.file_chunks(path, "window")]
            self._windows[path] = cached
        return cached

    def resolve(self, module: str, from_path: str) -> list[str]:
        """Files ``module`` may refer to, best first (empty for modules outside the repository)."""
        module = module.strip().strip("\"'<>`")
        if not module:
            return []
        folder = posixpath.dirname(from_path)
        if module.startswith("."):
            if module.startswith(("./", "../")):  # JavaScript / TypeScript / C includes
                target = posixpath.normpath(posixpath.join(folder, module))
            else:  # Python relative import: one dot = this package
                level = len(module) - len(module.lstrip("."))
                base = folder
                for _ in range(level - 1):
                    base = posixpath.dirname(base)
                rest = module.lstrip(".").replace(".", "/")
                target = posixpath.join(base, rest) if rest else base
            return list(self._by_key.get(target.strip("/").replace("/", "."), []))
        key = re.sub(r"(::|/|\\)", ".", module).strip(".")
        if key.endswith((".h", ".hpp", ".js", ".ts", ".py", ".rb", ".php", ".R", ".rkt")):
            key = key.rsplit(".", 1)[0]
        found = self._by_key.get(key, [])
        if not found and self.root_package and key.startswith(self.root_package + "."):
            found = self._by_key.get(key[len(self.root_package) + 1:], [])
        elif not found and key == self.root_package:
            found = self._by_key.get("__init__", [])
        top = from_path.split("/", 1)[0]
        return sorted(found, key=lambda p: (p.split("/", 1)[0] != top, len(p)))


def _normalized_stem(path: str) -> str:
    stem = path.rpartition("/")[2].split(".")[0]
    stem = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()
    return _TEST_AFFIX.sub("", stem).replace("_", "").replace("-", "")


# -- sources: which files -------------------------------------------------------------------


def import_files(store: Store, cursor: Cursor, modules: ModuleMap) -> list[ProposalFile]:
    """Files the current file imports from; names imported and used near the cursor first."""
    near = set(cursor.near_identifiers)
    by_path: dict[str, ProposalFile] = {}
    for module, name, alias, _line in store.file_imports(cursor.path):
        targets = []
        if name:  # ``from pkg import mod`` imports a module, not a name
            targets = modules.resolve(f"{module.rstrip('.')}.{name}" if module.strip(".") else module + name,
                                      cursor.path)
        focus = [] if targets else [name] if name else []
        targets = targets or modules.resolve(module, cursor.path)
        for path in targets[:1]:
            if path == cursor.path:
                continue
            used = bool({name, alias} & near) if (name or alias) else False
            entry = by_path.setdefault(path, ProposalFile(path, 0.0))
            entry.score = max(entry.score, 1.0 if used else 0.5)
            entry.focus.extend(n for n in focus if n)
    return sorted(by_path.values(), key=lambda p: -p.score)


def _class_names(store: Store, cursor: Cursor) -> list[str]:
    return [s[0] for s in store.file_symbols(cursor.path) if "class" in str(s[1]) or s[1] in ("struct", "interface")]


def parent_class_files(store: Store, cursor: Cursor) -> list[ProposalFile]:
    """Files defining the parent classes of the classes in the current file."""
    parents = [p[1] for p in store.file_parents(cursor.path)]
    out: dict[str, ProposalFile] = {}
    for row in store.definitions(parents):
        if row.path != cursor.path:
            out.setdefault(row.path, ProposalFile(row.path, 1.0)).focus.append(row.name)
    return list(out.values())


def child_class_files(store: Store, cursor: Cursor) -> list[ProposalFile]:
    """Files defining subclasses of the classes in the current file."""
    out: dict[str, ProposalFile] = {}
    for child, _parent, path in store.children_of(_class_names(store, cursor)):
        if path != cursor.path:
            out.setdefault(path, ProposalFile(path, 1.0)).focus.append(child)
    return list(out.values())


def sibling_files(store: Store, cursor: Cursor, modules: ModuleMap, max_files: int = 40) -> list[ProposalFile]:
    """Other files in the current file's folder, the ones sharing most identifiers first."""
    folder = posixpath.dirname(cursor.path)
    siblings = [p for p in modules.by_folder.get(folder, []) if p != cursor.path][:max_files]
    missing = [p for p in siblings if p not in modules.identifier_terms]
    for path, text in store.file_items(missing, "identifier_terms").items():
        modules.identifier_terms[path] = frozenset(term_set(text))
    query = cursor.query_term_set
    scored = [ProposalFile(p, jaccard(query, modules.identifier_terms.get(p, frozenset()))) for p in siblings]
    return sorted(scored, key=lambda p: -p.score)


def similar_name_files(store: Store, cursor: Cursor, modules: ModuleMap) -> list[ProposalFile]:
    """Files whose name matches the current one up to test affixes (``test_foo.py`` <-> ``foo.py``)."""
    stem = _normalized_stem(cursor.path)
    if not stem:
        return []
    folder = posixpath.dirname(cursor.path)
    found = [p for p in modules.by_stem.get(stem, []) if p != cursor.path]
    found.sort(key=lambda p: (posixpath.dirname(p) != folder, len(p)))
    return [ProposalFile(p, 1.0 / (1 + i)) for i, p in enumerate(found[:3])]


# -- context types: what of a file ---------------------------------------------------------


def _items_snippet(store: Store, pf: ProposalFile, source: str, context_type: str) -> list[Snippet]:
    text = store.items(pf.path, context_type)
    if not text:
        return []
    body = "\n".join(text.split("\n")[:_MAX_ITEMS])
    return [Snippet(pf.path, body, source, pf.score, kind=context_type)]


def _method_names(store: Store, pf: ProposalFile, source: str) -> list[Snippet]:
    lines = []
    for name, kind, start, _end, parent, signature, _cid in store.file_symbols(pf.path):
        if any(k in str(kind) for k in _OUTLINE_KINDS):
            head = (signature or name).split("\n")[0].strip()
            lines.append(("    " if parent else "") + head)
    if not lines:
        return []
    return [Snippet(pf.path, "\n".join(lines[:_MAX_ITEMS]), source, pf.score, kind="method_names")]


def _bodies(store: Store, cursor: Cursor, pf: ProposalFile, source: str, limit: int,
            modules: ModuleMap) -> list[Snippet]:
    rows = store.file_chunks(pf.path, "definition")
    if pf.focus:
        focus = set(pf.focus)
        rows = [r for r in rows if r.symbol in focus] or rows
    ranked = rank_by_jaccard(cursor.query_term_set, rows, modules.chunk_terms) if not pf.focus or len(rows) > limit else \
        [(r, 1.0) for r in rows]
    return [chunk_snippet(r, source, pf.score * (1 + s)) for r, s in ranked[:limit]]


def _lines(store: Store, cursor: Cursor, pf: ProposalFile, source: str, limit: int,
           modules: ModuleMap) -> list[Snippet]:
    query = cursor.query_term_set
    ranked = sorted(((r, jaccard(query, terms)) for r, terms in modules.windows(store, pf.path)), key=lambda p: -p[1])
    return [chunk_snippet(r, source, pf.score * (1 + s)) for r, s in ranked[:limit] if s > 0]


def render(store: Store, cursor: Cursor, pf: ProposalFile, source: str, context_type: str,
           modules: ModuleMap, limit: int = 2) -> list[Snippet]:
    """The ``context_type`` context of a proposed file, as snippets tagged with ``source``."""
    if context_type == "method_names_and_bodies":
        return _bodies(store, cursor, pf, source, limit, modules)
    if context_type == "method_names":
        return _method_names(store, pf, source)
    if context_type == "lines":
        return _lines(store, cursor, pf, source, limit, modules)
    if context_type in CONTEXT_TYPES:
        return _items_snippet(store, pf, source, context_type)
    raise ValueError(f"unknown context type {context_type!r}; choose from {', '.join(CONTEXT_TYPES)}")


#: Lines of an in-file snippet, and lines before the cursor it is matched against: a short
#: query finds the analogous point more precisely than the lexical sources' 10 lines.
#: Measurements: docs/BENCHMARKS.md, "In-file retrieval".
IN_FILE_WINDOW, IN_FILE_QUERY_LINES = 10, 5
#: The other side of a hole: the lines after the cursor, matched against the lines after each
#: point, add to the score at this weight (a line sandwiched like the cursor's is the likelier
#: analog; docs/BENCHMARKS.md, "In-file retrieval").
IN_FILE_SUFFIX_LINES, IN_FILE_SUFFIX_WEIGHT = 5, 0.5


@lru_cache(maxsize=1 << 16)
def _line_term_set(line: str) -> frozenset[str]:
    # A file's lines change one at a time while the user types: each is split into terms once.
    return frozenset(line_terms(line))


def window_jaccards(query: set[str] | frozenset[str], line_sets: Sequence[frozenset[str]], width: int) -> list[float]:
    """``out[e]`` = Jaccard of ``query`` with the union of ``line_sets[max(e - width, 0):e]``, for every ``e``.

    One pass with a count per term, as a sliding window: the terms of the line entering the
    window are counted in and those of the line leaving it out (its cost: docs/BENCHMARKS.md,
    "In-file retrieval"). Equal to a fresh union at each line, float for float: the same
    integers go into the same division.
    """
    n = len(line_sets)
    out = [0.0] * (n + 1)
    if not query or width <= 0:
        return out
    counts: dict[str, int] = {}
    get = counts.get
    size = len(query)
    union = inter = 0
    for e in range(1, n + 1):
        for term in line_sets[e - 1]:
            seen = get(term, 0)
            if not seen:
                union += 1
                if term in query:
                    inter += 1
            counts[term] = seen + 1
        if e > width:
            for term in line_sets[e - width - 1]:
                left = counts[term] - 1
                counts[term] = left
                if not left:
                    union -= 1
                    if term in query:
                        inter -= 1
        if inter:  # no shared term: 0, as jaccard()
            out[e] = inter / (size + union - inter)
    return out


def in_file_lines(cursor: Cursor, window: int, limit: int, max_lines: int = 2000,
                  query_lines: int | None = None, suffix_lines: int = 0, suffix_weight: float = 0.0,
                  match_lines: int | None = None) -> list[Snippet]:
    """Windows of the file's own lines around the cursor, most similar to the query first.

    Two sides, as RepoFusion's post lines and RepoCoder's in-file windows: the lines after
    the cursor, and the lines above it. A small model's window shows only the lines next
    to the cursor; a file often repeats, far above, the pattern the cursor is in (a second
    ``elif`` branch, another ``self.assertEqual``), and the line after that pattern is what
    a completion copies. So the ``match_lines`` (default: ``query_lines``, else ``window``)
    lines *ending* at a point are compared with the ``query_lines`` ending at the cursor
    (default: the cursor's lexical query), and the snippet is the ``window`` lines centred
    on that point: the match's last half, then what followed it. With ``suffix_lines``, the
    ``suffix_lines`` after the cursor line are also compared with those after the point,
    adding ``suffix_weight`` times their Jaccard (the fill-in-the-middle view: the analog
    has the cursor's neighbours on both sides).

    Every line is a point (:func:`window_jaccards` scores them all in one pass), so the
    snippet is centred on the analog's own last line, not the nearest fifth line; the best
    points are kept greedily, each more than half a window from those kept on its side, as
    fusion's dedupe would merge two closer ones (measured against points every fifth line:
    docs/BENCHMARKS.md, "In-file retrieval"). Snippets the prompt already shows are
    skipped here, or they would crowd the far ones out of the first ``limit``. Up to
    ``max_lines`` on each side are searched.
    """
    half = max(window // 2, 1)
    prefix_lines = cursor.prefix.split("\n")
    above = prefix_lines[:-1]                           # the cursor line is the query, never context
    after = cursor.suffix.split("\n")[1:max_lines + 1]  # the rest of the cursor line is the target
    skip = max(len(above) - max_lines, 0)
    query = cursor.query_term_set if query_lines is None else \
        set(line_terms("\n".join(prefix_lines[-query_lines:])))
    after_query = set(line_terms("\n".join(after[:suffix_lines]))) if suffix_lines and suffix_weight else set()
    candidates: list[tuple[float, int, int, int, list[str]]] = []
    # (line number of the side's first line, its lines): 1-based; the cursor is on cursor.line
    for first, lines in ((skip + 1, above[skip:]), (cursor.line + 1, after)):
        sets = [_line_term_set(line) for line in lines]
        scores = window_jaccards(query, sets, match_lines or query_lines or window)
        if after_query:  # the lines after point e are the window ending at n - e of the reversed file
            following = window_jaccards(after_query, sets[::-1], suffix_lines)[::-1]
            scores = [a + suffix_weight * b for a, b in zip(scores, following)]
        # Running counts, so a window's blank and already-shown lines are two subtractions.
        filled, shown = [0], [0]
        for text in map(str.strip, lines):
            filled.append(filled[-1] + (1 if text else 0))
            shown.append(shown[-1] + (1 if text and text in cursor.visible_lines else 0))
        n = len(lines)
        for end in range(1, n + 1):
            if scores[end] <= 0:
                continue
            start, stop = max(end - half, 0), min(end + half, n)
            nonblank = filled[stop] - filled[start]
            if nonblank and shown[stop] - shown[start] < VISIBLE_FRACTION * nonblank:
                candidates.append((scores[end], abs(first + start - cursor.line), first, end, lines))
    # Equally similar: the nearer first (code is most like the code around it).
    candidates.sort(key=lambda c: (-c[0], c[1]))
    kept: list[Snippet] = []
    ends: list[tuple[int, int]] = []
    for score, _, first, end, lines in candidates:
        if len(kept) == limit:
            break
        if any(side == first and abs(end - e) <= half for side, e in ends):
            continue  # one location: a neighbour of a better point
        ends.append((first, end))
        start, stop = max(end - half, 0), min(end + half, len(lines))
        kept.append(Snippet(cursor.path, "\n".join(lines[start:stop]), "in_file", score,
                            first + start, first + stop - 1, kind="lines"))
    return kept


def propose(store: Store, cursor: Cursor, source: str, modules: ModuleMap, *,
            context_type: str | None = None, max_files: int = 3, limit: int = 4) -> list[Snippet]:
    """Snippets of one RepoFusion source with one context type (default: DEFAULT_CONTEXT_TYPES)."""
    context_type = context_type or DEFAULT_CONTEXT_TYPES[source]
    if source == "in_file":
        if context_type == "lines":
            return in_file_lines(cursor, IN_FILE_WINDOW, limit, query_lines=IN_FILE_QUERY_LINES,
                                 suffix_lines=IN_FILE_SUFFIX_LINES, suffix_weight=IN_FILE_SUFFIX_WEIGHT)
        return render(store, cursor, ProposalFile(cursor.path, 1.0), source, context_type, modules, limit)
    if source == "import":
        files = import_files(store, cursor, modules)
    elif source == "parent_class":
        files = parent_class_files(store, cursor)
    elif source == "child_class":
        files = child_class_files(store, cursor)
    elif source == "sibling":
        files = sibling_files(store, cursor, modules)
    elif source == "similar_name":
        files = similar_name_files(store, cursor, modules)
    else:
        raise ValueError(f"unknown proposal source {source!r}; choose from {', '.join(PROPOSAL_SOURCES)}")
    out: list[Snippet] = []
    for pf in files[:max_files]:
        out.extend(render(store, cursor, pf, source, context_type, modules, limit=2))
    out.sort(key=lambda s: -s.score)
    return out[:limit]
