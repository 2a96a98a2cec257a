"""The published adapter folder: peft's weights, our metadata, metrics and model card.

``repocomplete-adapter.json`` records what the adapter belongs to (the base model's path and
sha256, its FIM template), how it was trained and what it measured; the server reads it
when the adapter is loaded. The folder appears in one rename (:mod:`training.publish`).
"""

from __future__ import annotations

import json
from pathlib import Path

from repocomplete.adapter_metadata import ADAPTER_METADATA
from training import publish
from training.finetune import card

METRICS_FILE = "metrics.json"
FORMAT = "repocomplete-adapter/1"


def write_adapter(out: Path, model, tokenizer, metadata: dict, method: str, command: str | None) -> None:
    """Write the adapter (or full model) with its metadata and card; ``out`` appears in one rename."""
    with publish.publishing(out) as staging:
        model.save_pretrained(staging)
        if method == "full":
            tokenizer.save_pretrained(staging)
        card.write(staging / "README.md", metadata, out, command)   # replaces peft's empty template
        (staging / ADAPTER_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (staging / METRICS_FILE).write_text(json.dumps(metadata["metrics"], indent=2) + "\n", encoding="utf-8")
