"""Where a model spec ("default", a directory, a cached hub id) points on disk.

Nothing is ever downloaded. "default" is the embedded model in
``repocomplete/assets/default-model/``, committed with the package.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.config import cache_root
from repocomplete.errors import ModelNotFoundError

#: The embedded default model (weights committed by the pretraining work).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default-model"

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory and how to describe it to users."""

    path: Path
    label: str
    is_default: bool = False
    is_tiny: bool = False


#: The cache directory (``override``, else $REPOCOMPLETE_CACHE_DIR, else ~/.cache/repocomplete).
cache_dir = cache_root


def has_weights(path: Path) -> bool:
    """Whether ``path`` is a transformers model directory (config.json plus weights)."""
    return (path / "config.json").is_file() and any(any(path.glob(p)) for p in _WEIGHT_PATTERNS)


def is_tiny_model(path: Path) -> bool:
    """Whether ``path`` holds a tiny random test model (its config says ``repocomplete_tiny``)."""
    try:
        return bool(json.loads((path / "config.json").read_text()).get("repocomplete_tiny"))
    except (OSError, ValueError):
        return False


def resolve_model(spec: str | None, *, cache: str | Path | None = None) -> ResolvedModel:
    """Resolve ``spec`` to a local model directory; ModelNotFoundError (one line) if there is none."""
    if spec in (None, "", "default"):
        if has_weights(DEFAULT_MODEL_DIR):
            return ResolvedModel(DEFAULT_MODEL_DIR, "embedded default model", is_default=True)
        raise ModelNotFoundError(f"the embedded default model is missing from {DEFAULT_MODEL_DIR} (reinstall repocomplete)")
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not has_weights(path):
            raise ModelNotFoundError(f"{spec} is not a model directory (it needs config.json and weights)")
        tiny = is_tiny_model(path)
        return ResolvedModel(path.resolve(), f"tiny untrained model at {path}" if tiny else path.name, is_tiny=tiny)
    if _HUB_ID.match(spec):
        snapshot = _hub_cache_snapshot(spec)
        if snapshot is not None:
            return ResolvedModel(snapshot, spec)
        raise ModelNotFoundError(f"model {spec!r} is not in the local Hugging Face cache (nothing is downloaded; pass a local directory)")
    raise ModelNotFoundError(f"model not found: {spec} (no such directory)")


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a hub model, looked up offline."""
    try:
        from huggingface_hub import snapshot_download

        # The cache location is read now (not at huggingface_hub import) so it can be changed at run time.
        path = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    return path if has_weights(path) else None
