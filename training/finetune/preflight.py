"""Preflight: everything that can fail cheaply is checked before a byte is written.

Method and precision against the device, hyper-parameter ranges, the ``--out`` folder, the
repositories (supported source files) and memory (counted on the meta device, nothing
allocated). """

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from training.data import DataConfig
from training.finetune.config import METHODS, PRECISIONS, FinetuneError

#: Bytes of memory per parameter while training, by method (weights + grads + AdamW states).
_BYTES_PER_PARAM = {"full": 16.0, "lora": 4.0, "qlora": 0.75}
_BYTES_PER_PARAM_GPU_LORA = 2.0   # bf16 frozen weights


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_supported(*, cuda: bool) -> bool:
    """Whether this machine computes in bf16 natively: a CUDA GPU that does, or a CPU with AMX or
    AVX512-BF16 (where bf16 autocast trains about twice as fast as fp32; docs/BENCHMARKS.md)."""
    if cuda:
        import torch

        return torch.cuda.is_bf16_supported()
    from repocomplete.backends.transformers import cpu_has_native_bf16

    return cpu_has_native_bf16()


def resolve_precision(precision: str, *, cuda: bool, bf16: bool) -> str:
    """``"bf16"`` or ``"fp32"`` for ``--precision`` (auto: bf16 where ``bf16`` says it is native)."""
    if precision == "fp32":
        return "fp32"
    return "bf16" if bf16 else "fp32"


def check_method(method: str, precision: str, *, cuda: bool, bf16: bool = False) -> None:
    """Reject methods and precisions this machine cannot run, in one line (``bf16``: supported natively)."""
    if method not in METHODS:
        raise FinetuneError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
    if precision not in PRECISIONS:
        raise FinetuneError(f"unknown --precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if method == "qlora" and not cuda:
        raise FinetuneError("--method qlora needs a CUDA GPU (bitsandbytes 4-bit); use --method lora on this machine")
    if precision == "bf16" and not bf16:
        where = "this GPU" if cuda else "this CPU (no AMX or AVX512-BF16)"
        raise FinetuneError(f"--precision bf16 is not supported natively by {where}; use --precision fp32 (or auto)")


def check_data_config(data: DataConfig) -> None:
    """Reject out-of-range dataset settings in one line, naming the flag."""
    if data.spans.samples_per_file < 1:
        raise FinetuneError(f"--samples-per-file must be >= 1, got {data.spans.samples_per_file}")
    if not 0 <= data.spans.curriculum_share <= 1:
        raise FinetuneError(f"--curriculum-share must be in [0, 1], got {data.spans.curriculum_share}")
    if data.split not in ("time", "files"):
        raise FinetuneError(f"--split must be time or files, got {data.split!r}")
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
