"""Pure conversions between LSP values and ours: positions <-> offsets, completions -> items.

LSP positions are (line, character) where ``character`` counts UTF-16 code units by
default, UTF-8 bytes or code points when negotiated. Python strings index code points,
so every conversion goes through the line's text. Line breaks are ``\\r\\n``, ``\\n``
and ``\\r``, as the protocol says. Out-of-range positions are clamped (the spec asks a
character past the end of a line to mean the line's end); a character that falls inside
a surrogate pair or a multi-byte UTF-8 sequence rounds down to the character's start.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence

from lsprotocol import types

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"

#: An LSP line break (CR LF, CR or LF).
LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: The commands an item carries so that the editor tells us it was accepted.
ACCEPT_COMMAND = "repocomplete.accept"
DISMISS_COMMAND = "repocomplete.dismiss"


def lsp_line_starts(text: str) -> list[int]:
    """Offsets at which each line of ``text`` starts (the first is always 0)."""
    return [0, *(match.end() for match in LINE_BREAK.finditer(text))]


def _char_width(char: str, encoding: str) -> int:
    code = ord(char)
    if encoding == UTF16:
        return 2 if code > 0xFFFF else 1
    if encoding == UTF8:
        # lone surrogates (possible in JSON) count as 3 bytes, as WTF-8 encodes them
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code <= 0xFFFF else 4
    return 1


def lsp_column_to_index(line: str, character: int, encoding: str = UTF16) -> int:
    """Code-point index in ``line`` of an LSP ``character`` (clamped, rounded down)."""
    if character <= 0:
        return 0
    if encoding == UTF32 or line.isascii():
        return min(character, len(line))
    units = 0
    for index, char in enumerate(line):
        units += _char_width(char, encoding)
        if units > character:
            return index
    return len(line)


def lsp_index_to_column(line: str, index: int, encoding: str = UTF16) -> int:
    """LSP ``character`` of the code-point ``index`` in ``line``."""
    head = line[: max(index, 0)]
    if encoding == UTF32 or head.isascii():
        return len(head)
    return sum(_char_width(char, encoding) for char in head)


def _line_end(text: str, starts: Sequence[int], line: int) -> int:
    """Offset of the end of ``line``'s content (before its line break)."""
    if line + 1 < len(starts):
        end = starts[line + 1]
        if text[end - 1] == "\n":
            end -= 1
        if end > starts[line] and text[end - 1] == "\r":
            end -= 1
        return end
    return len(text)


def lsp_offset(
    text: str,
    position: types.Position,
    encoding: str = UTF16,
    starts: Sequence[int] | None = None,
) -> int:
    """Code-point offset in ``text`` of an LSP ``position`` (clamped to the text)."""
    starts = lsp_line_starts(text) if starts is None else starts
    if position.line < 0:
        return 0
    if position.line >= len(starts):
        return len(text)
    start = starts[position.line]
    end = _line_end(text, starts, position.line)
    return start + lsp_column_to_index(text[start:end], position.character, encoding)


def lsp_position(
    text: str,
    offset: int,
    encoding: str = UTF16,
    starts: Sequence[int] | None = None,
) -> types.Position:
    """LSP position of the code-point ``offset`` in ``text``."""
    starts = lsp_line_starts(text) if starts is None else starts
    offset = min(max(offset, 0), len(text))
    line = bisect_right(starts, offset) - 1
    start = starts[line]
    return types.Position(line=line, character=lsp_index_to_column(text[start:offset], offset - start, encoding))


def lsp_word_before(prefix: str) -> str:
    """The identifier-like word that ends ``prefix`` (what completion clients filter by)."""
    match = re.search(r"[\w$]+$", prefix[-200:])
    return match.group(0) if match else ""


def _accept_command(payload: dict) -> types.Command:
    return types.Command(title="Accept completion", command=ACCEPT_COMMAND, arguments=[payload])


def lsp_inline_completion_list(
    text: str, position: types.Position, payload: dict
) -> types.InlineCompletionList:
    """One inline item inserting ``text`` at ``position``; accepting it runs the accept command."""
    if not text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=text,
        range=types.Range(start=position, end=position),
        command=_accept_command(payload),
    )
    return types.InlineCompletionList(items=[item])


def lsp_completion_list(
    text: str, prefix: str, position: types.Position, encoding: str, payload: dict
) -> types.CompletionList:
    """The fallback for clients without inline completion: one item carrying the completion.

    Clients filter items by the word before the cursor, so the item replaces that word
    with itself plus the completion; its label is the first line of the result.
    """
    if not text:
        return types.CompletionList(is_incomplete=True, items=[])
    word = lsp_word_before(prefix)
    start = types.Position(
        line=position.line, character=position.character - lsp_index_to_column(word, len(word), encoding)
    )
    new_text = word + text
    first_line = new_text.splitlines()[0] if new_text.strip() else new_text
    label = first_line.strip() or text.strip() or "⏎"
    if len(label) > 80:
        label = label[:79] + "…"
    item = types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail="repocomplete",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{text}\n```"),
        filter_text=word + text,
        sort_text="0",
        preselect=True,
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=new_text),
        insert_text_format=types.InsertTextFormat.PlainText,
        command=_accept_command(payload),
    )
    # incomplete: the next keystroke asks again, which the cache answers cheaply
    return types.CompletionList(is_incomplete=True, items=[item])
