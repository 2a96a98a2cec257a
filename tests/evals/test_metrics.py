"""Golden values of the scoring functions (worked by hand)."""

from __future__ import annotations

import math

import pytest

from evals.metrics import (
    edit_similarity,
    exact_match,
    identifier_match,
    identifiers,
    levenshtein,
    mean,
    ndcg_at_k,
    pass_at_k,
    recall_at_k,
)


def test_exact_match_ignores_surrounding_whitespace_only():
    assert exact_match("  return x\n", "return x") == 1.0
    assert exact_match("return  x", "return x") == 0.0


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("kitten", "sitting", 3), ("", "abc", 3), ("flaw", "lawn", 2), ("same", "same", 0)],
)
def test_levenshtein_golden(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_edit_similarity_golden():
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("abc", "") == 0.0


def test_identifiers_drop_keywords():
    assert identifiers("if x is not None: return foo(x)") == ["x", "foo", "x"]
    assert identifiers("function(x) if (x) TRUE else y", "r") == ["x", "x", "y"]


def test_identifier_match_golden():
    score = identifier_match("foo(bar, baz)", "foo(bar, qux)")
    assert score.exact_match == 0.0
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)
    assert identifier_match("a.b(c)", "a.b( c )").exact_match == 1.0
    assert identifier_match("1 + 2", "3").f1 == 1.0  # no identifiers on either side
    assert identifier_match("", "x").f1 == 0.0


def test_ndcg_at_k_golden():
    assert ndcg_at_k(["a", "b", "c"], {"b"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], {"a", "c"}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "a", "b"], {"a"}) == 1.0  # a duplicate does not count twice
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a"}, k=10) == 0.0
    assert ndcg_at_k(["a"], set()) == 0.0


def test_recall_at_k_golden():
    assert recall_at_k(["a", "b", "c"], {"c", "d"}, 2) == 0.0
    assert recall_at_k(["a", "b", "c"], {"c", "d"}, 3) == 0.5
    assert recall_at_k(["a"], [], 5) == 0.0


def test_pass_at_k_golden():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(0, 0, 1)


def test_mean_of_nothing_is_zero():
    assert mean([]) == 0.0
    assert mean([1.0, 0.0, 0.5]) == 0.5
