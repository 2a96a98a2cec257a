"""Post-processing: small pure filters turning raw model text into a completion.

Each filter takes the text and the cursor's surroundings and returns new text; the
pipeline in :func:`postprocess` runs them in a fixed order. Golden cases live in
``tests/repocomplete/test_postprocess.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

ResolvedMode = Literal["line", "multiline"]

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}

#: Line endings after which a block body is expected (Python, C-family, Ruby/Lua, Racket, R).
_BLOCK_OPENER = re.compile(r"(:|\{|\(|\[|=>|->|\bdo|\bthen|\bbegin|\belse)\s*(#.*|//.*)?$")

#: A Python function header (the outermost one's indentation bounds what a middle may bridge to).
_FUNCTION = re.compile(r"(async\s+)?def\s")

# Languages in which indentation alone delimits blocks.
_INDENT_LANGUAGES = {"python", "yaml", "nim", "coffeescript"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _current_line(prefix: str) -> str:
    return prefix.rsplit("\n", 1)[-1]


def _last_nonblank_line(text: str) -> str:
    for line in reversed(text.split("\n")):
        if line.strip():
            return line
    return ""


def infer_mode(prefix: str, suffix: str, language: str | None = None) -> ResolvedMode:
    """``multiline`` where a block is expected, else ``line``.

    A block is expected on an empty line after a block opener (``def f():``, ``{``,
    ``do``), with nothing to the right of the cursor.
    """
    current = _current_line(prefix)
    rest_of_line = suffix.split("\n", 1)[0]
    if current.strip() or rest_of_line.strip():
        return "line"
    before = prefix[: len(prefix) - len(current)]
    previous = _last_nonblank_line(before)
    return "multiline" if previous and _BLOCK_OPENER.search(previous.rstrip()) else "line"


def cut_at_stops(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """``text`` cut before its earliest stop string, and whether one was found (what a backend
    does with a finished generation; :class:`repocomplete.backends.stopping.StopScanner` does
    it while streaming)."""
    cut = min((at for stop in stops if stop and (at := text.find(stop)) != -1), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """Cut ``text`` at the earliest stop string, and drop a stop string cut off at the end.

    Generation that ends on the token budget can stop inside a sentinel (``<|rc:``) with
    backends that do not emit whole special tokens; such a tail of three or more
    characters that begins a stop string is not code the user wants.
    """
    stops = [s for s in stop if s]
    text, _ = cut_at_stops(text, stops)
    for s in stops:
        for length in range(min(len(s) - 1, len(text)), 2, -1):
            if text.endswith(s[:length]):
                return text[: len(text) - length]
    return text


def limit_to_line(text: str, prefix: str) -> str:
    """Keep the rest of the current line; if that is empty, the next non-empty line."""
    first, sep, rest = text.partition("\n")
    if first.strip() or not sep:
        return first
    if _current_line(prefix).strip():
        return first  # the line was already complete: the model only ended it
    # Cursor on an empty line: the model may start with a newline; keep one real line.
    lead = sep
    while rest.startswith("\n"):
        lead, rest = lead + "\n", rest[1:]
    line = rest.split("\n", 1)[0]
    return lead + line if line.strip() else ""


def limit_to_scope(text: str, prefix: str, language: str | None = None, suffix: str = "") -> str:
    """Stop at the end of the current block, judged by indentation.

    The reference indentation is the cursor line's, or, on an empty line, that of the
    completion's first line. The completion ends before the first later line indented
    less, with one exception: when the code after the cursor sits deeper than that line
    (the middle must open the block the suffix lives in, e.g. ``else:``), the completion
    bridges to it and is then judged against the suffix's level, as long as the bridge stays
    inside the function the cursor is in (a line at its ``def``'s own level ends it: a real
    model writes ``def test_...():`` there; leaving a nested helper's body is fine). It also ends where it
    starts repeating the suffix's first line. In bracket languages a closing line at the
    enclosing level is kept only when it closes something the completion opened.
    """
    lines = text.split("\n")
    current = _current_line(prefix)
    first_text_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first_text_index is None:
        return text
    if first_text_index > 0:
        reference = _indent(lines[first_text_index])  # the model opened a new line itself
    elif current.strip():
        reference = _indent(current)
    else:
        reference = _indent(current + lines[0])  # the completion continues the cursor's whitespace
    after_cursor = suffix.split("\n", 1)[1] if "\n" in suffix else ""
    suffix_line = next((line for line in after_cursor.split("\n") if line.strip()), None)
    suffix_indent = _indent(suffix_line) if suffix_line is not None else None
    depth = _bracket_delta(lines[0])
    kept = [lines[0]]
    bridge_start = None
    function_indent = _outermost_function_indent(prefix, reference) if language in _INDENT_LANGUAGES else None
    for line in lines[1:]:
        if line.strip():
            ind = _indent(line)
            stripped = line.strip()
            if suffix_line is not None and stripped == suffix_line.strip():
                break  # the model is writing the suffix again
            closes_own_bracket = stripped[0] in _CLOSERS and depth > 0
            if ind < reference and not closes_own_bracket:
                leaves_function = function_indent is not None and ind <= function_indent
                if suffix_indent is None or ind >= suffix_indent or leaves_function:
                    if _closes_what_nothing_else_closes(stripped, prefix, suffix, language):
                        kept.append(line)
                    break
                bridge_start = len(kept) if bridge_start is None else bridge_start
                reference = suffix_indent if _BLOCK_OPENER.search(stripped) else ind
            elif language not in _INDENT_LANGUAGES and ind == reference and stripped[0] in _CLOSERS and depth <= 0:
                if _closes_what_nothing_else_closes(stripped, prefix, suffix, language):
                    kept.append(line)
                break  # closes the enclosing block, which the suffix already closes
            depth += _bracket_delta(line)
        kept.append(line)
    if (bridge_start is not None and language in _INDENT_LANGUAGES and suffix_indent is not None
            and not _leads_into(kept, suffix_indent)):
        kept = kept[:bridge_start]  # the dedent never opened the suffix's block: it left the scope
    return "\n".join(kept).rstrip("\n") if len(kept) < len(lines) else text


def _outermost_function_indent(prefix: str, reference: int) -> int | None:
    """The indentation of the outermost ``def`` enclosing a cursor whose block is indented
    ``reference``, following the prefix's chain of ever less indented lines up; None outside
    any function. (A middle may leave a nested helper for the function around it, not that.)"""
    limit, found = reference, None
    for line in reversed(prefix[-8000:].split("\n")):
        if not line.strip() or _indent(line) >= limit:
            continue
        limit = _indent(line)
        if _FUNCTION.match(line.strip()):
            found = limit
        if limit == 0:
            break
    return found


def _closes_what_nothing_else_closes(stripped: str, prefix: str, suffix: str, language: str | None) -> bool:
    """Whether a closing line at the enclosing level ends a block the prefix opened and nothing
    after the cursor closes (a function body written at the end of the file: R's final ``}``)."""
    if language in _INDENT_LANGUAGES or suffix.strip() or stripped[0] not in _CLOSERS:
        return False
    prefix_open = _open_brackets(prefix[-4000:])
    return bool(prefix_open) and prefix_open[-1] == _CLOSERS[stripped[0]]


def _leads_into(kept: list[str], suffix_indent: int) -> bool:
    """Whether the suffix's first line, indented ``suffix_indent``, may follow the completion's
    last line in an indentation language: it is as deep, or it opens a block or a bracket (a
    real model's middle that dedents to write test code below the function does neither)."""
    last = next((line for line in reversed(kept) if line.strip()), "")
    stripped = last.strip()
    return (_indent(last) >= suffix_indent or bool(_BLOCK_OPENER.search(stripped))
            or _bracket_delta(stripped) > 0 or stripped.endswith("\\"))


def _bracket_delta(line: str) -> int:
    delta = 0
    for ch in _strip_strings(line):
        if ch in _OPENERS:
            delta += 1
        elif ch in _CLOSERS:
            delta -= 1
    return delta


_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|`(?:\\.|[^`\\])*`")


def _strip_strings(text: str) -> str:
    return _STRING.sub('""', text)


def _open_brackets(text: str) -> list[str]:
    """Stack of brackets left open at the end of ``text`` (strings ignored)."""
    stack: list[str] = []
    for ch in _strip_strings(text):
        if ch in _OPENERS:
            stack.append(ch)
        elif ch in _CLOSERS and stack and stack[-1] == _CLOSERS[ch]:
            stack.pop()
    return stack


def balance_brackets(text: str, prefix: str, suffix: str) -> str:
    """Drop closing brackets the suffix already supplies, and cut at mismatched ones.

    Scanning the completion, a closer that matches a bracket the completion opened is
    fine. A closer of a bracket opened in the prefix is dropped, with what follows it on
    that line, when the rest of the cursor's line in the suffix already closes it; a closer
    that matches nothing ends the completion.
    """
    prefix_open = _open_brackets(prefix[-4000:])
    rest_of_line = suffix.split("\n", 1)[0]
    suffix_closers = [ch for ch in _strip_strings(rest_of_line) if ch in _CLOSERS]
    own: list[str] = []
    in_string: str | None = None
    for i, ch in enumerate(text):
        if in_string:
            if ch == in_string and text[i - 1] != "\\":
                in_string = None
            continue
        if ch in "\"'`":
            in_string = ch
        elif ch in _OPENERS:
            own.append(ch)
        elif ch in _CLOSERS:
            if own:
                if own[-1] != _CLOSERS[ch]:
                    return text[:i].rstrip()
                own.pop()
            elif prefix_open and prefix_open[-1] == _CLOSERS[ch]:
                if suffix_closers and suffix_closers[0] == ch:
                    return text[:i].rstrip(" ")
                prefix_open.pop()
            else:
                return text[:i].rstrip()
    return text


def drop_suffix_overlap(text: str, suffix: str) -> str:
    """Remove the end of ``text`` that repeats the start of ``suffix``.

    Models often regenerate what follows the cursor (``):`` or the next line).
    """
    if not text or not suffix:
        return text
    first_line = suffix.split("\n", 1)[0]
    rest_of_line = first_line.strip()
    stripped = text.rstrip()
    # Pure closers/punctuation are balance_brackets' business: "print(x)" before ")" is fine.
    if re.search(r"[^\s)\]};:,]", rest_of_line) and stripped.endswith(rest_of_line) and len(stripped) > len(rest_of_line):
        kept = stripped[: len(stripped) - len(rest_of_line)]
        # The separating whitespace stays unless the suffix brings its own ("return " before "x + y").
        return kept.rstrip() if first_line[:1].isspace() else kept
    # Whole lines: drop trailing completion lines equal to the suffix's first lines.
    text_lines = text.rstrip("\n").split("\n")
    suffix_lines = [line for line in suffix.lstrip("\n").split("\n")]
    for k in range(min(len(text_lines) - 1, len(suffix_lines)), 0, -1):
        tail = [line.rstrip() for line in text_lines[-k:]]
        head = [line.rstrip() for line in suffix_lines[:k]]
        if tail == head and any(line.strip() for line in tail):
            return "\n".join(text_lines[:-k])
    return text


def cut_repetition(text: str, max_repeats: int = 2) -> str:
    """Cut loops: a non-blank line (or pair of lines) repeated back to back, or a repeating tail."""
    lines = text.split("\n")
    for width in (1, 2, 3):
        for start in range(0, len(lines) - width * (max_repeats + 1) + 1):
            block = lines[start:start + width]
            if len("".join(block).strip()) < 4:
                continue  # short closers like "}" legitimately repeat
            repeats = 1
            pos = start + width
            while lines[pos:pos + width] == block:
                repeats += 1
                pos += width
            if repeats > max_repeats:
                return "\n".join(lines[:start + width * max_repeats])
    # Character-level loops at the end of a single long line ("a, a, a, a, ...").
    match = re.search(r"(.{2,40}?)\1{4,}$", text, flags=re.S)
    if match and re.search(r"\w", match.group(1)):
        return text[: match.start() + len(match.group(1))]
    return text


def drop_blank(text: str, suffix: str = "") -> str:
    """Nothing rather than whitespace; no trailing whitespace unless the suffix needs it.

    When code follows the cursor on the same line, the completion's trailing spaces or
    newline-plus-indentation are what separates it from that code, so they are kept.
    """
    if not text.strip():
        return ""
    if suffix.split("\n", 1)[0].strip():
        return text
    return text.rstrip()


def postprocess(
    text: str,
    *,
    prefix: str,
    suffix: str,
    mode: str = "auto",
    language: str | None = None,
    stop: Sequence[str] = (),
) -> str:
    """Run the filters in order and return the completion to show."""
    resolved: ResolvedMode = infer_mode(prefix, suffix, language) if mode == "auto" else mode  # type: ignore[assignment]
    text = cut_at_stop(text, stop)
    text = cut_repetition(text)
    if resolved == "line":
        text = limit_to_line(text, prefix)
    else:
        text = limit_to_scope(text, prefix, language, suffix)
    text = balance_brackets(text, prefix, suffix)
    text = drop_suffix_overlap(text, suffix)
    return drop_blank(text, suffix)
