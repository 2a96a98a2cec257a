"""Copying from the prompt while decoding: a cache model over the prompt's own text.

Code repeats itself: a call, an import or a whole line the user is typing often stands
verbatim in another file of the repository or earlier in the same file (Tu et al., "On
the localness of software", FSE 2014; Grave et al., "continuous cache", ICLR 2017). A
small model sees that text in its prompt but copies it only weakly, so the next-token
distribution is interpolated with a *copy distribution*:

    p(t) = (1 - w) * p_model(t) + w * p_copy(t)

``p_copy`` looks for the longest tail of the text before the cursor (plus what has been
generated so far) that also occurs elsewhere in the prompt, at least ``min_chars``
characters long, and spreads its mass over the tokens that continue those occurrences,
in proportion to the model's own probabilities for them (so the model still picks the
tokenization). Matching is on characters, not tokens: a line cut in the middle of a word
(``self.pr``) still finds ``self.protocol`` in context. With no match, decoding is the
model's alone. Continuations stop at special tokens, so the sentinels that wrap the
prompt's own copy of the prefix can never be proposed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Longest tail matched backwards (longer matches add no confidence here).
MAX_MATCH_CHARS = 256
#: Continuation looked at per occurrence: enough for the longest token.
CONTINUATION_CHARS = 64


@dataclass(frozen=True)
class CopySettings:
    """How strongly decoding copies from the prompt."""

    #: Interpolation weight ``w`` of the copy distribution once a match is found; 0 disables.
    weight: float = 0.0
    #: Shortest tail (characters) that counts as a match: shorter ones recur by chance.
    min_chars: int = 8

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"context copy weight must be within [0, 1], not {self.weight}")
        if self.min_chars < 1:
            raise ValueError(f"context copy min_chars must be at least 1, not {self.min_chars}")

    @property
    def enabled(self) -> bool:
        return self.weight > 0.0


def continuations(source: str, query: str, *, min_chars: int, stops: Iterable[str] = ()) -> tuple[int, list[str]]:
    """The longest tail of ``query`` (at least ``min_chars``) found in ``source``, and what follows it there.

    Returns ``(match length, continuations)``: every occurrence matching that longest tail
    gives the text after it, cut before the first of ``stops`` (special tokens) and at
    :data:`CONTINUATION_CHARS`; occurrences followed at once by a stop are no source.
    ``(0, [])`` when no tail of ``min_chars`` characters occurs elsewhere.
    """
    if len(query) < min_chars or not source:
        return 0, []
    seed = query[-min_chars:]
    stop_list = [s for s in stops if s]
    best, texts = 0, []
    start = source.find(seed)
    while start != -1:
        end = start + min_chars
        text = source[end : end + CONTINUATION_CHARS]
        for stop in stop_list:
            at = text.find(stop)
            if at != -1:
                text = text[:at]
        if text:  # the prompt's own copy of the prefix runs into a sentinel: not a source
            length = min_chars
            limit = min(MAX_MATCH_CHARS, end, len(query))
            while length < limit and source[end - length - 1] == query[-length - 1]:
                length += 1
            if length > best:
                best, texts = length, [text]
            elif length == best:
                texts.append(text)
        start = source.find(seed, start + 1)
    return best, texts


class TokenTexts:
    """Which vocabulary tokens spell a given text's beginning (built once per tokenizer)."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        #: token text -> token ids spelling exactly it (special and partial-UTF-8 tokens excluded).
        self.by_text: dict[str, list[int]] = {}
        for token_id, text in enumerate(texts):
            if text and "\ufffd" not in text:
                self.by_text.setdefault(text, []).append(token_id)
        self.longest = max((len(t) for t in self.by_text), default=0)

    def starting(self, text: str) -> list[int]:
        """Ids of the tokens whose text is a (non-empty) beginning of ``text``."""
        ids: list[int] = []
        for k in range(1, min(self.longest, len(text)) + 1):
            ids.extend(self.by_text.get(text[:k], ()))
        return ids


@dataclass(frozen=True)
class CopyProposal:
    """The tokens a copy from the prompt would write next."""

    token_ids: list[int]
    #: A copied line ends here (a continuation starts with a line break): whether to stop
    #: is then the model's decision, not the copy's.
    at_line_end: bool = False


def propose_copy(source: str, query: str, token_texts: TokenTexts, settings: CopySettings,
                 stops: Iterable[str] = ()) -> CopyProposal:
    """The tokens that continue the prompt's longest earlier occurrence of ``query``'s tail
    (none when there is no occurrence of at least ``settings.min_chars`` characters)."""
    _, texts = continuations(source, query, min_chars=settings.min_chars, stops=stops)
    ids: dict[int, None] = {}
    for text in texts:
        ids.update(dict.fromkeys(token_texts.starting(text)))
    return CopyProposal(list(ids), any(text.startswith(("\n", "\r")) for text in texts))


def mix_copy(logits, copy_ids: list[int], weight: float, keep_ids: Iterable[int] = ()):
    """Logits of ``(1 - weight) * p_model + weight * p_copy``, where ``p_copy`` is ``p_model``
    renormalised over ``copy_ids`` (unchanged when there are none).

    The tokens in ``keep_ids`` keep the model's probability. The backend passes end of text
    there where a copied line ends: copying decides what to write, the model still decides
    whether to stop after the line (else a copy runs on through the lines after the one
    wanted, to the token limit). Within a line, copying overrides a premature stop.
    """
    import torch

    if not copy_ids or weight <= 0.0:
        return logits
    probs = torch.softmax(logits.float(), dim=-1)
    index = torch.tensor(copy_ids, dtype=torch.long, device=probs.device)
    chosen = probs.index_select(0, index)
    total = chosen.sum()
    if total <= 0:
        chosen = torch.full_like(chosen, 1.0 / len(copy_ids))
    else:
        chosen = chosen / total
    mixed = probs * (1.0 - weight)
    kept = torch.tensor(sorted(set(keep_ids) - set(copy_ids)), dtype=torch.long, device=probs.device)
    kept_mass = 0.0
    if len(kept):
        mixed[kept] = probs[kept]
        kept_mass = float(probs[kept].sum())
    mixed.index_add_(0, index, chosen * (weight * (1.0 - kept_mass)))
    return torch.log(mixed.clamp_min(1e-30))
