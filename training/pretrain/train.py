"""The training loop, top to bottom: data windows -> AdamW with warmup + cosine -> checkpoints.

Resuming is exact: a checkpoint holds the model, the optimizer, the step, the data position
(epoch and cursor into a seeded permutation of sample starts) and every RNG state, and is
written atomically (temp file + rename), so a run interrupted anywhere (Ctrl-C, SIGTERM,
``--max-minutes``, a crash after the last checkpoint) continues with the same losses it would
have had. ``best.pt`` keeps the weights with the lowest held-out loss for export.
"""

from __future__ import annotations

import json
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training import checkpoint
from training.schedule import warmup_cosine
from training.pretrain.config import PretrainConfig, PretrainError
from training.pretrain.model import build_model, count_parameters


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    best_val_loss: float = float("inf")
    best_step: int = -1
    #: Which weights ``best.pt`` holds: "raw" or "ema".
    best_weights: str = "raw"
    history: list[dict] = field(default_factory=list)


class Windows:
    """Training windows of ``block_size + 1`` tokens starting at sample starts, in a seeded order."""

    def __init__(self, bin_path: Path, starts_path: Path, block_size: int, seed: int):
        self.data = np.memmap(bin_path, dtype=np.uint16, mode="r")
        starts = np.load(starts_path)
        self.starts = starts[starts + block_size + 1 <= len(self.data)]
        self.block_size = block_size
        self.seed = seed

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(self.seed + epoch).permutation(len(self.starts))

    def batch(self, state: TrainState, size: int):
        """The next ``size`` windows at the state's data position; advances it."""
        import torch

        rows = []
        order = self.order(state.epoch)
        for _ in range(size):
            if state.cursor >= len(order):
                state.epoch, state.cursor = state.epoch + 1, 0
                order = self.order(state.epoch)
            s = int(self.starts[order[state.cursor]])
            rows.append(np.asarray(self.data[s:s + self.block_size + 1], dtype=np.int64))
            state.cursor += 1
        block = torch.from_numpy(np.stack(rows))
        return block[:, :-1], block[:, 1:]

    def fixed(self, count: int, size: int):
        """The same ``count`` batches every time (held-out loss)."""
        state = TrainState()
        return [self.batch(state, size) for _ in range(min(count, max(1, len(self.starts) // size)))]


class _Ema:
    """Exponential moving average of the model's floating-point tensors."""

    def __init__(self, model, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    def update(self, model) -> None:
        import torch

        with torch.no_grad():
            for k, v in model.state_dict().items():
                self.shadow[k].lerp_(v.float(), 1.0 - self.decay)

    def swapped(self, model):
        """Context manager: the model holds the averaged weights inside, its own weights after."""
        import contextlib

        @contextlib.contextmanager
        def swap():
            raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(self.shadow)
            try:
                yield
            finally:
                model.load_state_dict(raw)

        return swap()


def lr_at(step: int, cfg) -> float:
    """Linear warmup, then cosine decay to ``min_lr`` at ``max_steps`` (the schedule fine-tuning uses too)."""
    return warmup_cosine(step, peak=cfg.lr, floor=cfg.min_lr, warmup=cfg.warmup_steps, total=cfg.max_steps)


def _data_key(run_dir: Path) -> str | None:
    """The data stage's key (which config and format built ``run_dir/data``), if stamped."""
    stamp = run_dir / "data" / "stage.json"
    return json.loads(stamp.read_text()).get("key") if stamp.exists() else None


def _autocast(device: str, precision: str):
    import contextlib

    import torch

    if precision in ("bf16", "auto"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def middle_mask(x, y, middle_id: int, end_id: int):
    """True where the target ``y`` is a middle token: after ``<|rc:middle|>``, up to and
    including the end token that closes the sample (windows run across samples)."""
    import torch

    seq = torch.cat([x, y[:, -1:]], dim=1)
    index = torch.arange(seq.size(1)).expand_as(seq)
    last_middle = torch.where(seq == middle_id, index, -1).cummax(dim=1).values
    last_end = torch.where(seq == end_id, index, -1).cummax(dim=1).values
    # target y[t] = seq[t + 1] is a middle token when, up to seq[t], a middle sentinel came last
    return (last_middle > last_end)[:, :-1]


def _loss(model, x, y, weights=None):
    import torch.nn.functional as F

    logits = model(input_ids=x, use_cache=False).logits
    if weights is None:
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
    losses = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1), reduction="none")
    w = weights.reshape(-1)
    return (losses * w).sum() / w.sum()


def _accumulate(model, windows: Windows, state: TrainState, tc, device: str,
                middle_ids: tuple[int, int] | None = None) -> float:
    """Forward and backward over ``grad_accum`` micro-batches; returns the step's mean loss
    (weighted by ``tc.middle_loss_weight`` when ``middle_ids`` = (middle sentinel, end token))."""
    total = 0.0
    for _ in range(tc.grad_accum):
        x, y = windows.batch(state, tc.micro_batch)
        weights = None
        if middle_ids is not None and tc.middle_loss_weight != 1.0:
            weights = 1.0 + (tc.middle_loss_weight - 1.0) * middle_mask(x, y, *middle_ids).float()
            weights = weights.to(device)
        with _autocast(device, tc.precision):
            loss = _loss(model, x.to(device), y.to(device), weights) / tc.grad_accum
        loss.backward()
        total += loss.item()
    return total


def evaluate(model, batches, device: str, precision: str) -> float:
    import torch

    model.eval()
    losses = []
    with torch.no_grad(), _autocast(device, precision):
        for x, y in batches:
            losses.append(_loss(model, x.to(device), y.to(device)).item())
    model.train()
    return float(np.mean(losses)) if losses else float("nan")


def train(cfg: PretrainConfig, run_dir: Path, *, vocab_size: int, eos_token_id: int, pad_token_id: int,
          resume: bool = False, max_minutes: float | None = None, stop_after_steps: int | None = None,
          middle_token_id: int | None = None, log=print) -> TrainState:
    """Train (or continue) the model of ``cfg`` on ``run_dir/data``; checkpoints in ``run_dir/checkpoints``.

    A resumed run whose data was rebuilt since the checkpoint (a new data format or ``[data]``
    values) keeps the weights, optimizer and step, and starts the new samples from their
    beginning; its best held-out loss starts over too, as the held-out samples changed.
    """
    import torch

    tc = cfg.train
    torch.set_num_threads(tc.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"

    for split in ("train", "test"):
        if not (run_dir / f"data/{split}.bin").exists() or (run_dir / f"data/{split}.bin").stat().st_size == 0:
            raise PretrainError(f"the {split} split is empty: give the corpus more files or a larger test_percent")
    data_key = _data_key(run_dir)
    train_windows = Windows(run_dir / "data/train.bin", run_dir / "data/train_starts.npy", cfg.data.block_size, tc.seed)
    val_batches = Windows(run_dir / "data/test.bin", run_dir / "data/test_starts.npy", cfg.data.block_size,
                          tc.seed).fixed(tc.eval_batches, tc.micro_batch)

    model = build_model(cfg.model, vocab_size, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                        seed=tc.seed).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr, betas=(tc.beta1, tc.beta2), foreach=True,
    )
    ema = _Ema(model, tc.ema_decay) if tc.ema_decay > 0 else None
    state = TrainState()
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    if resume and last_path.exists():
        ckpt = checkpoint.load(last_path, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = TrainState(**ckpt["state"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.shadow = ckpt["ema"]
        checkpoint.restore_rng(ckpt["rng"])
        log(f"resumed from {last_path} at step {state.step} ({state.tokens_seen:,} tokens seen)")
        if ckpt.get("data_key") != data_key:
            state.epoch, state.cursor = 0, 0
            state.best_val_loss, state.best_step = float("inf"), -1
            state.history.append({"step": state.step, "data_changed": data_key})
            log(f"the data was rebuilt since that checkpoint ({ckpt.get('data_key')} -> {data_key}): "
                "continuing its weights on the new samples from their start; best held-out loss reset")
    elif last_path.exists():
        log(f"note: {last_path} exists; starting over (pass --resume to continue it)")
    log(f"model: {count_parameters(model):,} parameters; {len(train_windows.starts):,} training windows; device {device}")

    middle_ids = (middle_token_id, eos_token_id) if middle_token_id is not None else None
    step_model = model
    if tc.compile:
        try:
            step_model = torch.compile(model)
        except Exception as exc:  # compile is an optimisation: never a reason to fail
            log(f"torch.compile unavailable ({exc}); running eagerly")

    def save(path: Path = last_path) -> None:
        checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": asdict(state),
                      "ema": ema.shadow if ema is not None else None, "rng": checkpoint.rng_state(numpy=True),
                      "config": cfg.to_dict(), "data_key": data_key}, path)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    last_ckpt = time.monotonic()
    window_tokens, window_start = 0, time.monotonic()
    log_path = run_dir / "train_log.jsonl"
    tokens_per_step = tc.micro_batch * tc.grad_accum * cfg.data.block_size
    model.train()
    try:
        while state.step < tc.max_steps:
            if stop["signal"] is not None:
                log(f"signal {stop['signal']}: checkpointing at step {state.step}")
                break
            if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
                log(f"--max-minutes {max_minutes} reached at step {state.step}")
                break
            if stop_after_steps is not None and state.step >= stop_after_steps:
                break
            step_start = time.monotonic()
            lr = lr_at(state.step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            position = (state.epoch, state.cursor)
            try:
                total = _accumulate(step_model, train_windows, state, tc, device, middle_ids)
            except Exception as exc:  # torch.compile fails lazily, at the first call: fall back to eager
                if step_model is model:
                    raise
                log(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); running eagerly")
                step_model = model
                optimizer.zero_grad(set_to_none=True)
                state.epoch, state.cursor = position
                total = _accumulate(step_model, train_windows, state, tc, device, middle_ids)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip).item()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            state.step += 1
            state.tokens_seen += tokens_per_step
            state.train_seconds += time.monotonic() - step_start
            window_tokens += tokens_per_step
            record = {"step": state.step, "loss": round(total, 4), "lr": lr, "grad_norm": round(grad_norm, 3),
                      "tokens": state.tokens_seen}
            if state.step % tc.log_every == 0 or state.step == 1:
                record["tok_per_s"] = round(window_tokens / max(1e-9, time.monotonic() - window_start))
                window_tokens, window_start = 0, time.monotonic()
                log(json.dumps(record))
            if state.step % tc.eval_every == 0 or state.step == tc.max_steps:
                val = evaluate(step_model, val_batches, device, tc.precision)
                record["val_loss"] = round(val, 4)
                entry = {"step": state.step, "train_loss": round(total, 4), "val_loss": round(val, 4),
                         "tokens": state.tokens_seen, "train_seconds": round(state.train_seconds)}
                candidates = {"raw": (val, model.state_dict())}
                if ema is not None:
                    with ema.swapped(model):
                        ema_val = evaluate(step_model, val_batches, device, tc.precision)
                    candidates["ema"] = (ema_val, ema.shadow)
                    record["ema_val_loss"] = entry["ema_val_loss"] = round(ema_val, 4)
                state.history.append(entry)
                log(f"eval step {state.step}: " + ", ".join(f"{k} val_loss {v[0]:.4f}" for k, v in candidates.items())
                    + f" (best {state.best_val_loss:.4f})")
                kind, (best_val, weights) = min(candidates.items(), key=lambda kv: kv[1][0])
                if best_val < state.best_val_loss:
                    state.best_val_loss, state.best_step, state.best_weights = best_val, state.step, kind
                    checkpoint.save({"model": weights, "state": asdict(state), "config": cfg.to_dict()}, best_path)
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            due_time = time.monotonic() - last_ckpt > tc.checkpoint_minutes * 60
            due_step = tc.checkpoint_every and state.step % tc.checkpoint_every == 0
            if due_time or due_step:
                save()
                last_ckpt = time.monotonic()
        save()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return state
