"""Document sync: golden position conversions and thousands of random edits (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lsp.converters import UTF8, UTF16, UTF32, lsp_line_starts, lsp_offset, lsp_position
from lsp.documents import DocumentStore

# Pieces that stress the conversions: astral characters (surrogate pairs in UTF-16,
# 4 bytes in UTF-8), BMP multi-byte characters, and all three line breaks.
PIECES = ["a", "b", "_", " ", "\t", "é", "中", "😀", "𝄞", "\n", "\r\n", "\r", "x = 1"]
texts = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)


def reference_position(text: str, offset: int, encoding: str) -> tuple[int, int]:
    """Position of ``offset`` computed the slow, obvious way (independent of lsp.converters)."""
    line, line_start, i = 0, 0, 0
    while i < offset:
        if text[i] == "\r" and i + 1 < len(text) and text[i + 1] == "\n":
            i += 2
            line, line_start = line + 1, i
            continue
        if text[i] in "\r\n":
            line, line_start = line + 1, i + 1
        i += 1
    segment = text[line_start:offset]
    if encoding == UTF16:
        return line, len(segment.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == UTF8:
        return line, len(segment.encode("utf-8", "surrogatepass"))
    return line, len(segment)


def valid_offsets(text: str) -> list[int]:
    """Offsets a client can address: never between the \\r and \\n of a CRLF."""
    return [i for i in range(len(text) + 1) if not (0 < i < len(text) and text[i - 1] == "\r" and text[i] == "\n")]


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


@pytest.mark.parametrize(
    ("text", "position", "encoding", "offset"),
    [
        ("ab😀cd", (0, 4), UTF16, 3),  # the emoji is two UTF-16 units
        ("ab😀cd", (0, 3), UTF16, 2),  # inside the surrogate pair: rounds down to the emoji's start
        ("ab😀cd", (0, 6), UTF8, 3),  # ... and four UTF-8 bytes
        ("ab😀cd", (0, 3), UTF32, 3),
        ("é\r\nxy", (1, 1), UTF16, 4),  # CRLF is one line break
        ("é\r\nxy", (0, 99), UTF16, 1),  # past the line's end: the line's end, not into the CRLF
        ("a\rb\nc", (2, 0), UTF16, 4),  # lone CR and LF both break lines
        ("abc", (5, 0), UTF16, 3),  # past the last line: end of text
        ("中文", (0, 3), UTF8, 1),  # inside a 3-byte sequence: rounds down
    ],
)
def test_golden_offsets(text, position, encoding, offset):
    assert lsp_offset(text, pos(*position), encoding) == offset


@given(texts, st.sampled_from([UTF8, UTF16, UTF32]))
def test_position_and_offset_round_trip(text, encoding):
    for offset in valid_offsets(text):
        position = lsp_position(text, offset, encoding)
        assert (position.line, position.character) == reference_position(text, offset, encoding)
        assert lsp_offset(text, position, encoding) == offset


edit = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), texts, st.booleans())


@settings(max_examples=200, deadline=None)
@given(texts, st.lists(edit, min_size=1, max_size=25), st.sampled_from([UTF16, UTF8]))
def test_random_incremental_edits_keep_text_identical(initial, edits, encoding):
    """~2,500 random edits per run; after every one the server's text equals the client's."""
    store = DocumentStore(encoding)
    store.open("file:///t.py", initial, "python", 1)
    client = initial
    for version, (a, b, inserted, whole) in enumerate(edits, start=2):
        if whole:  # a full-text change now and then
            change = types.TextDocumentContentChangeWholeDocument(text=inserted)
            client = inserted
        else:
            offsets = valid_offsets(client)
            start, end = sorted((offsets[a % len(offsets)], offsets[b % len(offsets)]))
            change = types.TextDocumentContentChangePartial(
                range=types.Range(start=pos(*reference_position(client, start, encoding)), end=pos(*reference_position(client, end, encoding))),
                text=inserted,
            )
            client = client[:start] + inserted + client[end:]
        document = store.change("file:///t.py", [change], version)
        assert document is not None and document.text == client and document.version == version
        # line starts are shifted, not rescanned, after a range change: they must agree
        assert document.line_starts == lsp_line_starts(client)


def test_several_changes_in_one_notification_apply_in_order():
    store = DocumentStore()
    store.open("u", "hello\r\nworld", "python")
    store.change(
        "u",
        [
            types.TextDocumentContentChangePartial(range=types.Range(start=pos(1, 0), end=pos(1, 5)), text="😀"),
            types.TextDocumentContentChangePartial(range=types.Range(start=pos(1, 2), end=pos(1, 2)), text="!"),
        ],
    )
    assert store.get("u").text == "hello\r\n😀!"


def test_close_forgets_and_unknown_documents_are_ignored():
    store = DocumentStore()
    store.open("u", "x")
    assert store.close("u") is not None and store.get("u") is None
    assert store.change("u", [types.TextDocumentContentChangeWholeDocument(text="y")]) is None
