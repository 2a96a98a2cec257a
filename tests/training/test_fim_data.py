"""Span selection (indexer.fim_data): golden cases for the miner, invariants on real stdlib files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from indexer.fim_data import PATTERNS, SPAN_KINDS, FimSpan, SpanConfig, mine_patterns, random_span, select_spans

STDLIB = Path(random.__file__).parent

PY = '''def total(items, scale=1):
    """Sum the items."""
    if items and scale > 0:
        values = [x * scale for x in items if x]
        print("n={}".format(len(values)), f"s={scale}")
        return sum(values) + helper(1, b=2)
    return 0
'''


def _mined(text, language):
    return {(s.pattern, text[s.start:s.end]) for s in mine_patterns(text, language)}


def test_python_patterns_golden():
    mined = _mined(PY, "python")
    expected = {
        ("call_args", "len(values)"),
        ("call_args", "1, b=2"),
        ("condition", "items and scale > 0"),
        ("boolean_expr", "items and scale > 0"),
        ("comprehension", "[x * scale for x in items if x]"),
        ("return_expr", "sum(values) + helper(1, b=2)"),
        ("assignment_rhs", "[x * scale for x in items if x]"),
        ("string_format", '"n={}".format(len(values))'),
        ("string_format", 'f"s={scale}"'),
    }
    assert expected <= mined
    block = [m for p, m in mined if p == "block"]
    assert block and all("\n" in m for m in block)
    # Nested comparisons are not reported separately from their enclosing boolean expression.
    assert ("boolean_expr", "scale > 0") not in mined


def test_generic_table_covers_other_grammars():
    js = "function f(a, b) {\n  if (a && b > 2) {\n    return g(a, `x${b}`);\n  }\n  const h = (x) => x + 1;\n}\n"
    mined = _mined(js, "javascript")
    assert {("call_args", "a, `x${b}`"), ("condition", "(a && b > 2)"), ("boolean_expr", "a && b > 2"),
            ("return_expr", "g(a, `x${b}`)"), ("string_format", "`x${b}`"), ("lambda", "(x) => x + 1")} <= mined


def test_unknown_language_gets_line_spans_only():
    text = "alpha = 1\nbeta = alpha + 2\ngamma = beta * 3\n"
    spans = select_spans(text, None, seed=3, config=SpanConfig(samples_per_file=6))
    assert spans and {s.kind for s in spans} <= {"line_rest", "line", "block"}
    assert mine_patterns(text, None) == [] and mine_patterns(text, "no-such-language") == []


@pytest.mark.parametrize("name", ["json/decoder.py", "argparse.py", "email/_header_value_parser.py"])
def test_spans_on_stdlib_are_valid_and_deterministic(name):
    text = (STDLIB / name).read_text(encoding="utf-8")
    config = SpanConfig(samples_per_file=40, max_middle_chars=300, max_middle_lines=8)
    spans = select_spans(text, "python", seed=7, key=name, config=config)
    assert len(spans) == 40
    assert spans == select_spans(text, "python", seed=7, key=name, config=config)
    assert spans != select_spans(text, "python", seed=8, key=name, config=config)
    assert len({(s.start, s.end) for s in spans}) == len(spans)
    assert sum(s.kind == "curriculum" for s in spans) == 20
    for span in spans:
        prefix, middle, suffix = span.split(text)
        assert prefix + middle + suffix == text
        assert middle.strip() and len(middle) <= 300 and middle.count("\n") < 8
        assert span.kind in SPAN_KINDS + ("curriculum",)
        assert (span.pattern in PATTERNS) == (span.kind == "curriculum")
        if span.kind == "line_rest":
            # RepoFusion hole: code before the cursor on the same line, target = the rest of it.
            assert "\n" not in middle and suffix[:1] in ("", "\n", "\r")
            assert prefix.rsplit("\n", 1)[-1].strip()


def test_non_ascii_offsets_are_characters():
    text = 'name = "héllo wörld"\nresult = compute(name, "ünïcode")\n'
    for span in mine_patterns(text, "python"):
        assert span.split(text)[1] in ('"héllo wörld"', 'compute(name, "ünïcode")', 'name, "ünïcode"')


def test_each_random_kind_is_drawable():
    text = (STDLIB / "json/encoder.py").read_text(encoding="utf-8")
    rng = random.Random(0)
    for kind in SPAN_KINDS:
        span = random_span(text, kind, rng, "python")
        assert isinstance(span, FimSpan) and span.kind == kind
    with pytest.raises(ValueError):
        random_span(text, "nonsense", rng, "python")
