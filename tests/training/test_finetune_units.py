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


def test_epochs_become_steps_that_show_every_sample_and_bad_epochs_are_refused():
    from training.finetune.config import FinetuneConfig, check_config, steps_for_epochs

    assert steps_for_epochs(1, 100, 4) == 25
    assert steps_for_epochs(1, 101, 4) == 26                       # the last, partial step still runs
    assert steps_for_epochs(0.5, 10, 4) == 2
    assert steps_for_epochs(2, 10, 2, grad_accum=2, world=2) == 3   # each step consumes 2 x 2 x 2 samples
    assert steps_for_epochs(0.01, 3, 4) == 1                       # never zero steps
    check_config(FinetuneConfig(epochs=1.5))
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(FinetuneError, match="--epochs must be a positive number"):
            check_config(FinetuneConfig(epochs=bad))


def test_cuda_only_settings_are_refused_on_cpu():
    with pytest.raises(FinetuneError, match="qlora needs a CUDA GPU"):
        check_method("qlora", "auto", cuda=False)
    with pytest.raises(FinetuneError, match="bf16 is not supported natively by this CPU"):
        check_method("lora", "bf16", cuda=False, bf16=False)
    check_method("lora", "bf16", cuda=False, bf16=True)          # a CPU with AMX / AVX512-BF16
    with pytest.raises(FinetuneError, match="unknown --method"):
        check_method("prefix-tuning", "auto", cuda=True)
    check_method("qlora", "bf16", cuda=True, bf16=True)


def test_memory_estimate_orders_methods():
    n = 1_000_000_000
    full, lora, qlora = (estimate_memory_bytes(n, m, cuda=True) for m in ("full", "lora", "qlora"))
    assert full > lora > qlora and full == int(n * 16 * 1.2)


def test_metrics_table_rows():
    rows = list(metrics_table({"before": {"heldout_loss": 2.0, "heldout_next_line_em": 0.25},
                               "after": {"heldout_loss": 1.5, "heldout_next_line_em": 0.5}}))
    assert rows == [("held-out loss (middle tokens)", "2.0000", "1.5000", "-0.5000"),
                    ("held-out next-line exact match", "25.0%", "50.0%", "+25.0 pt")]


def test_warmup_cosine_schedule_golden_values():
    from training.schedule import warmup_cosine

    values = [warmup_cosine(s, peak=1.0, floor=0.1, warmup=2, total=6) for s in range(8)]
    assert values == pytest.approx([0.5, 1.0, 1.0, 0.8681980515, 0.55, 0.2318019485, 0.1, 0.1])
    assert warmup_cosine(5, peak=3e-4, floor=0.0, warmup=0, total=10) == pytest.approx(1.5e-4)


def test_train_state_round_trips_and_reads_an_older_state_json():
    from training.finetune import TrainState

    state = TrainState(step=4, before={"heldout_loss": 2.0}, best_loss=1.5, best_step=4, history=[{"step": 4}])
    assert TrainState.from_json(state.to_json()) == state
    older = {**state.to_json(), "keep_checkpoints": 2}          # a key older checkpoints stored
    assert TrainState.from_json(older) == state


def test_next_line_evaluation_stops_generating_at_the_first_line_break(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer

    from training.finetune.evaluation import FirstLineDone

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tokenizer("def f():\n    return", add_special_tokens=False)["input_ids"]
    criterion = FirstLineDone(tokenizer, len(prompt))

    def rows(*generated: str):
        ids = [prompt + tokenizer(g, add_special_tokens=False)["input_ids"] for g in generated]
        x = tokenizer("x", add_special_tokens=False)["input_ids"][-1]
        width = max(map(len, ids))
        return torch.tensor([row + [x] * (width - len(row)) for row in ids])   # a batch: rows of one width

    # the prompt's own line breaks do not count; only what was generated after it
    assert criterion(rows(" x +"), None).tolist() == [False]
    assert criterion(rows(" x + 1\n"), None).tolist() == [True]
    assert criterion(rows(" 1\n\n", " 2 + 3"), None).tolist() == [True, False]   # per row of a batch


def test_lora_targets_every_projection_as_peft_resolves_all_linear(tiny_model_dir):
    from training.finetune import FinetuneConfig
    from training.finetune.model import load_model

    model, targets = load_model(str(tiny_model_dir), FinetuneConfig(lora_r=2), cuda=False, bf16=False)
    assert targets == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert not any("lm_head" in name for name, _ in model.named_parameters() if "lora_" in name)
    _, chosen = load_model(str(tiny_model_dir), FinetuneConfig(lora_r=2, target_modules=("q_proj",)), cuda=False,
                           bf16=False)
    assert chosen == ["q_proj"]


def test_on_a_cuda_gpu_the_same_command_loads_bf16_or_4bit_weights(tiny_model_dir, monkeypatch):
    """What `finetune` configures on a CUDA GPU, checked here without one (the run itself:
    test_finetune_cli.py::test_qlora_and_bf16_on_cuda, marked gpu): --method qlora loads the base
    through bitsandbytes in 4-bit NF4 (double quantization, bf16 compute) on the current device and
    prepares it for k-bit training; LoRA with bf16 loads the frozen weights in bf16; the LoRA
    matrices train in fp32 in both; precision auto means bf16 where the GPU computes it."""
    import peft
    import torch
    import transformers

    from training.finetune import FinetuneConfig
    from training.finetune.model import load_model
    from training.finetune.preflight import resolve_precision

    calls, prepared = [], []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def from_pretrained(path, **kwargs):
        calls.append(kwargs)
        return real(path)   # the tiny model in fp32 stands in for the quantized or bf16 one

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training",
                        lambda model, **kwargs: prepared.append(kwargs) or model)

    qlora, _ = load_model(str(tiny_model_dir), FinetuneConfig(method="qlora", lora_r=2), cuda=True, bf16=True)
    quant = calls[-1]["quantization_config"]
    assert (quant.load_in_4bit, quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant,
            quant.bnb_4bit_compute_dtype) == (True, "nf4", True, torch.bfloat16)
    assert calls[-1]["device_map"] == {"": 0} and prepared == [{"use_gradient_checkpointing": False}]
    lora, _ = load_model(str(tiny_model_dir), FinetuneConfig(method="lora", lora_r=2), cuda=True, bf16=True)
    assert calls[-1] == {"dtype": torch.bfloat16}
    for model in (qlora, lora):
        trained = [p for p in model.parameters() if p.requires_grad]
        assert trained and all(p.dtype == torch.float32 for p in trained)
    assert resolve_precision("auto", cuda=True, bf16=True) == "bf16"
    assert resolve_precision("auto", cuda=True, bf16=False) == "fp32"   # an older GPU: fp32 weights
