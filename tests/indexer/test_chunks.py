"""Golden tests of chunking and identifier-aware terms."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chunks import (
    definition_chunks,
    identifier_terms,
    line_terms,
    search_terms,
    search_text,
    token_text,
    windows,
)


@pytest.mark.parametrize(("word", "terms"), [
    ("parseHTTPResponse_code", ("parse", "http", "response", "code", "parsehttpresponsecode")),
    ("get_value", ("get", "value", "getvalue")),
    ("HTTPServer", ("http", "server", "httpserver")),
    ("utf8Decode", ("utf8", "decode", "utf8decode")),
    ("__init__", ("init",)),
    ("x", ()),
    ("ABC", ("abc",)),
])
def test_identifier_terms(word, terms):
    assert identifier_terms(word) == terms


def test_token_text_splits_every_identifier_and_drops_punctuation():
    assert token_text("self.maxLen = read_all(buf)") == "self max len maxlen read all readall buf"
    assert line_terms("a + b") == []


def test_search_text_is_what_fts_indexes_and_queries_use_the_same_terms():
    text = "def parseHTTPResponse_code(rawBytes):\n    return utf8Decode(x)"
    assert search_text(text) == "def parse http response_code(raw bytes):\n    return utf8 decode(x)"
    assert search_terms(text) == ["def", "parse", "http", "response", "code", "raw", "bytes", "return", "utf8", "decode"]


def _windows(n: int, size: int = 10, stride: int = 5):
    lines = [f"line_{i}" for i in range(1, n + 1)]
    return windows(lines, search_text("\n".join(lines)).split("\n"), size, stride)


def test_windows_slide_and_cover_the_end():
    spans = [(c.start_line, c.end_line) for c in _windows(23)]
    assert spans == [(1, 10), (6, 15), (11, 20), (14, 23)]
    assert [(c.start_line, c.end_line) for c in _windows(4)] == [(1, 4)]
    assert _windows(0) == []


def test_windows_skip_blank_text():
    assert windows(["", "  ", ""], ["", "", ""], 10, 5) == []


@dataclass
class Def:
    name: str
    kind: str
    start_line: int
    end_line: int
    parent: str | None = None


def test_long_class_is_summarised_by_member_signatures():
    lines = ["class Big(Base):", '    """Doc."""'] + [
        line for i in range(30) for line in (f"    def m{i}(self):", f"        return {i}")]
    defs = [Def("Big", "class", 1, len(lines))] + [
        Def(f"m{i}", "method", 3 + 2 * i, 4 + 2 * i, "Big") for i in range(30)]
    chunks = definition_chunks(lines, defs, max_lines=12)
    big = next(c for c in chunks if c.symbol == "Big")
    body = big.body.split("\n")
    assert body[:3] == ["class Big(Base):", '    """Doc."""', "    def m0(self):"]
    assert len(body) == 12 and all("return" not in line for line in body)
    m5 = next(c for c in chunks if c.symbol == "m5")
    assert m5.body == "    def m5(self):\n        return 5" and (m5.start_line, m5.end_line) == (13, 14)


def test_file_terms_are_the_distinct_search_terms_of_a_file():
    from indexer.chunks import file_terms, search_text

    searched = search_text('def parseHTTPResponse_code(x, é_a):\n    return "a-b" + héllo2 # parse')
    assert file_terms(searched) == {"def", "parse", "http", "response", "code", "return", "héllo2"}
    assert file_terms(searched) == {t for t in search_terms(searched) if len(t) > 1}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ_9 \n\t(.)İßẞǅ\u00e9HTTPResponsexY"), max_size=400))
def test_search_text_is_line_local_so_window_terms_equal_their_bodys(text):
    """Windows take their terms from the whole file's search text, cut into lines; deleting a
    chunk from the contentless FTS table recomputes search_text(body). Both must agree."""
    lines = text.split("\n")
    terms = search_text(text).split("\n")
    assert len(terms) == len(lines)
    for chunk in windows(lines, terms, 3, 2):
        assert chunk.tokens == search_text(chunk.body)
