"""Samples as token ids, padded batches with the loss on the middle, and a resumable batch order."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class TokenizedSample:
    """One FIM sample: prompt ids, then the middle's ids and the end token."""

    input_ids: list[int]
    #: Index of the first target token (the middle); loss positions start here.
    target_start: int
    prompt: str
    middle: str
    kind: str
    #: The prompt's last token's text, moved into the target by token healing ("" when not healed):
    #: the target's text is ``healed + middle``.
    healed: str = ""


@dataclass(frozen=True)
class SampleHealing:
    """Serving's token-healing rule over one tokenizer, built once (the vocabulary index takes ~0.5 s)."""

    healer: object   # repocomplete.backends.token_healing.TokenHealer
    special: frozenset[int]

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "SampleHealing":
        from repocomplete.backends.token_healing import TokenHealer, special_token_ids, vocabulary_texts

        return cls(TokenHealer(vocabulary_texts(tokenizer)), special_token_ids(tokenizer))


def tokenize_samples(samples: list[dict], tokenizer, end_token: str, max_seq_len: int,
                     heal: bool | SampleHealing = False) -> list[TokenizedSample]:
    """Prompt + middle + end token as ids; an over-long prompt loses its leftmost tokens.

    ``heal``: train as the engine serves with token healing on (its default). Where serving would
    take the prompt's last token back (a prompt that ends at the cursor, inside what the tokenizer
    would make one token, e.g. a new line's indentation), that token's text moves into the target
    and the target is tokenized with it, so the model learns to write ``"        return"`` as it
    would tokenize it, not to continue from a token boundary serving no longer shows it. The same
    rule decides as at serving (:meth:`TokenHealer.split`): never after a special token (a PSM
    prompt ends in the middle sentinel), a line break, or half a character. Pass a
    :class:`SampleHealing` instead of True to reuse one rule across several calls.
    """
    end_id = tokenizer.convert_tokens_to_ids(end_token)
    healing = (heal if isinstance(heal, SampleHealing)
               else SampleHealing.for_tokenizer(tokenizer) if heal else None)
    healer, special = (healing.healer, healing.special) if healing else (None, None)
    out = []
    for sample in samples:
        prompt_ids = tokenizer(sample["prompt"], add_special_tokens=False)["input_ids"]
        prompt_ids, healed = healer.split(prompt_ids, special) if healer else (prompt_ids, "")
        target_ids = tokenizer(healed + sample["middle"], add_special_tokens=False)["input_ids"] + [end_id]
        target_ids = target_ids[: max_seq_len // 2]
        prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(target_ids) - max_seq_len):]
        out.append(TokenizedSample(prompt_ids + target_ids, len(prompt_ids), sample["prompt"],
                                   sample["middle"], sample["kind"], healed))
    return out


def collate(batch: list[TokenizedSample], pad_id: int, loss_on: str = "middle"):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 where no loss)."""
    import torch

    width = max(len(s.input_ids) for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, sample in enumerate(batch):
        n = len(sample.input_ids)
        ids[row, :n] = torch.tensor(sample.input_ids)
        mask[row, :n] = 1
        start = sample.target_start if loss_on == "middle" else 0
        labels[row, start:n] = ids[row, start:n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class BatchStream:
    """Seeded, resumable order of micro-batches: epoch ``e`` is a permutation seeded by ``seed + e``.

    Global micro-batch ``m`` covers stream positions ``[m*B*W, (m+1)*B*W)``; rank ``r`` takes
    its ``B`` of them. The position is a pure function of the step, so resuming needs no state.
    """

    def __init__(self, n_samples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.rank, self.world = n_samples, batch_size, seed, rank, world
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            order = list(range(self.n))
            random.Random(self.seed + epoch).shuffle(order)
            self._perms = {epoch: order}
        return self._perms[epoch]

    def micro_batch(self, index: int) -> list[int]:
        start = index * self.batch * self.world + self.rank * self.batch
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + self.batch)]
