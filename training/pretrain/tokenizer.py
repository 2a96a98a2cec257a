"""Byte-level BPE trained on the corpus, with repocomplete's special tokens as single tokens.

Saved as a ``transformers`` ``PreTrainedTokenizerFast`` (eos ``<|rc:end|>``, pad ``<|rc:pad|>``)
so ``AutoTokenizer.from_pretrained`` loads it next to the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from repocomplete.fim import TEMPLATES

#: The "repocomplete" template, whose FIM / repository format the default model learns.
TEMPLATE = TEMPLATES["repocomplete"]
#: Its tokenizer's special tokens in id order (they get ids 0..6; the order is part of the model).
SPECIAL_TOKENS: tuple[str, ...] = TEMPLATE.tokenizer_tokens
EOS = TEMPLATE.end_tokens[0]
PAD = TEMPLATE.vocabulary[1]


def sample_texts(texts: Iterable[tuple[str, str]], budget_bytes: int, seed: int = 0) -> Iterator[str]:
    """A hash-chosen, order-independent sample of (key, text) pairs up to ``budget_bytes``."""
    ranked = sorted(texts, key=lambda kv: hashlib.sha1(f"{seed}:{kv[0]}".encode()).hexdigest())
    used = 0
    for _, text in ranked:
        if used >= budget_bytes:
            return
        used += len(text)
        yield text


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2):
    """Learn byte-level BPE merges; special tokens get the first ids (0..6)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits split one by one keep numbers compositional; byte-level keeps every input encodable.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS, PAD)],
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
