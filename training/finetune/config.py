"""What a fine-tuning run is told (:class:`FinetuneConfig`), what it carries between steps and
checkpoints (:class:`TrainState`), and what it returns (:class:`FinetuneResult`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from repocomplete.errors import RepocompleteError

METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "bf16")


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
    #: None = every linear layer but the output head (peft's ``"all-linear"``).
    target_modules: tuple[str, ...] | None = None
    #: None = 2e-4 for LoRA/QLoRA, 5e-5 for full fine-tuning.
    learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 10
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 200
    #: None = train ``max_steps`` steps; else this many passes over the training samples, the
    #: step count derived from the dataset's size once it is built (:func:`steps_for_epochs`).
    epochs: float | None = None
    max_seq_len: int = 1024
    #: "middle": loss on the middle span (and end token) only; "all": on every token.
    loss_on: str = "middle"
    #: Train as the engine serves with token healing on (its default): a prompt's last token that
    #: serving would take back moves into the target (:func:`training.finetune.batches.tokenize_samples`).
    token_healing: bool = True
    #: "auto" = bf16 where the GPU or CPU computes it natively (bf16 weights on a GPU, bf16 autocast
    #: over fp32 weights on a CPU with AMX/AVX512-BF16), else fp32; "bf16" fails where it is not native.
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
    #: Debugging (``--param-digest-dir``): each rank writes a digest of its parameters here at the
    #: end, so a distributed run can be checked to have kept its ranks' weights identical.
    param_digest_dir: str | None = None

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (5e-5 if self.method == "full" else 2e-4)


#: (field, lowest allowed value, flag) of every count in :class:`FinetuneConfig`.
_MINIMUMS = (("max_steps", 1, "--max-steps"), ("batch_size", 1, "--batch-size"), ("grad_accum", 1, "--grad-accum"),
             ("lora_r", 1, "--lora-r"), ("max_seq_len", 16, "--max-seq-len"), ("eval_every", 0, "--eval-every"),
             ("save_every", 0, "--save-every"), ("patience", 0, "--patience"), ("eval_samples", 0, "--eval-samples"),
             ("em_samples", 0, "--em-samples"), ("warmup_steps", 0, "warmup_steps"),
             ("keep_checkpoints", 1, "keep_checkpoints"), ("max_new_tokens", 1, "max_new_tokens"))


def check_config(config: FinetuneConfig) -> None:
    """Reject out-of-range hyper-parameters in one line, naming the flag (method and precision:
    :func:`training.finetune.preflight.check_method`, which knows the device)."""
    for name, lowest, flag in _MINIMUMS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise FinetuneError(f"{flag} must be an integer >= {lowest}, got {value!r}")
    if config.learning_rate is not None and not (0 < config.learning_rate < math.inf):
        raise FinetuneError(f"--lr must be a positive number, got {config.learning_rate!r}")
    if config.epochs is not None and not (0 < config.epochs < math.inf):
        raise FinetuneError(f"--epochs must be a positive number, got {config.epochs!r}")
    if not config.lora_alpha > 0:
        raise FinetuneError(f"--lora-alpha must be positive, got {config.lora_alpha!r}")
    if not 0 <= config.lora_dropout < 1:
        raise FinetuneError(f"--lora-dropout must be in [0, 1), got {config.lora_dropout!r}")
    if config.loss_on not in ("middle", "all"):
        raise FinetuneError(f"--loss-on must be middle or all, got {config.loss_on!r}")


def steps_for_epochs(epochs: float, n_samples: int, batch_size: int, grad_accum: int = 1, world: int = 1) -> int:
    """Optimizer steps that show every one of ``n_samples`` training samples ``epochs`` times
    (the last step rounds up; at least one step): each step consumes batch × accumulation × processes."""
    return max(1, math.ceil(epochs * n_samples / (batch_size * grad_accum * world)))


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs; ``state.json`` of each checkpoint."""

    step: int = 0
    #: Held-out metrics of the base model, measured before the first step.
    before: dict | None = None
    best_loss: float | None = None
    #: Step whose weights early stopping keeps (0 = the base model's).
    best_step: int = 0
    #: Evaluations in a row without a new best held-out loss.
    bad_evals: int = 0
    stopped_early: bool = False
    #: One entry per step: training loss, plus held-out metrics where the step was evaluated.
    history: list[dict] = field(default_factory=list)
    #: Tokens trained on and seconds spent, up to the last checkpoint.
    tokens: int = 0
    train_seconds: float = 0.0
    #: CPU seconds of this process (all threads) over the same span: a cost a loaded machine does
    #: not distort the way it distorts wall time.
    cpu_seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainState:
        """From ``state.json``; keys of older checkpoints that are no longer state are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
