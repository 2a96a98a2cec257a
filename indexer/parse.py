"""Symbols of one source file, extracted with tree-sitter tag queries.

Each language has ``queries/<language>.scm`` (package data). Its capture names say what a
node is, following aider's repomap conventions plus our own:

- ``@definition.<kind>`` (the whole definition) with ``@name.definition.<kind>`` (its name);
- ``@name.reference.<kind>`` (a call, a type, an attribute used);
- ``@import`` (the statement) with ``@import.module``, ``@import.name``, ``@import.alias``
  (or ``@import.qualified``: ``a.b.C`` split into module ``a.b`` and name ``C``);
- ``@receiver``: the owner of a method defined outside its class (Go, C++ ``A::f``);
- ``@parent.child`` (a class name) with ``@parent.name`` (a class it extends / implements);
- ``@context.identifier`` / ``.type`` / ``.string`` / ``.field``: the RepoFusion context
  types identifiers, type identifiers, string literals and field declarations.

Both sections of a language's file are compiled into one query, run once per file
through one wrapper around the capture API (:func:`_matches`): each pattern's matches go
straight to what it feeds. Parsers are cached per thread and language (a tree-sitter
parser is not thread-safe), compiled queries per language and flags. Unknown languages give an empty :class:`ParsedFile`; syntax errors are tolerated
(tree-sitter recovers and marks ``has_errors``).
"""

from __future__ import annotations

import gc
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from indexer.languages import GRAMMARS, LANGUAGES

#: Definition kinds that enclose methods and fields (their name becomes ``parent``).
CONTAINER_KINDS = frozenset({
    "class", "interface", "struct", "trait", "enum", "impl", "module", "object", "namespace",
    "record",
})
_MAX_SIGNATURE_CHARS = 400
#: The tags queries, shipped as package data.
QUERIES_DIR = Path(__file__).with_name("queries")


@dataclass(slots=True)
class Definition:
    """A named definition; lines are 1-based and inclusive."""

    name: str
    kind: str            # function, method, class, interface, struct, enum, field, module, ...
    start_line: int
    end_line: int
    parent: str | None   # enclosing class-like definition, if any
    signature: str       # the header: text before the body, at most a few lines
    body: str            # full text of the definition


@dataclass(slots=True)
class Reference:
    """A use of a name: ``line`` 1-based, ``col`` 0-based in characters."""

    name: str
    line: int
    col: int
    kind: str = "call"   # call, type, attribute, ...


@dataclass(slots=True)
class Import:
    """One imported module (as written: dotted, relative, quoted path, ...)."""

    module: str
    names: list[str]     # imported names; [] for a whole-module import, ["*"] for a wildcard
    line: int
    alias: str | None = None


@dataclass(slots=True)
class ClassParent:
    """``class_name`` extends or implements ``parent_name`` (generic arguments removed)."""

    class_name: str
    parent_name: str
    line: int


@dataclass(slots=True)
class ParsedFile:
    """Everything the indexer keeps about one file's syntax."""

    language: str | None
    definitions: list[Definition] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    class_parents: list[ClassParent] = field(default_factory=list)
    #: RepoFusion context types, each a list of (text, 1-based line); identifiers and type
    #: identifiers are unique (first occurrence), strings and fields are in file order.
    identifiers: list[tuple[str, int]] = field(default_factory=list)
    type_identifiers: list[tuple[str, int]] = field(default_factory=list)
    string_literals: list[tuple[str, int]] = field(default_factory=list)
    field_declarations: list[tuple[str, int]] = field(default_factory=list)
    has_errors: bool = False
    #: This parse's tree, for reparsing the next version of the text incrementally.
    tree_state: ParseState | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class ParseState:
    """One parse of a text (its bytes and tree): pass it as ``previous`` to reparse an
    edited version incrementally (live buffers change a few bytes at a time)."""

    language: str
    source: bytes
    tree: object


def parse_source(text: str, language: str | None, *, references: bool = True,
                 context: bool = True, previous: ParseState | None = None, bodies: bool = True) -> ParsedFile:
    """Parse ``text`` written in ``language`` (one of ``LANGUAGES``) and extract its symbols.

    Definitions, imports and class parents are always extracted. ``references=False`` /
    ``context=False`` skip the references / the context items (identifiers, type
    identifiers, strings, fields) when the caller does not need them: each is a share of the
    extraction time. ``previous`` (the ``tree_state`` of an earlier parse of this file) makes
    tree-sitter reuse the unchanged parts of that tree: an edit costs a fraction of a parse.
    ``bodies=False`` leaves every ``Definition.body`` empty (the indexer cuts its chunks from
    the file's lines: decoding each definition's text, classes around their methods, is waste).
    """
    if language not in LANGUAGES or not text:
        return ParsedFile(language if language in LANGUAGES else None)
    source = text.encode("utf-8", "surrogatepass")
    plan = _plan(language, references, context)
    # A match list holds a few container objects per node matched, all acyclic and freed as
    # soon as the file is done: cyclic garbage collections set off by those allocations only
    # rescan the caller's heap (about 5% of the time here, half of it with a big live heap).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if previous is not None and previous.language == language:
            tree = _parser(language).parse(source, _edited_tree(previous, source))
        else:
            tree = _parser(language).parse(source)
        root = tree.root_node
        extractor = _Extractor(language, source, text.isascii(), bodies)
        extractor.run(root, plan)
    finally:
        if collecting:
            gc.enable()
    result = extractor.result
    result.has_errors = root.has_error
    result.tree_state = ParseState(language, source, tree)
    return result


def _edited_tree(previous: ParseState, new: bytes):
    """``previous.tree`` told about the one edit that turns its source into ``new``.

    The edit is the span between the common prefix and the common suffix of both texts
    (one contiguous change covers a keystroke, a paste or a replaced selection; several
    edits become one bigger span, which is still correct).
    """
    old = previous.source
    start = _common_prefix(old, new)
    tail = _common_suffix(old, new, min(len(old), len(new)) - start)
    old_end, new_end = len(old) - tail, len(new) - tail
    tree = previous.tree
    tree.edit(start, old_end, new_end, _point(old, start), _point(old, old_end), _point(new, new_end))
    return tree


_BLOCK = 4096


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix: big block compares (memcmp) first, then smaller ones."""
    n, i = min(len(a), len(b)), 0
    for block in (_BLOCK, 64, 1):
        while i + block <= n and a[i:i + block] == b[i:i + block]:
            i += block
    return i


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common suffix, at most ``limit`` bytes (it must not overlap the prefix)."""
    la, lb, j = len(a), len(b), 0
    for block in (_BLOCK, 64, 1):
        while j + block <= limit and a[la - j - block:la - j] == b[lb - j - block:lb - j]:
            j += block
    return j


def _point(source: bytes, offset: int) -> tuple[int, int]:
    """tree-sitter's (row, byte column) of a byte offset."""
    return source.count(b"\n", 0, offset), offset - (source.rfind(b"\n", 0, offset) + 1)


def supported(language: str | None) -> bool:
    """True when ``language`` has a grammar and a tags query."""
    return language in LANGUAGES


# --- tree-sitter plumbing ---------------------------------------------------------------

_local = threading.local()


def _parser(language: str):
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        from tree_sitter_language_pack import get_parser

        parser = parsers[language] = get_parser(GRAMMARS[language])
    return parser


#: In a .scm file, patterns after this line only tag single nodes (references, context).
SECTION_MARKER = "; == references and context =="

# What a match of one pattern feeds (the first item of its action).
_TAGS, _DEFINITION, _IDENTIFIER, _TYPE, _STRING, _FIELD, _REFERENCE = range(7)
_CONTEXT_ACTIONS = {"identifier": _IDENTIFIER, "type": _TYPE, "string": _STRING, "field": _FIELD}
_CAPTURE = re.compile(rb"@([\w.]+)")
#: A node tagged as two kinds of reference keeps the most specific one (lowest rank).
_REFERENCE_RANK = {"call": 0, "class": 1}


@dataclass(frozen=True, slots=True)
class _Plan:
    """One compiled query of a language (both sections), and per pattern what it feeds.

    ``actions[i]`` is ``(_DEFINITION, name capture, kind)`` for a tags pattern with one
    definition, ``(_TAGS, None, None)`` for another tags pattern (imports, parents), else
    ``(_IDENTIFIER | _TYPE | _STRING | _FIELD, capture, None)`` or
    ``(_REFERENCE, capture, reference kind)``; disabled patterns never match.
    """

    query: object
    actions: tuple[tuple[int, str | None, str | None], ...]


@lru_cache(maxsize=None)
def _plan(language: str, references: bool = True, context_items: bool = True) -> _Plan:
    """The query of ``language`` with only the patterns asked for enabled, compiled once.

    One query means one walk of the tree for everything (a query walk costs about a
    quarter of a parse, whatever it matches); a disabled pattern costs nothing. A
    references-and-context pattern has one ``@name.reference.*`` or ``@context.*`` capture
    (helpers such as ``@_self`` aside): its matches then go to one list without a lookup.
    """
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    tags, context = _query_sections(language)
    # The references-and-context section feeds flat lists: a definition there would be lost.
    if any(f"@{group}" in context for group in ("import", "definition.", "parent.", "receiver")):
        raise ValueError(f"{language}.scm: tags captures after {SECTION_MARKER!r}")
    text = tags + context if (references or context_items) else tags
    query = Query(get_language(GRAMMARS[language]), text)
    encoded, tags_end = text.encode("utf-8"), len(tags.encode("utf-8"))
    actions: list[tuple[int, str | None, str | None]] = []
    for index in range(query.pattern_count):
        start = query.start_byte_for_pattern(index)
        pattern = encoded[start:query.end_byte_for_pattern(index)]
        names = list(dict.fromkeys(m.decode() for m in _CAPTURE.findall(pattern)))
        if start < tags_end:
            defined = [n for n in names if n.startswith("name.definition.")]
            if "import" in names or "parent.child" in names or len(defined) != 1:
                actions.append((_TAGS, None, None))
            else:
                actions.append((_DEFINITION, defined[0], defined[0][len("name.definition."):]))
            continue
        captures = [c for c in names if c.startswith(("context.", "name.reference."))]
        if len(captures) != 1:
            raise ValueError(f"{language}.scm: pattern {pattern.decode()[:60]!r} needs exactly "
                             "one @name.reference.* or @context.* capture")
        capture = captures[0]
        if capture.startswith("context."):
            kind = capture[len("context."):]
            if kind not in _CONTEXT_ACTIONS:
                raise ValueError(f"{language}.scm: unknown context capture @{capture}")
            actions.append((_CONTEXT_ACTIONS[kind], capture, None))
            wanted = context_items
        else:
            actions.append((_REFERENCE, capture, capture[len("name.reference."):]))
            wanted = references
        if not wanted:
            query.disable_pattern(index)
    return _Plan(query, tuple(actions))


def _query_sections(language: str) -> tuple[str, str]:
    """Both sections of ``<language>.scm``, after those of a ``; inherits: <base>`` line."""
    text = (QUERIES_DIR / f"{language}.scm").read_text("utf-8")
    tags, _, context = text.partition(SECTION_MARKER)
    if text.startswith("; inherits: "):
        base = text.split("\n", 1)[0].split(":", 1)[1].strip()
        base_tags, base_context = _query_sections(base)
        tags, context = base_tags + tags, base_context + context
    return tags, context


def _matches(query, node) -> list:
    """The one wrapper around the capture API: (pattern index, {capture: [nodes]}) per match.

    Single-node patterns finish where their node is visited, so their matches come in
    document order (the walk is pre-order).
    """
    from tree_sitter import QueryCursor

    return QueryCursor(query).matches(node)


# --- extraction -----------------------------------------------------------------------

_QUOTES = "\"'`<>"


class _Extractor:
    def __init__(self, language: str, source: bytes, ascii_only: bool, bodies: bool = True) -> None:
        self.result = ParsedFile(language)
        self.bodies = bodies
        self.source = source
        self.ascii_only = ascii_only
        self._lines: list[bytes] | None = None
        self._defs: list[tuple[int, int, int, Definition]] = []   # (start, -end, order, def)
        self._imports: dict[tuple, Import] = {}

    def run(self, root, plan: _Plan) -> None:
        actions, source = plan.actions, self.source
        identifiers: dict[bytes, object] = {}       # text -> first node
        types: dict[bytes, object] = {}
        strings: list = []
        fields: list = []
        references: dict[tuple[int, int], tuple] = {}   # start point -> (node, kind, rank)
        # Hot loop (one pass per match, identifiers dominate): text sliced from the source
        # bytes (cheaper than node.text), decoded only for the unique names kept.
        for index, captures in _matches(plan.query, root):
            what, capture, kind = actions[index]
            if what == _IDENTIFIER:
                for node in captures[capture]:
                    identifiers.setdefault(source[node.start_byte:node.end_byte], node)
            elif what == _DEFINITION:
                self._add_definition(kind, captures[capture][0], captures)
            elif what == _TAGS:
                self._add_tags(captures)
            elif what == _TYPE:
                for node in captures[capture]:
                    types.setdefault(source[node.start_byte:node.end_byte], node)
            elif what == _STRING:
                strings += captures[capture]
            elif what == _FIELD:
                fields += captures[capture]
            else:
                # A call is also an attribute or identifier, and keeps the kind "call".
                rank = _REFERENCE_RANK.get(kind, len(_REFERENCE_RANK))
                for node in captures[capture]:
                    point = node.start_point
                    seen = references.get(point)
                    if seen is None or rank < seen[2]:
                        references[point] = (node, kind, rank)
        self._finish_definitions()
        result = self.result
        result.imports = _merge_imports(self._imports)
        result.identifiers = _first_lines(identifiers)
        result.type_identifiers = _first_lines(types)
        result.string_literals = self._in_file_order(strings)
        result.field_declarations = self._in_file_order(fields)
        if references:
            column = (lambda row, col: col) if self.ascii_only else self._column
            result.references = [
                Reference(source[node.start_byte:node.end_byte].decode("utf-8", "replace"),
                          row + 1, column(row, col), kind)
                for (row, col), (node, kind, _) in sorted(references.items())]

    def _in_file_order(self, nodes: list) -> list[tuple[str, int]]:
        """(text, 1-based line) of each node, by position (the same node only once)."""
        unique = {(node.start_byte, node.end_byte): node for node in nodes}
        source = self.source
        return [(source[start:end].decode("utf-8", "replace"), unique[start, end].start_point[0] + 1)
                for start, end in sorted(unique)]

    def _add_tags(self, captures: dict[str, list]) -> None:
        if "import" in captures:
            self._add_import(captures["import"][0], captures)
        elif "parent.child" in captures:
            self._add_parents(captures)
        else:
            for name, nodes in captures.items():
                if name.startswith("name.definition."):
                    self._add_definition(name[16:], nodes[0], captures)

    def _add_parents(self, captures: dict[str, list]) -> None:
        child = _text(captures["parent.child"][0])
        for parent in captures.get("parent.name", ()):
            self.result.class_parents.append(
                ClassParent(child, _strip_generics(_text(parent)), parent.start_point[0] + 1))

    def _add_definition(self, kind: str, name_node, captures: dict[str, list]) -> None:
        outer = captures.get("definition." + kind)
        if not outer:
            return
        node = outer[0]
        name = _text(name_node).lstrip(":")     # Ruby's attr_reader :name
        if not name:
            return
        receiver = captures.get("receiver")
        start, end = node.start_byte, node.end_byte
        # A node ending at column 0 (a #define's newline) ends on the line before.
        start_row = node.start_point[0]
        end_row, end_col = node.end_point
        end_line = max(start_row + 1, end_row + (1 if end_col else 0))
        definition = Definition(name, kind, start_row + 1, end_line,
                                _text(receiver[0]) if receiver else None,
                                self._signature(node),
                                self.source[start:end].decode("utf-8", "replace") if self.bodies else "")
        self._defs.append((start, -end, len(self._defs), definition))

    def _signature(self, node) -> str:
        """Text of ``node`` before its body (the header), at most a few hundred characters."""
        block = node.child_by_field_name("body")
        start = node.start_byte
        limit = min(node.end_byte, start + 4 * _MAX_SIGNATURE_CHARS)
        if block is not None and block.start_byte > start:
            end = min(block.start_byte, limit)
        else:
            end = self.source.find(b"\n", start, limit)      # no body: the first line
            end = limit if end < 0 else end
        header = self.source[start:end].decode("utf-8", "replace")
        return header.rstrip().rstrip("{").rstrip()[:_MAX_SIGNATURE_CHARS]

    def _finish_definitions(self) -> None:
        """Sort by position, set ``parent`` from nesting, turn functions in classes to methods."""
        self._defs.sort(key=lambda item: item[:3])
        stack: list[tuple[int, Definition]] = []      # (end byte, container definition)
        seen: set[tuple[int, int, str]] = set()
        out = self.result.definitions
        for start, neg_end, _, definition in self._defs:
            key = (start, -neg_end, definition.name)
            if key in seen:
                continue            # two patterns captured the same node
            seen.add(key)
            while stack and stack[-1][0] <= start:
                stack.pop()
            # ``parent`` is the innermost enclosing class-like definition; a function is a
            # method only when that class directly encloses it (not through another function).
            container = next((d for _, d in reversed(stack) if d.kind in CONTAINER_KINDS), None)
            if definition.parent is not None:
                pass                # given by the query (a Go receiver, a C++ Class::method)
            elif container is not None:
                definition.parent = container.name
                if definition.kind == "function" and stack[-1][1] is container:
                    definition.kind = "method"
            out.append(definition)
            stack.append((-neg_end, definition))

    def _add_import(self, statement, captures: dict[str, list]) -> None:
        modules = captures.get("import.module")
        module = _unquote(_text(modules[0])) if modules else ""
        names = [_unquote(_text(n)) for n in captures.get("import.name", ())]
        qualified = captures.get("import.qualified")
        if qualified:       # "a.b.C" -> module "a.b", names ["C"]
            module, _, name = _text(qualified[0]).rpartition(".")
            names.append(name)
        names = ["*" if name.endswith("*") else name for name in names]   # a::* / a.*
        alias_nodes = captures.get("import.alias")
        alias = _text(alias_nodes[0]) if alias_nodes else None
        if not module and not names:
            return
        key = (statement.start_byte, module, alias)
        existing = self._imports.get(key)
        if existing is None:
            self._imports[key] = Import(module, names, statement.start_point[0] + 1, alias)
        else:
            existing.names.extend(n for n in names if n not in existing.names)

    def _column(self, row: int, byte_col: int) -> int:
        if self.ascii_only or byte_col == 0:
            return byte_col
        if self._lines is None:
            self._lines = self.source.split(b"\n")
        return len(self._lines[row][:byte_col].decode("utf-8", "replace"))


def _first_lines(first: dict[bytes, object]) -> list[tuple[str, int]]:
    """(text, 1-based line) of each unique name at its first occurrence, in file order."""
    return [(text.decode("utf-8", "replace"), node.start_point[0] + 1)
            for text, node in sorted(first.items(), key=lambda item: item[1].start_byte)]


def _merge_imports(imports: dict[tuple, Import]) -> list[Import]:
    """Resolve overlapping patterns of one statement: a bare "whole module" import next to a
    more specific one of the same module (names, alias) is dropped, an unaliased copy of an
    aliased import is dropped, and a wildcard wins over a partial split of the same path."""
    specific = {key[:2] for key, imp in imports.items() if imp.names or imp.alias}
    wildcard = {key[0] for key, imp in imports.items() if imp.names == ["*"]}
    aliased = {(key[0], key[1], tuple(imp.names)) for key, imp in imports.items() if imp.alias}
    return [imp for key, imp in imports.items()
            if (imp.names or imp.alias or key[:2] not in specific)
            and (key[0] not in wildcard or imp.names == ["*"])
            and (imp.alias or (key[0], key[1], tuple(imp.names)) not in aliased)]


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _unquote(text: str) -> str:
    return text.strip().strip(_QUOTES)


def _strip_generics(text: str) -> str:
    """``Base<T>`` / ``Base[T]`` / ``Base(args)`` -> ``Base``."""
    for stop in "<[(":
        cut = text.find(stop)
        if cut > 0:
            text = text[:cut]
    return text.strip()
