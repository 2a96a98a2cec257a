"""Held-out evaluation: loss on the middle tokens, greedy next-line exact match, early stopping
on the held-out loss, and whether training improved on the base model at all."""

from __future__ import annotations

from collections.abc import Iterator

from training.finetune.batches import TokenizedSample, collate
from training.finetune.config import FinetuneConfig, FinetuneError, TrainState
from training.finetune.model import trainable_state


def heldout_loss(model, samples: list[TokenizedSample], pad_id: int, batch_size: int = 4) -> float | None:
    """Mean loss per middle token over ``samples`` (None when there are none)."""
    import torch

    if not samples:
        return None
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = collate(samples[start:start + batch_size], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                ignore_index=-100, reduction="sum")
            total += float(loss)
            tokens += int((shift_labels != -100).sum())
    model.train()
    return total / max(tokens, 1)


def after_healed(text: str, healed: str) -> str | None:
    """What a user sees of ``text`` generated after a healed prompt: the text minus the taken-back
    ``healed`` text it must begin with (None when it does not: serving's constraint forbids that)."""
    return text[len(healed):] if text.startswith(healed) else None


def _first_line(text: str, stops: tuple[str, ...]) -> str:
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text.split("\n", 1)[0].strip()


class FirstLineDone:
    """A ``generate`` stopping criterion: the text generated after ``start`` holds a line break.

    Only the first line is compared, so decoding past it costs time and changes nothing: with
    up to 32 new tokens per sample that is most of an evaluation's generation on a CPU.
    """

    def __init__(self, tokenizer, start: int) -> None:
        self.tokenizer, self.start = tokenizer, start

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = ["\n" in self.tokenizer.decode(row[self.start:], skip_special_tokens=False) for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def next_line_exact_match(model, tokenizer, samples: list[TokenizedSample], stops: tuple[str, ...],
                          max_new_tokens: int = 32) -> float | None:
    """Share of samples whose greedy completion's first line equals the middle's first line."""
    import torch

    if not samples:
        return None
    device = next(model.parameters()).device
    end_ids = [tokenizer.convert_tokens_to_ids(s) for s in stops if s in tokenizer.get_vocab()]
    hits = 0
    model.eval()
    with torch.no_grad():
        for sample in samples:
            ids = torch.tensor([sample.input_ids[: sample.target_start]], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=end_ids or None,
                                 pad_token_id=tokenizer.pad_token_id or 0,
                                 stopping_criteria=[FirstLineDone(tokenizer, ids.shape[1])])
            text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
            shown = after_healed(text, sample.healed)
            hits += shown is not None and _first_line(shown, stops) == _first_line(sample.middle, ())
    model.train()
    return hits / len(samples)


def improvement(before: dict, after: dict) -> bool | None:
    """Whether the held-out loss after training is below the one before (None: not measured)."""
    b, a = before.get("heldout_loss"), after.get("heldout_loss")
    return None if b is None or a is None else a < b


def metrics_table(metrics: dict) -> Iterator[tuple[str, str, str, str]]:
    """Rows (metric, before, after, change) of the before/after comparison."""
    for key, label in (("heldout_loss", "held-out loss (middle tokens)"),
                       ("heldout_next_line_em", "held-out next-line exact match")):
        before, after = metrics.get("before", {}).get(key), metrics.get("after", {}).get(key)
        fmt = (lambda v: "-" if v is None else f"{v:.4f}") if key == "heldout_loss" else \
              (lambda v: "-" if v is None else f"{v:.1%}")
        change = "-" if before is None or after is None else (
            f"{after - before:+.4f}" if key == "heldout_loss" else f"{(after - before) * 100:+.1f} pt")
        yield label, fmt(before), fmt(after), change


def track_best(state: TrainState, result: dict, model, best: dict | None, config: FinetuneConfig,
               accelerator) -> dict | None:
    """Record an evaluation; keep the weights of the best held-out loss so far (returned), and
    flag a stop after ``config.patience`` evaluations without improvement."""
    import torch

    if accelerator.is_main_process:
        loss = result.get("heldout_loss")
        state.history[-1].update(result)
        if loss is not None and (state.best_loss is None or loss < state.best_loss - config.min_delta):
            state.best_loss, state.best_step, state.bad_evals = loss, state.step, 0
            best = trainable_state(model)
        else:
            state.bad_evals += 1
        state.stopped_early = bool(config.patience and state.bad_evals >= config.patience)
    # Every rank must agree on stopping, or the others would wait forever in the next all-reduce.
    flag = torch.tensor([1.0 if state.stopped_early else 0.0], device=accelerator.device)
    state.stopped_early = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
    return best


def refuse_untrained(improved: bool | None, zero_b: bool | None, state: TrainState, after: dict, out,
                     config: FinetuneConfig, accelerator, log) -> None:
    """Stop an adapter that does not beat its base from being published silently.

    Raises :class:`FinetuneError` on every rank (the main process decides) unless
    ``config.allow_no_improvement``, in which case the main process warns and the adapter is
    published with ``"improved": false`` in its metadata and card.
    """
    import torch

    untrained = accelerator.is_main_process and (improved is False or bool(zero_b))
    flag = torch.tensor([1.0 if untrained else 0.0], device=accelerator.device)
    if accelerator.reduce(flag, reduction="sum").item() == 0:
        return
    if not accelerator.is_main_process:
        if config.allow_no_improvement:
            return
        raise FinetuneError("training did not improve on the base model (see the main process)")
    before = (state.before or {}).get("heldout_loss")
    reasons = []
    if improved is False:
        reasons.append(f"held-out loss {before:.4f} before training, {after['heldout_loss']:.4f} after "
                       f"{state.step} steps (best at step {state.best_step})")
    if zero_b:
        reasons.append("every LoRA B matrix is zero (the adapter changes nothing)")
    what = "training did not improve on the base model: " + "; ".join(reasons)
    if config.allow_no_improvement:
        log(f"warning: {what}; publishing it anyway (--allow-no-improvement), marked \"improved\": false")
        return
    raise FinetuneError(f"{what}; nothing written to {out}. Train longer or with another --lr, or pass "
                        "--allow-no-improvement to publish it marked as not improved")
