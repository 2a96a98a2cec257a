"""Typed configuration of a pretraining run, read from one TOML file.

The TOML has sections ``[corpus]``, ``[tokenizer]``, ``[data]``, ``[model]``, ``[train]``,
``[export]``; a ``[gpu.<section>]`` table overrides keys when CUDA is available, so one
command trains the small CPU model here and a larger variant on a GPU host. Each section is
loaded by :func:`repocomplete.config.load_config` (the loader of every config: type checks,
one-line errors naming the valid keys).

No default is a path of one machine: the corpus roots come from ``sysconfig`` (this
interpreter's stdlib and site-packages) and ``PATH`` (racket), HumanEval from the copy under
``evals/data``, and a relative ``run_dir`` lives under ``<cache dir>/pretrain-runs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.config import cache_root
from repocomplete.config import load_config, read_toml
from repocomplete.errors import ConfigError, RepocompleteError


class PretrainError(RepocompleteError):
    """A pretraining stage cannot run (missing inputs, checkpoint/config mismatch)."""


class PretrainConfigError(RepocompleteError):
    """The pretraining config is missing, malformed or names an unknown key."""


@dataclass
class CorpusConfig:
    #: Python standard library (PSF-2.0); its ``test/`` folder is included unless listed here.
    stdlib_root: str = field(default_factory=lambda: sysconfig.get_paths()["stdlib"])
    #: Installed packages; only distributions with a permissive license are read.
    site_packages: str = field(default_factory=lambda: sysconfig.get_paths()["purelib"])
    #: Racket's collects and distribution packages (info.rkt license must be MIT/Apache).
    racket_root: str = field(default_factory=lambda: _racket_root())
    #: Stdlib packages never trained on: the repository evals run on them.
    eval_heldout: list[str] = field(default_factory=lambda: [
        "email", "json", "http", "logging", "asyncio", "xml", "urllib", "sqlite3", "unittest",
        "concurrent", "importlib", "tomllib", "zoneinfo", "wsgiref",
    ])
    #: Stdlib sub-folders skipped entirely (build artefacts, data, tool scripts).
    stdlib_exclude: list[str] = field(default_factory=lambda: [
        "site-packages", "lib2to3/tests", "idlelib/idle_test", "test/test_lib2to3", "turtledemo",
        "ensurepip", "config-3.11-x86_64-linux-gnu",
    ])
    #: HumanEval and the infilling sets: any corpus file containing one of their functions is dropped.
    humaneval_dir: str = str(Path(__file__).resolve().parents[2] / "evals" / "data" / "humaneval")
    extensions: list[str] = field(default_factory=lambda: [".py", ".rkt"])
    max_file_bytes: int = 200_000
    #: Caps keep one huge distribution (torch) from dominating the mix.
    max_bytes_per_dist: int = 1_500_000
    max_bytes_site_packages: int = 70_000_000
    max_bytes_stdlib_tests: int = 6_000_000
    max_bytes_racket: int = 12_000_000
    #: Percent of files (by path hash) held out as the test/validation split.
    test_percent: float = 2.0
    seed: int = 0


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    #: Bytes of corpus text the BPE merges are learned from (a hash-chosen sample of files).
    train_bytes: int = 25_000_000
    min_frequency: int = 2


@dataclass
class PretrainDataConfig:
    block_size: int = 1024
    #: Shares of sample kinds (normalised): FIM with repository context, FIM alone, plain document.
    repo_fim_share: float = 0.5
    fim_share: float = 0.25
    doc_share: float = 0.25
    #: Of FIM samples, the share in suffix-prefix-middle order.
    spm_share: float = 0.3
    #: Middle kinds (normalised): rest of line, whole line, short block (2-6 lines), random span.
    rest_of_line: float = 0.4
    whole_line: float = 0.3
    short_block: float = 0.2
    random_span: float = 0.1
    #: Token budgets of one FIM sample's parts (converted to chars with the measured ratio).
    prefix_tokens: int = 550
    suffix_tokens: int = 150
    context_tokens: int = 280
    #: Most retrieval windows (similar to the prefix's last lines) in one sample's context;
    #: each sample draws 1..N of them (0 = definitions only, data format 2).
    context_windows: int = 2
    #: Of repository-context samples, the share whose hole is a line another file of the
    #: package repeats, with that file's window in the context (data format 4): code does
    #: repeat across files, and a tiny model learns to copy only where copying pays.
    copy_holes: float = 0.0
    #: Of repository-context samples, the share whose context also holds the indexer window of
    #: the file itself around the hole (data format 6): the lines about the cursor and the answer
    #: verbatim, the plainest case of copying. A small model first has to learn to find its place
    #: in the context (an induction circuit) before the fuzzier repeats of other files pay; 49M
    #: tokens of format 4 (7k copy holes) did not teach it. Drawn before ``copy_holes``.
    echo_holes: float = 0.0
    #: One FIM sample per this many characters of a file (at least one, at most max_samples_per_file).
    chars_per_sample: int = 2500
    max_samples_per_file: int = 12
    seed: int = 0


@dataclass
class ModelConfig:
    hidden_size: int = 256
    intermediate_size: int = 704
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02


@dataclass
class TrainConfig:
    micro_batch: int = 8
    grad_accum: int = 1
    max_steps: int = 2400
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    #: Exponential moving average of the weights (0 = off). Averaging acts like learning-rate
    #: annealing, so a run stopped early (``--max-minutes``) still exports smooth weights;
    #: evaluation scores raw and averaged weights and ``best.pt`` keeps the better.
    ema_decay: float = 0.0
    #: "bf16" autocast (CPU ~2x faster here), "fp32", or "auto" (bf16 on CPU and CUDA).
    precision: str = "bf16"
    compile: bool = True
    threads: int = 2
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 10
    checkpoint_minutes: float = 5.0
    #: Also checkpoint every N steps (0 = off); the tests use it.
    checkpoint_every: int = 0
    #: Loss weight of the middle's tokens (after ``<|rc:middle|>`` up to and including the end
    #: token) relative to prompt tokens: the middle is what serving asks for, yet only ~2% of
    #: a FIM sample's tokens. 1 = plain language-model loss.
    middle_loss_weight: float = 1.0
    seed: int = 1337


@dataclass
class ExportConfig:
    out_dir: str = "repocomplete/assets/default-model"
    max_shard_size: str = "16MB"
    max_total_mb: float = 40.0
    #: Weights dtype on disk: float32 (fastest batch-1 generation on CPU) or bfloat16 (half the size).
    dtype: str = "float32"
    #: FIM order the engine should send this model (written to config.json as
    #: ``repocomplete_fim_order``): "psm" or "spm" (suffix first: the prefix's last line sits
    #: right before the middle, which a small model continues far better).
    fim_order: str = "psm"
    #: Weight of copying text the prompt already holds while decoding (a cache model, see
    #: repocomplete.backends.context_copy), written to config.json as
    #: ``repocomplete_context_copy`` and used by the engine unless configured; 0 disables.
    context_copy: float = 0.0


@dataclass
class PretrainConfig:
    #: Run directory (corpus, tokenizer, data, checkpoints); outside the repository. A relative
    #: one is under ``<cache dir>/pretrain-runs/`` (see :meth:`resolved_run_dir`).
    run_dir: str = "default-model"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_run_dir(self) -> Path:
        """``run_dir``, a relative one under ``<cache dir>/pretrain-runs/``."""
        path = Path(self.run_dir).expanduser()
        return path if path.is_absolute() else cache_root() / "pretrain-runs" / path

    def stage_hash(self, *sections: str) -> str:
        """A short hash of the named sections: a stage is redone when its inputs change."""
        data = {name: dataclasses.asdict(getattr(self, name)) for name in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _racket_root() -> str:
    """Racket's share folder next to the ``racket`` on PATH (``/usr/bin/racket`` -> ``/usr/share/racket``)."""
    racket = shutil.which("racket")
    return str(Path(racket).resolve().parent.parent / "share" / "racket") if racket else ""


SECTIONS = {
    "corpus": CorpusConfig, "tokenizer": TokenizerConfig, "data": PretrainDataConfig,
    "model": ModelConfig, "train": TrainConfig, "export": ExportConfig,
}


def load_pretrain_config(path: str | Path | None, *, gpu: bool = False,
                         overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """Read a TOML config; with ``gpu`` the ``[gpu.*]`` tables override the CPU values."""
    try:
        return _load(path, gpu, overrides)
    except ConfigError as exc:
        raise PretrainConfigError(str(exc)) from None


def _load(path: str | Path | None, gpu: bool, overrides: dict[str, Any] | None) -> PretrainConfig:
    raw: dict[str, Any] = read_toml(Path(path)) if path is not None else {}
    gpu_raw = raw.pop("gpu", {})
    if gpu:
        raw = _merge(raw, gpu_raw)
    raw = _merge(raw, overrides or {})
    top = {k: v for k, v in raw.items() if k not in SECTIONS}
    where = f" of {path}" if path is not None else ""
    sections = {name: load_config(cls, env_prefix=None, overrides=raw.get(name, {}), overrides_from=f"[{name}]{where}")
                for name, cls in SECTIONS.items()}
    from repocomplete.fim import FIM_ORDERS

    if sections["export"].fim_order not in FIM_ORDERS:
        raise PretrainConfigError(f"[export] fim_order must be 'psm' or 'spm', got {sections['export'].fim_order!r}")
    if not 0.0 <= sections["export"].context_copy <= 1.0:
        raise PretrainConfigError(f"[export] context_copy is a weight between 0 and 1, got {sections['export'].context_copy!r}")
    for share in ("spm_share", "copy_holes", "echo_holes"):
        value = getattr(sections["data"], share)
        if not 0.0 <= value <= 1.0:
            raise PretrainConfigError(f"[data] {share} is a share between 0 and 1, got {value!r}")
    return load_config(PretrainConfig, env_prefix=None, overrides={**top, **sections}, overrides_from=f"the top level{where}")
