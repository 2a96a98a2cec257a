"""Prompt-lookup speculative decoding: drafts copied from the prompt, verified in one pass.

Code repeats itself, and the prompt holds the repository context and the file around the
cursor: the tokens that followed the last occurrence of the sequence's latest n-gram are
a free guess of what comes next (Saxena, "Prompt lookup decoding", 2023). The backend
runs the pending token and the draft through the model in one forward pass, keeps the
draft's tokens while they equal the model's greedy choice, and takes the model's own
token at the first difference: greedy output is unchanged, but on CPU one forward pass
over a few tokens costs little more than one over a single token (decoding reads every
weight once either way), so each accepted draft token is a decoding step saved.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

#: Longest n-gram matched (tried first), and the shortest.
MAX_NGRAM, MIN_NGRAM = 3, 1


def draft_tokens(ids: Sequence[int], max_tokens: int, *, stop_ids: Container[int] = (),
                 max_ngram: int = MAX_NGRAM, min_ngram: int = MIN_NGRAM) -> list[int]:
    """Up to ``max_tokens`` tokens that followed the latest earlier occurrence of the longest
    tail n-gram of ``ids`` (``max_ngram`` down to ``min_ngram`` tokens); [] when none recurs.

    A continuation ends before the first of ``stop_ids`` (special tokens: the sentinels
    around the prompt's own copy of the text are never a draft); an occurrence whose
    continuation is empty is skipped for an earlier one.
    """
    if max_tokens <= 0:
        return []
    length = len(ids)
    for n in range(min(max_ngram, length - 1), min_ngram - 1, -1):
        tail = list(ids[length - n:])
        first = tail[0]
        # Latest occurrence first: the nearest repeat is the likeliest to continue alike.
        for start in range(length - n - 1, -1, -1):
            if ids[start] != first or list(ids[start:start + n]) != tail:
                continue
            draft = []
            for token in ids[start + n:start + n + max_tokens]:
                if token in stop_ids:
                    break
                draft.append(token)
            if draft:
                return draft
    return []


def accepted_length(draft: Sequence[int], choices: Sequence[int]) -> int:
    """How many draft tokens the model agrees with: ``choices[i]`` is its greedy token after
    the sequence extended by ``draft[:i]``; acceptance stops at the first difference."""
    accepted = 0
    while accepted < len(draft) and draft[accepted] == choices[accepted]:
        accepted += 1
    return accepted


@dataclass
class SpeculationStats:
    """Counters over a backend's lifetime (the benchmark reports the accepted-draft rate)."""

    #: Forward passes while decoding, with and without a draft.
    forwards: int = 0
    #: Draft tokens proposed and accepted.
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0
