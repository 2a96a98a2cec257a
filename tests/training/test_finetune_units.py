"""Pure pieces of the trainer: loss masking, resumable batch order, LoRA targets, memory estimate."""

from __future__ import annotations

import pytest

from training.finetune import (BatchStream, FinetuneError, TokenizedSample, check_method, collate,
                               estimate_memory_bytes, metrics_table)


def _sample(ids, start):
    return TokenizedSample(input_ids=ids, target_start=start, prompt="", middle="", kind="line")


def test_loss_is_on_the_middle_only_by_default():
    batch = collate([_sample([5, 6, 7, 8], 2), _sample([9, 10, 11], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 10, 11, -100]]
    everything = collate([_sample([5, 6, 7, 8], 2)], pad_id=0, loss_on="all")
    assert everything["labels"].tolist() == [[5, 6, 7, 8]]


def test_batch_order_is_seeded_resumable_and_split_across_ranks():
    one = BatchStream(10, 3, seed=4)
    again = BatchStream(10, 3, seed=4)
    assert [one.micro_batch(i) for i in range(7)] == [again.micro_batch(i) for i in reversed(range(7))][::-1]
    # Each epoch is a permutation: the first 10 stream positions cover every sample once.
    flat = [i for m in range(4) for i in one.micro_batch(m)][:10]
    assert sorted(flat) == list(range(10))
    assert BatchStream(10, 3, seed=5).micro_batch(0) != one.micro_batch(0)
    ranks = [BatchStream(12, 3, seed=1, rank=r, world=2) for r in (0, 1)]
    single = BatchStream(12, 6, seed=1)
    for m in range(4):   # two ranks of batch 3 see exactly one process's batch of 6
        assert ranks[0].micro_batch(m) + ranks[1].micro_batch(m) == single.micro_batch(m)


def test_cuda_only_settings_are_refused_on_cpu():
    with pytest.raises(FinetuneError, match="qlora needs a CUDA GPU"):
        check_method("qlora", "auto", cuda=False)
    with pytest.raises(FinetuneError, match="bf16 needs a CUDA GPU"):
        check_method("lora", "bf16", cuda=False)
    with pytest.raises(FinetuneError, match="unknown --method"):
        check_method("prefix-tuning", "auto", cuda=True)
    check_method("qlora", "bf16", cuda=True)


def test_memory_estimate_orders_methods():
    n = 1_000_000_000
    full, lora, qlora = (estimate_memory_bytes(n, m, cuda=True) for m in ("full", "lora", "qlora"))
    assert full > lora > qlora and full == int(n * 16 * 1.2)


def test_metrics_table_rows():
    rows = list(metrics_table({"before": {"heldout_loss": 2.0, "heldout_next_line_em": 0.25},
                               "after": {"heldout_loss": 1.5, "heldout_next_line_em": 0.5}}))
    assert rows == [("held-out loss (middle tokens)", "2.0000", "1.5000", "-0.5000"),
                    ("held-out next-line exact match", "25.0%", "50.0%", "+25.0 pt")]
