"""Fill-in-the-middle span selection: where to cut a file into prefix / middle / suffix.

Two families of spans, mixed per file:

* *Random* spans, in four kinds: ``line_rest`` (the cursor sits mid-line and the target is the
  rest of that line: RepoFusion's hole), ``line`` (a whole line after its indentation),
  ``block`` (several consecutive lines) and ``node`` (one whole named AST node).
* *Curriculum* spans (Sagtani et al.): hard-to-complete patterns mined with tree-sitter -
  call arguments, conditions, boolean expressions, multi-line blocks, comprehensions, return
  expressions, string formatting, assignment right-hand sides, lambdas. Python has a precise
  table; every other grammar goes through a generic table of common node and field names.

Everything here is pure and deterministic for a seed (``random.Random`` seeded with a string
is stable across runs and platforms). Offsets are character offsets into the text, so
``text[:start] + text[start:end] + text[end:] == text`` for every span.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Kinds of random spans.
SPAN_KINDS: tuple[str, ...] = ("line_rest", "line", "block", "node")

#: Curriculum patterns, in the order they are reported.
PATTERNS: tuple[str, ...] = (
    "call_args",
    "condition",
    "boolean_expr",
    "block",
    "comprehension",
    "return_expr",
    "string_format",
    "assignment_rhs",
    "lambda",
)


@dataclass(frozen=True)
class FimSpan:
    """One middle to cut out of a file: ``text[start:end]``.

    ``kind`` is one of :data:`SPAN_KINDS` or ``"curriculum"``; ``pattern`` names the
    curriculum pattern (one of :data:`PATTERNS`) and is ``None`` for random spans.
    """

    start: int
    end: int
    kind: str
    pattern: str | None = None

    def split(self, text: str) -> tuple[str, str, str]:
        """Return ``(prefix, middle, suffix)`` of ``text`` for this span."""
        return text[: self.start], text[self.start : self.end], text[self.end :]


@dataclass(frozen=True)
class SpanConfig:
    """How many spans to take per file and how large they may be."""

    samples_per_file: int = 8
    #: Share of a file's spans drawn from mined curriculum patterns (when the file has any).
    curriculum_share: float = 0.5
    max_middle_chars: int = 400
    max_middle_lines: int = 12
    min_middle_chars: int = 2
    #: Block spans take between 2 and this many lines.
    max_block_lines: int = 6


# --- tree-sitter access ---------------------------------------------------------------------


_local = threading.local()


def _parser(language: str):
    """A tree-sitter parser for ``language`` (one per thread: parsers are not thread-safe),
    or None when no grammar is available."""
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if language not in parsers:
        try:
            from tree_sitter_language_pack import get_parser

            from indexer.languages import GRAMMARS

            parsers[language] = get_parser(GRAMMARS.get(language, language))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - unknown language: fall back to line spans only
            parsers[language] = None
    return parsers[language]


class _Offsets:
    """Byte offset (tree-sitter) -> character offset (Python str), cheap for ASCII text."""

    def __init__(self, text: str, data: bytes) -> None:
        self._ascii = len(text) == len(data)
        self._data = data

    def char(self, byte_offset: int) -> int:
        if self._ascii:
            return byte_offset
        return len(self._data[:byte_offset].decode("utf-8", errors="ignore"))


def _walk(node) -> Iterator:
    """Pre-order walk over named nodes, iterative so deep files do not hit the recursion limit."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.named_children))


def _inner(node):
    """Byte range strictly inside a bracketed node (arguments without their parentheses)."""
    children = node.children
    if len(children) >= 2 and not children[0].is_named and not children[-1].is_named:
        start, end = children[0].end_byte, children[-1].start_byte
    else:
        start, end = node.start_byte, node.end_byte
    return (start, end) if end > start else None


def _whole(node):
    return node.start_byte, node.end_byte


def _field(name: str) -> Callable:
    def select(node):
        child = node.child_by_field_name(name)
        return _whole(child) if child is not None else None

    return select


def _field_inner(name: str) -> Callable:
    def select(node):
        child = node.child_by_field_name(name)
        return _inner(child) if child is not None else None

    return select


def _last_named(node):
    named = node.named_children
    return _whole(named[-1]) if named else None


def _multiline(node):
    return _whole(node) if node.end_point[0] > node.start_point[0] else None


def _python_string_format(node):
    """f-strings, ``"...".format(...)`` calls and ``"..." % args``."""
    if node.type == "string":
        if any(child.type == "interpolation" for child in node.children):
            return _whole(node)
        return None
    if node.type == "call":
        function = node.child_by_field_name("function")
        if function is not None and function.type == "attribute":
            obj, attr = function.child_by_field_name("object"), function.child_by_field_name("attribute")
            if obj is not None and obj.type == "string" and attr is not None and attr.text == b"format":
                return _whole(node)
        return None
    if node.type == "binary_operator":
        left, op = node.child_by_field_name("left"), node.child_by_field_name("operator")
        if left is not None and left.type == "string" and op is not None and op.type == "%":
            return _whole(node)
    return None


def _top_boolean(node):
    """A boolean/comparison expression that is not itself part of a larger one."""
    parent = node.parent
    if parent is not None and parent.type in _BOOLEAN_TYPES:
        return None
    return _whole(node)


_BOOLEAN_TYPES = frozenset({"boolean_operator", "comparison_operator", "not_operator"})

# pattern -> node type -> selector(node) -> (start_byte, end_byte) | None
_PatternTable = dict[str, dict[str, Callable]]

_PYTHON: _PatternTable = {
    "call_args": {"call": _field_inner("arguments")},
    "condition": {
        "if_statement": _field("condition"),
        "elif_clause": _field("condition"),
        "while_statement": _field("condition"),
        "conditional_expression": _whole,
    },
    "boolean_expr": {t: _top_boolean for t in _BOOLEAN_TYPES},
    "block": {"block": _multiline},
    "comprehension": {
        t: _whole
        for t in ("list_comprehension", "dictionary_comprehension", "set_comprehension", "generator_expression")
    },
    "return_expr": {"return_statement": _last_named},
    "string_format": {t: _python_string_format for t in ("string", "call", "binary_operator")},
    "assignment_rhs": {"assignment": _field("right"), "augmented_assignment": _field("right")},
    "lambda": {"lambda": _whole},
}

# Common node and field names across the tree-sitter grammars (JS/TS, Java, Go, Rust, C, ...).
_GENERIC: _PatternTable = {
    "call_args": {
        t: _field_inner("arguments")
        for t in ("call_expression", "call", "method_invocation", "invocation_expression", "function_call")
    },
    "condition": {
        t: _field("condition")
        for t in ("if_statement", "while_statement", "if_expression", "while_expression", "ternary_expression")
    },
    "boolean_expr": {"binary_expression": lambda n: _boolean_binary(n)},
    "block": {
        t: _multiline
        for t in ("block", "statement_block", "compound_statement", "body_statement", "brace_group")
    },
    "comprehension": {t: _whole for t in ("list_comprehension", "array_comprehension", "for_comprehension")},
    "return_expr": {t: _last_named for t in ("return_statement", "return_expression")},
    "string_format": {
        t: _whole
        for t in ("template_string", "interpolated_string_expression", "string_interpolation", "interpreted_string_literal")
    },
    "assignment_rhs": {
        "assignment_expression": _field("right"),
        "variable_declarator": _field("value"),
        "let_declaration": _field("value"),
        "short_var_declaration": _field("right"),
    },
    "lambda": {t: _whole for t in ("arrow_function", "lambda_expression", "closure_expression", "func_literal")},
}

_TABLES: dict[str, _PatternTable] = {"python": _PYTHON}


def _boolean_binary(node):
    op = node.child_by_field_name("operator")
    if op is None or op.type not in ("&&", "||", "and", "or", "==", "!=", "===", "!==", "<", ">", "<=", ">="):
        return None
    parent = node.parent
    if parent is not None and parent.type == "binary_expression":
        return None
    return _whole(node)


# --- public API ------------------------------------------------------------------------------


def mine_patterns(text: str, language: str | None, config: SpanConfig = SpanConfig()) -> list[FimSpan]:
    """Every curriculum span found in ``text``, in file order (empty without a grammar)."""
    parser = _parser(language) if language else None
    if parser is None:
        return []
    data = text.encode("utf-8")
    tree = parser.parse(data)
    table = _TABLES.get(language or "", _GENERIC)
    by_type: dict[str, list[tuple[str, Callable]]] = {}
    for pattern, selectors in table.items():
        for node_type, select in selectors.items():
            by_type.setdefault(node_type, []).append((pattern, select))
    offsets = _Offsets(text, data)
    spans: list[FimSpan] = []
    seen: set[tuple[int, int, str]] = set()
    for node in _walk(tree.root_node):
        for pattern, select in by_type.get(node.type, ()):
            found = select(node)
            if found is None:
                continue
            start, end = offsets.char(found[0]), offsets.char(found[1])
            if (start, end, pattern) in seen or not _acceptable(text, start, end, config):
                continue
            seen.add((start, end, pattern))
            spans.append(FimSpan(start, end, "curriculum", pattern))
    spans.sort(key=lambda s: (s.start, s.end, s.pattern or ""))
    return spans


class _RandomSpans:
    """Draws random spans of one text; lines and AST nodes are computed once, on first use."""

    def __init__(self, text: str, language: str | None, config: SpanConfig) -> None:
        self.text, self.language, self.config = text, language, config
        self.lines = _line_table(text)
        self.code_lines = [i for i, (start, end) in enumerate(self.lines) if text[start:end].strip()]
        self._nodes: list[tuple[int, int]] | None = None

    def nodes(self) -> list[tuple[int, int]]:
        """Character ranges of named AST nodes that are expressions or statements (have children)."""
        if self._nodes is None:
            parser = _parser(self.language) if self.language else None
            self._nodes = []
            if parser is not None:
                data = self.text.encode("utf-8")
                root = parser.parse(data).root_node
                offsets = _Offsets(self.text, data)
                self._nodes = [
                    (offsets.char(n.start_byte), offsets.char(n.end_byte))
                    for n in _walk(root)
                    if n is not root and n.named_child_count > 0
                ]
        return self._nodes

    def draw(self, kind: str, rng: random.Random) -> FimSpan | None:
        if not self.code_lines:
            return None
        for _ in range(8):  # a few tries: some picks are too long or too short
            span = self._pick(kind, rng)
            if span is not None and _acceptable(self.text, span.start, span.end, self.config):
                return span
        return None

    def _pick(self, kind: str, rng: random.Random) -> FimSpan | None:
        text, lines = self.text, self.lines
        index = rng.choice(self.code_lines)
        line_start, line_end = lines[index]
        body_start = _indent_end(text, line_start, line_end)
        if kind == "line_rest":
            # The cursor sits strictly inside the line's code: at least one character on each side.
            if line_end - body_start < 2:
                return None
            return FimSpan(rng.randint(body_start + 1, line_end - 1), line_end, "line_rest")
        if kind == "line":
            return FimSpan(body_start, line_end, "line")
        if kind == "block":
            last = min(len(lines) - 1, index + rng.randint(2, max(2, self.config.max_block_lines)) - 1)
            return FimSpan(body_start, lines[last][1], "block") if last > index else None
        if kind == "node":
            nodes = self.nodes()
            return FimSpan(*rng.choice(nodes), "node") if nodes else None
        raise ValueError(f"unknown span kind {kind!r}; choose from {', '.join(SPAN_KINDS)}")


def random_span(text: str, kind: str, rng: random.Random, language: str | None = None,
                config: SpanConfig = SpanConfig()) -> FimSpan | None:
    """One random span of ``kind`` (see :data:`SPAN_KINDS`), or None when the file has none."""
    return _RandomSpans(text, language, config).draw(kind, rng)


def select_spans(text: str, language: str | None, *, seed: int | str = 0, key: str = "",
                 config: SpanConfig = SpanConfig()) -> list[FimSpan]:
    """Pick ``config.samples_per_file`` distinct spans of ``text``, mixing random and curriculum.

    ``key`` (typically the file path) is mixed into the seed so that files draw independent
    but reproducible spans. Curriculum spans are balanced over patterns: a pattern is drawn
    uniformly among those present, then one of its occurrences.
    """
    rng = random.Random(f"{seed}:{key}")
    mined = mine_patterns(text, language, config)
    by_pattern: dict[str, list[FimSpan]] = {}
    for span in mined:
        by_pattern.setdefault(span.pattern or "", []).append(span)
    want = config.samples_per_file
    n_curriculum = round(want * config.curriculum_share) if by_pattern else 0
    chosen: list[FimSpan] = []
    taken: set[tuple[int, int]] = set()

    def add(span: FimSpan | None) -> None:
        if span is not None and (span.start, span.end) not in taken:
            taken.add((span.start, span.end))
            chosen.append(span)

    patterns = sorted(by_pattern)
    for _ in range(n_curriculum * 3):
        if len(chosen) >= n_curriculum:
            break
        add(rng.choice(by_pattern[rng.choice(patterns)]))
    randoms = _RandomSpans(text, language, config)
    for _ in range(want * 3):
        if len(chosen) >= want:
            break
        add(randoms.draw(rng.choice(SPAN_KINDS), rng))
    return chosen


# --- helpers ---------------------------------------------------------------------------------


def _line_table(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each line, ``end`` excluding the newline."""
    table, start = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        table.append((start, start + len(body)))
        start += len(line)
    return table


def _indent_end(text: str, start: int, end: int) -> int:
    position = start
    while position < end and text[position] in " \t":
        position += 1
    return position


def _acceptable(text: str, start: int, end: int, config: SpanConfig) -> bool:
    middle = text[start:end]
    if len(middle.strip()) < config.min_middle_chars or len(middle) > config.max_middle_chars:
        return False
    return middle.count("\n") < config.max_middle_lines
