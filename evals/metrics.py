"""Scoring functions shared by the suites: pure, deterministic, golden-tested.

- ``exact_match``: equality after stripping surrounding whitespace (CrossCodeEval).
- ``edit_similarity``: 1 - Levenshtein(a, b) / max(len(a), len(b)), in [0, 1].
- ``identifier_match``: identifiers (keywords excluded) of prediction vs target:
  exact match of the sequence and F1 over the multisets (CrossCodeEval's ID-EM / ID-F1).
- ``ndcg_at_k`` / ``recall_at_k``: binary-relevance retrieval metrics (CodeRAG-Bench).
- ``pass_at_k``: the unbiased estimator of Chen et al. (2021).
"""

from __future__ import annotations

import keyword
import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Words that are syntax, not identifiers, in the languages the suites score.
KEYWORDS: dict[str, frozenset[str]] = {
    "python": frozenset(keyword.kwlist) | frozenset(keyword.softkwlist),
    "r": frozenset(
        "if else repeat while function for next break TRUE FALSE NULL Inf NaN NA in".split()
    ),
    "racket": frozenset("define lambda let let* letrec if cond else and or begin when unless".split()),
}


def exact_match(prediction: str, target: str) -> float:
    """1.0 when both agree once surrounding whitespace is stripped, else 0.0."""
    return float(prediction.strip() == target.strip())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    """1 - normalised edit distance of the stripped strings; 1.0 for two empty strings."""
    a, b = prediction.strip(), target.strip()
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest


def identifiers(code: str, language: str = "python") -> list[str]:
    """Identifiers in ``code`` in order of appearance, keywords and string contents included
    only as the regex sees them (a cheap, language-agnostic approximation of a parse)."""
    reserved = KEYWORDS.get(language, KEYWORDS["python"])
    return [word for word in _IDENTIFIER.findall(code) if word not in reserved]


@dataclass(frozen=True)
class IdentifierScore:
    exact_match: float
    precision: float
    recall: float
    f1: float


def identifier_match(prediction: str, target: str, language: str = "python") -> IdentifierScore:
    """Identifier exact match and multiset precision/recall/F1 of ``prediction`` vs ``target``."""
    predicted, expected = identifiers(prediction, language), identifiers(target, language)
    em = float(predicted == expected)
    if not predicted and not expected:
        return IdentifierScore(em, 1.0, 1.0, 1.0)
    common = sum((Counter(predicted) & Counter(expected)).values())
    precision = common / len(predicted) if predicted else 0.0
    recall = common / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return IdentifierScore(em, precision, recall, f1)


def recall_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the relevant documents found in the first ``k`` ranked ones (0.0 if none relevant)."""
    gold = set(relevant)
    if not gold:
        return 0.0
    return len(gold & set(ranked[:k])) / len(gold)


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int = 10) -> float:
    """Normalised discounted cumulative gain with binary relevance; duplicates count once."""
    gold = set(relevant)
    if not gold:
        return 0.0
    seen: set[Hashable] = set()
    dcg = 0.0
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in gold and doc not in seen:
            dcg += 1.0 / math.log2(rank + 1)
        seen.add(doc)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(gold)) + 1))
    return dcg / ideal


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed: 1 - C(n-c, k) / C(n, k)."""
    if n <= 0 or k <= 0:
        raise ValueError("pass@k needs n >= 1 and k >= 1")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean, 0.0 for no values (an empty setting scores nothing, it does not crash)."""
    items = list(values)
    return sum(items) / len(items) if items else 0.0
