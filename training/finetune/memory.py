"""Peak memory of a fine-tuning run, recorded in its metrics (the cost users size machines by)."""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_memory(device) -> dict[str, int]:
    """``peak_rss_bytes`` always, plus ``peak_gpu_memory_bytes`` (what torch allocated at most) on CUDA."""
    out = {"peak_rss_bytes": peak_rss_bytes()}
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        out["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out
