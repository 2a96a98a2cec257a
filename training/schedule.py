"""The learning-rate schedule shared by fine-tuning and pretraining: linear warmup, then cosine."""

from __future__ import annotations

import math


def warmup_cosine(step: int, *, peak: float, floor: float, warmup: int, total: int) -> float:
    """Learning rate at optimizer ``step`` (0-based).

    Rises linearly to ``peak`` over ``warmup`` steps, then follows half a cosine down to
    ``floor`` at ``total`` steps and stays there.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)
