"""Token healing: the prompt's last token is taken back and regenerated under a constraint.

A prompt that ends at the cursor (the suffix-first FIM layout, a raw prompt) ends wherever
the user's cursor is, not where the tokenizer would put a token boundary. The commonest
case is a new, indented line: the editor has typed the indentation, so the prompt ends in
a run of spaces. A byte-level BPE tokenizer (GPT-2's pre-tokenizer, Qwen's, StarCoder's)
splits ``"        return"`` into seven spaces and ``" return"``, so an eight-space token at
the end of a prompt is one the model has never seen followed by code, and it answers with
end-of-text: measured on held-out ``peft`` code with Qwen2.5-Coder-0.5B, 8 of 8 such
line holes came back empty, and each produced a line once the spaces were healed.

The fix (as in Microsoft's *guidance*, "token healing"): drop the prompt's last token,
and let the first generated tokens be only those consistent with its text, i.e. tokens
whose text starts with what is left of it, or is a non-empty beginning of it. Once the
generated text covers the dropped text, decoding is free again, and the dropped text is
removed from what the user sees. The model thus picks the tokenization it prefers
(``"       "`` + ``" return"``) across the cursor.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Container, Sequence

from repocomplete.backends.context_copy import TokenTexts


def vocabulary_texts(tokenizer) -> list[str | None]:
    """Each token's text (None for special tokens), for healing the prompt and copying from it."""
    special_ids = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return [None if i in special_ids else tokenizer.decode([i]) for i in range(len(tokenizer))]


def special_token_ids(tokenizer) -> frozenset[int]:
    """The tokenizer's special tokens (FIM sentinels, end-of-text): a prompt ending in one is not healed."""
    return frozenset(tokenizer.all_special_ids) | frozenset(
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special)


class TokenHealer:
    """Which tokens may continue a partly covered text, over one tokenizer's vocabulary.

    ``texts[i]`` is token ``i``'s decoded text, or None for special tokens (never allowed:
    end-of-text in particular cannot end a completion before the dropped text is back).
    Tokens whose text is empty or holds a replacement character (part of a multi-byte
    character) are left out.
    """

    def __init__(self, texts: Sequence[str | None], beginnings: TokenTexts | None = None) -> None:
        pairs = sorted((text, i) for i, text in enumerate(texts) if text and "\ufffd" not in text)
        self._sorted_texts = [text for text, _ in pairs]
        self._sorted_ids = [i for _, i in pairs]
        #: the same vocabulary's text -> ids index, shared with context copying where it runs
        self._beginnings = beginnings or TokenTexts(texts)
        self._texts = texts

    def text_of(self, token: int) -> str | None:
        """Token ``token``'s text (None for a special token or one out of range)."""
        return self._texts[token] if 0 <= token < len(self._texts) else None

    @functools.lru_cache(maxsize=256)  # noqa: B019 - the same indentation is healed again and again
    def allowed(self, remaining: str) -> tuple[int, ...]:
        """Token ids whose text starts with ``remaining`` or is a non-empty proper beginning of it."""
        if not remaining:
            return ()
        allowed = set(self._beginnings.starting(remaining))
        start = bisect.bisect_left(self._sorted_texts, remaining)
        for position in range(start, len(self._sorted_texts)):
            if not self._sorted_texts[position].startswith(remaining):
                break
            allowed.add(self._sorted_ids[position])
        return tuple(sorted(allowed))

    def split(self, ids: Sequence[int], special_ids: Container[int]) -> tuple[list[int], str]:
        """``ids`` without the last token when it can be healed, and that token's text ("" when
        nothing is healed: the prompt ends in a special token, such as a FIM middle sentinel,
        its text is not one the constraint can rebuild, or it holds a line break).

        A token with a line break is left alone: a line's start is a token boundary these
        tokenizers keep (a docstring's closing quotes and line break are one token, the next
        line's indentation the next), and healing it let the model re-decide the line break.
        On HumanEval single-line holes, whose prefix ends with a line break, the 0.5B then
        split that token into the quotes and a blank line, so 16 of 100 answers started with
        an empty line (3 passes lost).
        """
        if len(ids) < 2 or ids[-1] in special_ids:
            return list(ids), ""
        text = self.text_of(ids[-1])
        if not text or "\ufffd" in text or "\n" in text or not self.allowed(text):
            return list(ids), ""
        return list(ids[:-1]), text


def advance(remaining: str, token_text: str) -> str:
    """What is left of the healed text once ``token_text`` (an allowed token) is generated."""
    return "" if token_text.startswith(remaining) else remaining[len(token_text):]
