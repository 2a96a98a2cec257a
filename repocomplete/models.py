"""Where a model spec ("default", a directory, a cached hub id) points on disk.

Nothing is ever downloaded. "default" is the embedded model in
``repocomplete/assets/default-model/``; until that is built, a tiny untrained model is
built once from config into the cache and labelled as such wherever it is shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repocomplete.errors import ModelNotFoundError

#: The embedded default model (weights committed by the pretraining work).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default-model"
TINY_LABEL = "tiny untrained model (the embedded default model is not built yet)"
#: Bump when build_tiny_model changes, so a stale cached tiny model is rebuilt.
TINY_VERSION = 1

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory and how to describe it to users."""

    path: Path
    label: str
    is_default: bool = False
    is_tiny: bool = False


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache directory: ``override``, else $REPOCOMPLETE_CACHE_DIR, else ~/.cache/repocomplete."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("REPOCOMPLETE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "repocomplete"


def has_weights(path: Path) -> bool:
    """Whether ``path`` is a transformers model directory (config.json plus weights)."""
    return (path / "config.json").is_file() and any(any(path.glob(p)) for p in _WEIGHT_PATTERNS)


def is_tiny_model(path: Path) -> bool:
    """Whether ``path`` holds a model from :func:`repocomplete.tiny_model.build_tiny_model`."""
    try:
        return bool(json.loads((path / "config.json").read_text()).get("repocomplete_tiny"))
    except (OSError, ValueError):
        return False


def resolve_model(spec: str | None, *, cache: str | Path | None = None) -> ResolvedModel:
    """Resolve ``spec`` to a local model directory; ModelNotFoundError (one line) if there is none."""
    if spec in (None, "", "default"):
        if has_weights(DEFAULT_MODEL_DIR):
            return ResolvedModel(DEFAULT_MODEL_DIR, "embedded default model", is_default=True)
        return ResolvedModel(ensure_tiny_default(cache), TINY_LABEL, is_default=True, is_tiny=True)
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


def ensure_tiny_default(cache: str | Path | None = None) -> Path:
    """Build the stand-in default model once into the cache (atomically: concurrent callers are safe)."""
    target = cache_dir(cache) / "models" / f"tiny-default-v{TINY_VERSION}"
    if has_weights(target):
        return target
    from repocomplete.tiny_model import build_tiny_model

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        build_tiny_model(staging, template="repocomplete", hidden_size=128, layers=2)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its copy is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a hub model, looked up offline."""
    try:
        from huggingface_hub import snapshot_download

        # The cache location is read now (not at huggingface_hub import) so it can be changed at run time.
        path = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    return path if has_weights(path) else None
