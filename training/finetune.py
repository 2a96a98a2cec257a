"""Fine-tune a code model on one repository: LoRA, QLoRA or full, resumable, DDP-ready.

Read top to bottom: :func:`finetune` checks everything that can fail cheaply (method vs.
device, out dir, supported files, memory) before writing anything, builds the dataset with
:mod:`training.data` into a work dir beside ``--out``, loads the model, measures held-out
loss and next-line exact match, trains (gradient accumulation, bf16 on GPU, checkpoints every
N steps, early stopping on held-out loss), measures again and writes the adapter atomically
(temp dir, then ``os.replace``) with its metadata. ``--resume`` restores model, optimizer,
scheduler, RNG states and the data position from the last checkpoint, so an interrupted run
ends exactly where an uninterrupted one would.

Several processes (``accelerate launch`` / ``torchrun``) run data-parallel through
``accelerate``: rank 0 builds the data and writes files, each rank draws its own slice of
every global batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from repocomplete.errors import RepocompleteError
from training import adapter_card, checkpoint, publish
from training.data import DataConfig, build_dataset, load_manifest, read_samples

METHODS = ("lora", "qlora", "full")
ADAPTER_METADATA = "repocomplete-adapter.json"
METRICS_FILE = "metrics.json"

#: LoRA target modules per architecture (``config.model_type``): attention and MLP projections.
TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "starcoder2": ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"),
    "gpt_bigcode": ("c_attn", "c_proj", "c_fc"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "falcon": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "codegen": ("qkv_proj", "out_proj", "fc_in", "fc_out"),
}

#: Bytes of memory per parameter while training, by method (weights + grads + AdamW states).
_BYTES_PER_PARAM = {"full": 16.0, "lora": 4.0, "qlora": 0.75}
_BYTES_PER_PARAM_GPU_LORA = 2.0   # bf16 frozen weights


class FinetuneError(RepocompleteError):
    """A fine-tuning run that cannot start or continue (method, device, memory, out dir)."""

    error_type = "finetune_error"


@dataclass
class FinetuneConfig:
    """Hyper-parameters of one run; stored in the adapter's metadata."""

    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: None = chosen per architecture (:data:`TARGET_MODULES`, else every linear layer).
    target_modules: tuple[str, ...] | None = None
    #: None = 2e-4 for LoRA/QLoRA, 5e-5 for full fine-tuning.
    learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 10
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 200
    max_seq_len: int = 1024
    #: "middle": loss on the middle span (and end token) only; "all": on every token.
    loss_on: str = "middle"
    #: "auto" = bf16 on CUDA, fp32 on CPU; "bf16" needs CUDA.
    precision: str = "auto"
    eval_every: int = 50
    save_every: int = 50
    keep_checkpoints: int = 2
    #: Early stopping: stop after this many evaluations without improvement (0 = never).
    patience: int = 3
    min_delta: float = 0.0
    eval_samples: int = 64
    em_samples: int = 32
    max_new_tokens: int = 32
    #: Skip the before/after evaluation (benchmarks).
    evaluate: bool = True
    seed: int = 0
    #: Publish an adapter that does not beat the base on held-out loss (marked in its metadata).
    allow_no_improvement: bool = False
    #: Hidden test hook: each rank writes a digest of its parameters here at the end.
    param_digest_dir: str | None = None

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (5e-5 if self.method == "full" else 2e-4)


@dataclass
class FinetuneResult:
    """What a run produced."""

    out_dir: str
    steps: int
    stopped_early: bool
    metrics: dict = field(default_factory=dict)
    data_manifest: dict = field(default_factory=dict)
    #: False on the other ranks of a multi-process run: only the main process reports.
    is_main: bool = True
    #: Whether the published weights beat the base on held-out loss (None: not measured).
    improved: bool | None = None


# --- preflight: everything that can fail before a byte is written -----------------------------


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_method(method: str, precision: str, *, cuda: bool) -> None:
    """Reject methods and precisions this machine cannot run, in one line."""
    if method not in METHODS:
        raise FinetuneError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
    if precision not in ("auto", "fp32", "bf16"):
        raise FinetuneError(f"unknown --precision {precision!r}; choose from auto, fp32, bf16")
    if method == "qlora" and not cuda:
        raise FinetuneError("--method qlora needs a CUDA GPU (bitsandbytes 4-bit); use --method lora on this machine")
    if precision == "bf16" and not cuda:
        raise FinetuneError("--precision bf16 needs a CUDA GPU; use --precision fp32 (or auto) on this machine")


#: (field, lowest allowed value, flag) of every count in :class:`FinetuneConfig`.
_MINIMUMS = (("max_steps", 1, "--max-steps"), ("batch_size", 1, "--batch-size"), ("grad_accum", 1, "--grad-accum"),
             ("lora_r", 1, "--lora-r"), ("max_seq_len", 16, "--max-seq-len"), ("eval_every", 0, "--eval-every"),
             ("save_every", 0, "--save-every"), ("patience", 0, "--patience"), ("eval_samples", 0, "--eval-samples"),
             ("em_samples", 0, "--em-samples"), ("warmup_steps", 0, "warmup_steps"),
             ("keep_checkpoints", 1, "keep_checkpoints"), ("max_new_tokens", 1, "max_new_tokens"))


def check_config(config: FinetuneConfig) -> None:
    """Reject out-of-range hyper-parameters in one line, naming the flag."""
    for name, lowest, flag in _MINIMUMS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise FinetuneError(f"{flag} must be an integer >= {lowest}, got {value!r}")
    if config.learning_rate is not None and not (0 < config.learning_rate < math.inf):
        raise FinetuneError(f"--lr must be a positive number, got {config.learning_rate!r}")
    if not config.lora_alpha > 0:
        raise FinetuneError(f"--lora-alpha must be positive, got {config.lora_alpha!r}")
    if not 0 <= config.lora_dropout < 1:
        raise FinetuneError(f"--lora-dropout must be in [0, 1), got {config.lora_dropout!r}")
    if config.loss_on not in ("middle", "all"):
        raise FinetuneError(f"--loss-on must be middle or all, got {config.loss_on!r}")


def check_data_config(data: DataConfig) -> None:
    """Reject out-of-range dataset settings in one line, naming the flag."""
    if data.spans.samples_per_file < 1:
        raise FinetuneError(f"--samples-per-file must be >= 1, got {data.spans.samples_per_file}")
    if not 0 <= data.spans.curriculum_share <= 1:
        raise FinetuneError(f"--curriculum-share must be in [0, 1], got {data.spans.curriculum_share}")
    if data.holdout_commits < 1:
        raise FinetuneError(f"--holdout-commits must be >= 1, got {data.holdout_commits}")
    if data.max_files is not None and data.max_files < 1:
        raise FinetuneError(f"--max-files must be >= 1, got {data.max_files}")


def check_out_dir(out: Path) -> None:
    """``out`` can be created: its nearest existing ancestor is a directory we can write in.

    Probed by creating (and removing) a temporary directory there, since ``os.access`` says
    yes to root even where the kernel refuses (``/proc``, read-only mounts).
    """
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--out {out}: exists and is not a directory")
    if not ancestor.is_dir():
        raise FinetuneError(f"--out {out}: {ancestor} is not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=".repocomplete-probe-", dir=ancestor)
    except OSError as exc:
        raise FinetuneError(f"--out {out}: cannot write in {ancestor} ({exc.strerror or exc})") from None
    os.rmdir(probe)


def count_parameters(model_path: str | os.PathLike[str]) -> int:
    """Parameters of the model at ``model_path``, counted on the meta device (nothing allocated)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate_memory_bytes(n_params: int, method: str, *, cuda: bool) -> int:
    """Rough training footprint: per-parameter bytes for the method, plus 20 % for activations."""
    per_param = _BYTES_PER_PARAM[method]
    if method == "lora" and cuda:
        per_param = _BYTES_PER_PARAM_GPU_LORA
    return int(n_params * per_param * 1.2)


def available_memory_bytes(*, cuda: bool) -> int:
    """Free accelerator memory on CUDA, available RAM otherwise."""
    if cuda:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(model_path: str | os.PathLike[str], method: str, *, cuda: bool) -> int:
    """Raise :class:`FinetuneError` when the model will not fit; return the parameter count."""
    n_params = count_parameters(model_path)
    need, have = estimate_memory_bytes(n_params, method, cuda=cuda), available_memory_bytes(cuda=cuda)
    if need > have:
        where = "GPU memory" if cuda else "RAM"
        hint = " (try --method lora or qlora)" if method == "full" else " (try a smaller --base model)"
        raise FinetuneError(f"base model has {n_params / 1e9:.2f}B parameters: --method {method} needs "
                            f"~{need / 2**30:.1f} GiB but only {have / 2**30:.1f} GiB of {where} is available{hint}")
    return n_params


def check_repositories(repos: list[Path]) -> None:
    """Each repository is a directory with at least one supported source file."""
    from indexer.walk import walk

    for repo in repos:
        if not repo.is_dir():
            raise FinetuneError(f"{repo}: not a directory")
        if not any(e.skipped is None and e.language for e in walk(repo)):
            raise FinetuneError(f"{repo}: no supported source files to train on")


def model_hash(model_path: str | os.PathLike[str]) -> str:
    """sha256 over the model's config and weight files (what an adapter was trained against)."""
    root = Path(model_path)
    digest = hashlib.sha256()
    names = ["config.json"] + sorted(p.name for p in root.iterdir()
                                     if p.suffix in (".safetensors", ".bin") and p.is_file())
    for name in names:
        path = root / name
        if not path.exists():
            continue
        digest.update(name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --- tokenized samples -----------------------------------------------------------------------


@dataclass
class TokenizedSample:
    input_ids: list[int]
    #: Index of the first target token (the middle); loss positions start here.
    target_start: int
    prompt: str
    middle: str
    kind: str


def tokenize_samples(samples: list[dict], tokenizer, end_token: str, max_seq_len: int) -> list[TokenizedSample]:
    """Prompt + middle + end token as ids; an over-long prompt loses its leftmost tokens."""
    end_id = tokenizer.convert_tokens_to_ids(end_token)
    out = []
    for sample in samples:
        prompt_ids = tokenizer(sample["prompt"], add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(sample["middle"], add_special_tokens=False)["input_ids"] + [end_id]
        target_ids = target_ids[: max_seq_len // 2]
        prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(target_ids) - max_seq_len):]
        out.append(TokenizedSample(prompt_ids + target_ids, len(prompt_ids), sample["prompt"],
                                   sample["middle"], sample["kind"]))
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


# --- model ----------------------------------------------------------------------------------


def target_modules_for(model) -> list[str]:
    """LoRA targets: the architecture's table entry, else every linear layer but the LM head."""
    import torch

    names = TARGET_MODULES.get(getattr(model.config, "model_type", ""), ())
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    chosen = [n for n in names if n in present]
    if chosen:
        return chosen
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")}
    return sorted(linear)


def load_model(model_path: str, config: FinetuneConfig, *, cuda: bool, bf16: bool):
    """The base model prepared for ``config.method`` (PEFT-wrapped for LoRA/QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    elif config.method == "lora" and bf16:
        kwargs["dtype"] = torch.bfloat16   # frozen weights in bf16; LoRA weights stay fp32
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if config.method == "full":
        return model, []
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from repocomplete.backends.transformers import ignore_known_library_deprecations

    ignore_known_library_deprecations()

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = list(config.target_modules) if config.target_modules else target_modules_for(model)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if bf16:
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    return model, targets


def trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict) -> None:
    params = dict(model.named_parameters())
    for name, tensor in state.items():
        params[name].data.copy_(tensor.to(params[name].device, params[name].dtype))


def parameter_digest(model) -> str:
    """sha256 of every parameter (trainable or not): equal digests mean identical models."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


# --- evaluation -----------------------------------------------------------------------------


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


def _first_line(text: str, stops: tuple[str, ...]) -> str:
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text.split("\n", 1)[0].strip()


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
                                 pad_token_id=tokenizer.pad_token_id or 0)
            text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
            hits += _first_line(text, stops) == _first_line(sample.middle, ())
    model.train()
    return hits / len(samples)


def improvement(before: dict, after: dict) -> bool | None:
    """Whether the held-out loss after training is below the one before (None: not measured)."""
    b, a = before.get("heldout_loss"), after.get("heldout_loss")
    return None if b is None or a is None else a < b


def lora_b_all_zero(model) -> bool | None:
    """True when every LoRA B matrix is zero, so the adapter is the identity; None without LoRA."""
    matrices = [p for name, p in model.named_parameters() if "lora_B" in name]
    return None if not matrices else not any(bool(p.detach().any()) for p in matrices)


# --- checkpoints ----------------------------------------------------------------------------


def _checkpoints(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("step-*") if (p / "state.json").exists())


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, state: dict, best: dict | None,
                    accelerator) -> None:
    """All ranks write their RNG state; rank 0 the rest; the directory appears atomically."""
    import torch

    final = root / f"step-{step:07d}"
    staging = root / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(checkpoint.rng_state(), staging / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(trainable_state(accelerator.unwrap_model(model)), staging / "trainable.pt")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        if best is not None:
            torch.save(best, staging / "best.pt")
        (staging / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in _checkpoints(root)[:-max(1, state["keep_checkpoints"])]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, model, optimizer, scheduler, accelerator) -> tuple[dict, dict | None]:
    """Restore a checkpoint written by :func:`save_checkpoint`; every file is loaded weights-only."""
    # RNG first: a file that is not plain data is refused before any state is touched
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    rng = checkpoint.load(rng_file) if rng_file.exists() else None
    load_trainable_state(accelerator.unwrap_model(model), checkpoint.load(path / "trainable.pt"))
    optimizer.load_state_dict(checkpoint.load(path / "optimizer.pt"))
    scheduler.load_state_dict(checkpoint.load(path / "scheduler.pt"))
    if rng is not None:
        checkpoint.restore_rng(rng)
    best = checkpoint.load(path / "best.pt") if (path / "best.pt").exists() else None
    return json.loads((path / "state.json").read_text(encoding="utf-8")), best


# --- progress -------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar (loss, tokens/s, ETA) on stderr; silent when disabled."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]finetune"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=total, completed=done, loss="-", tps="-")

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=f"{loss:.4f}", tps=f"{tokens_per_s:,.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# --- the run --------------------------------------------------------------------------------


def _resolve_base(spec: str | None):
    """(path, label) of ``--base``: ``default``, a local path, or a cached hub id."""
    if spec and Path(spec).is_dir():
        return str(Path(spec).resolve()), spec
    from repocomplete.models import resolve_model

    resolved = resolve_model(spec)
    return str(resolved.path), resolved.label


def _work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _write_adapter(out: Path, model, tokenizer, metadata: dict, method: str, command: str | None) -> None:
    """Write the adapter (or full model) with its metadata and card; ``out`` appears in one rename."""
    with publish.publishing(out) as staging:
        model.save_pretrained(staging)
        if method == "full":
            tokenizer.save_pretrained(staging)
        adapter_card.write(staging / "README.md", metadata, out, command)   # replaces peft's empty template
        (staging / ADAPTER_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (staging / METRICS_FILE).write_text(json.dumps(metadata["metrics"], indent=2) + "\n", encoding="utf-8")


def _lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def finetune(repos: list[str | os.PathLike[str]], base: str | None = "default", out: str | os.PathLike[str] | None = None,
             config: FinetuneConfig | None = None, data_config: DataConfig | None = None, *,
             resume: bool = False, force: bool = False, show_progress: bool = True,
             log=print, command: str | None = None) -> FinetuneResult:
    """Fine-tune ``base`` on ``repos`` and write the adapter (or full model) to ``out``.

    ``command``: the command line that started the run, recorded in the adapter's card.
    """
    config = config or FinetuneConfig()
    repo_paths = [Path(r).resolve() for r in repos]
    out_path = Path(out) if out else Path("adapters") / repo_paths[0].name
    out_path = out_path.resolve()
    work = _work_dir(out_path)
    cuda = _cuda_available()

    # 1. Preflight: nothing is written until all of these pass.
    check_config(config)
    if data_config is not None:
        check_data_config(data_config)
    check_method(config.method, config.precision, cuda=cuda)
    check_out_dir(out_path)
    if out_path.exists() and not (resume or force):
        raise FinetuneError(f"{out_path} already exists; pass --force to replace it or choose another --out")
    if resume and not _checkpoints(work / "checkpoints"):
        raise FinetuneError(f"nothing to resume: no checkpoint under {work}")
    check_repositories(repo_paths)
    model_path, model_label = _resolve_base(base)
    n_params = check_memory(model_path, config.method, cuda=cuda)
    bf16 = cuda and config.precision in ("auto", "bf16") and _bf16_supported()
    for target in (out_path, work):   # what a run killed while publishing left behind
        publish.clean_stale(target)

    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not cuda)
    fresh = not work.exists()
    try:
        return _run(repo_paths, model_path, model_label, n_params, out_path, work, config, data_config,
                    accelerator, resume=resume, bf16=bf16, show_progress=show_progress, log=log, command=command)
    except BaseException:
        # A run that fails before its first checkpoint leaves nothing behind.
        if fresh and accelerator.is_main_process and not _checkpoints(work / "checkpoints"):
            shutil.rmtree(work, ignore_errors=True)
        raise


def quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, optional-kernel notices) out of the CLI output."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def _prepare_data(repos: list[Path], work: Path, tokenizer, data_config: DataConfig, accelerator,
                  show_progress: bool) -> dict:
    data_dir = work / "data"
    if accelerator.is_main_process and not (data_dir / "manifest.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        with _data_progress(show_progress) as progress:
            build_dataset(repos, data_dir, data_config, tokenizer=tokenizer, progress=progress)
    accelerator.wait_for_everyone()
    return load_manifest(data_dir)


@contextlib.contextmanager
def _data_progress(enabled: bool):
    """A files-done bar on stderr while the dataset is built (indexing + retrieval per sample)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]data {task.fields[repo]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("files"), TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("data", total=None, repo="")

        def update(repo: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, repo=repo)

        yield update


def _run(repos, model_path, model_label, n_params, out: Path, work: Path, config: FinetuneConfig,
         data_config: DataConfig | None, accelerator, *, resume: bool, bf16: bool, show_progress: bool,
         log, command: str | None = None) -> FinetuneResult:
    import torch
    from transformers import AutoTokenizer

    from repocomplete.fim import detect_template, get_template

    quiet_libraries()
    main = accelerator.is_main_process
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data_config = data_config or DataConfig(template=None, seed=config.seed,
                                            prompt_tokens=max(64, config.max_seq_len * 3 // 4))
    template = (get_template(data_config.template) if data_config.template
                else detect_template(tokenizer.get_vocab()))
    data_config = replace(data_config, template=template.name)
    manifest = _prepare_data(repos, work, tokenizer, data_config, accelerator, show_progress and main)
    end_token = template.end_tokens[0]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train = tokenize_samples(list(read_samples(work / "data", "train")), tokenizer, end_token, config.max_seq_len)
    heldout = tokenize_samples(list(read_samples(work / "data", "heldout")), tokenizer, end_token, config.max_seq_len)
    eval_loss_set = heldout[: config.eval_samples]
    em_set = sorted(heldout, key=lambda s: (s.kind != "line_rest", s.prompt[-64:]))[: config.em_samples]

    model, targets = load_model(model_path, config, cuda=accelerator.device.type == "cuda", bf16=bf16)
    if config.method != "qlora":   # a 4-bit model is placed by its device_map and refuses .to()
        model.to(accelerator.device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr(), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.warmup_steps, config.max_steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)

    def evaluate() -> dict:
        if not config.evaluate:
            return {}
        with torch.random.fork_rng(devices=[]):
            return {"heldout_loss": heldout_loss(raw, eval_loss_set, pad_id),
                    "heldout_next_line_em": next_line_exact_match(raw, tokenizer, em_set, template.stop,
                                                                  config.max_new_tokens)}

    checkpoints = work / "checkpoints"
    state = {"step": 0, "best_loss": None, "best_step": 0, "bad_evals": 0, "history": [], "before": None,
             "tokens": 0, "train_seconds": 0.0, "keep_checkpoints": config.keep_checkpoints, "stopped_early": False}
    best: dict | None = None
    if resume:
        state, best = load_checkpoint(_checkpoints(checkpoints)[-1], model, optimizer, scheduler, accelerator)
        if main:
            log(f"resumed from step {state['step']}")
    elif main:
        state["before"] = evaluate()
        state["best_loss"] = (state["before"] or {}).get("heldout_loss")
        if state["best_loss"] is not None and config.patience and config.eval_every:
            best = trainable_state(raw)   # if training never beats the base, early stopping keeps it
    accelerator.wait_for_everyone()

    stream = BatchStream(len(train), config.batch_size, config.seed, accelerator.process_index, accelerator.num_processes)
    bar = _Progress(show_progress and main, config.max_steps, state["step"])
    step_tokens = 0
    started = time.perf_counter()
    last_loss = float("nan")
    try:
        while state["step"] < config.max_steps and not state["stopped_early"]:
            step = state["step"]
            total_loss = 0.0
            for micro in range(config.grad_accum):
                batch = collate([train[i] for i in stream.micro_batch(step * config.grad_accum + micro)], pad_id,
                                config.loss_on)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                sync = micro == config.grad_accum - 1
                with (contextlib.nullcontext() if sync else accelerator.no_sync(model)):
                    loss = model(**batch).loss / config.grad_accum
                    accelerator.backward(loss)
                total_loss += loss.detach()
                step_tokens += int(batch["attention_mask"].sum())
            accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            last_loss = float(accelerator.reduce(total_loss, reduction="mean"))
            state["step"] = step + 1
            elapsed = state["train_seconds"] + time.perf_counter() - started
            tokens = state["tokens"] + step_tokens * accelerator.num_processes
            bar.update(state["step"], last_loss, tokens / max(elapsed, 1e-9))
            state["history"].append({"step": state["step"], "loss": last_loss})
            # the last step is always evaluated: a run shorter than the interval must not keep step 0 as "best"
            due = bool(config.eval_every) and (state["step"] % config.eval_every == 0
                                               or state["step"] == config.max_steps)
            at_eval = due and eval_loss_set and config.evaluate
            if at_eval:
                best = _early_stopping(state, evaluate() if main else {}, raw, best, config, accelerator)
            if config.save_every and state["step"] % config.save_every == 0 and state["step"] < config.max_steps:
                state["tokens"], state["train_seconds"] = tokens, elapsed
                step_tokens, started = 0, time.perf_counter()
                save_checkpoint(checkpoints, state["step"], model, optimizer, scheduler, state, best, accelerator)
    finally:
        bar.close()
    state["tokens"] += step_tokens * accelerator.num_processes
    state["train_seconds"] += time.perf_counter() - started

    if config.param_digest_dir:   # the ranks' own weights, before the main process picks the best
        Path(config.param_digest_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.param_digest_dir) / f"rank-{accelerator.process_index}.txt").write_text(parameter_digest(raw))
    if best is not None:
        load_trainable_state(raw, best)   # early stopping keeps the best held-out weights (main process)
    after = evaluate() if main else {}
    improved = improvement(state["before"] or {}, after) if main else None
    zero_b = lora_b_all_zero(raw) if main else None
    _refuse_untrained(improved, zero_b, state, after, out, config, accelerator, log)
    metrics = {"before": state["before"] or {}, "after": after, "steps": state["step"],
               "final_train_loss": last_loss, "best_step": state["best_step"],
               "stopped_early": state["stopped_early"], "train_tokens": state["tokens"],
               "tokens_per_s": state["tokens"] / max(state["train_seconds"], 1e-9),
               "history": state["history"]}
    if main:
        metadata = {
            "format": "repocomplete-adapter/1", "name": out.name, "method": config.method,
            "base_model": {"spec": model_label, "path": model_path, "hash": model_hash(model_path),
                           "model_type": getattr(raw.config, "model_type", None), "parameters": n_params},
            "template": template.name, "target_modules": targets, "config": asdict(config),
            "data_manifest": manifest, "metrics": metrics,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "world_size": accelerator.num_processes, "improved": improved, "lora_b_all_zero": zero_b,
        }
        _write_adapter(out, raw, tokenizer, metadata, config.method, command)
        publish.remove(work)
    accelerator.wait_for_everyone()
    return FinetuneResult(str(out), state["step"], state["stopped_early"], metrics, manifest, main, improved)


def _refuse_untrained(improved: bool | None, zero_b: bool | None, state: dict, after: dict, out: Path,
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
    before = (state["before"] or {}).get("heldout_loss")
    reasons = []
    if improved is False:
        reasons.append(f"held-out loss {before:.4f} before training, {after['heldout_loss']:.4f} after "
                       f"{state['step']} steps (best at step {state['best_step']})")
    if zero_b:
        reasons.append("every LoRA B matrix is zero (the adapter changes nothing)")
    what = "training did not improve on the base model: " + "; ".join(reasons)
    if config.allow_no_improvement:
        log(f"warning: {what}; publishing it anyway (--allow-no-improvement), marked \"improved\": false")
        return
    raise FinetuneError(f"{what}; nothing written to {out}. Train longer or with another --lr, or pass "
                        "--allow-no-improvement to publish it marked as not improved")


def _early_stopping(state: dict, result: dict, model, best: dict | None, config: FinetuneConfig, accelerator):
    """Track the best held-out loss; flag a stop after ``patience`` evaluations without improvement."""
    import torch

    if accelerator.is_main_process:
        loss = result.get("heldout_loss")
        state["history"][-1].update(result)
        if loss is not None and (state["best_loss"] is None or loss < state["best_loss"] - config.min_delta):
            state["best_loss"], state["best_step"], state["bad_evals"] = loss, state["step"], 0
            best = trainable_state(model)
        else:
            state["bad_evals"] += 1
        state["stopped_early"] = bool(config.patience and state["bad_evals"] >= config.patience)
    # Every rank must agree on stopping, or the others would wait forever in the next all-reduce.
    flag = torch.tensor([1.0 if state["stopped_early"] else 0.0], device=accelerator.device)
    state["stopped_early"] = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
    return best


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


if __name__ == "__main__":  # pragma: no cover - `python -m training.finetune` for accelerate launch
    from training.cli import finetune_main

    sys.exit(finetune_main(sys.argv[1:]))
