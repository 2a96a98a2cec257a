"""An adapter folder's ``repocomplete-adapter.json``: what ``repocomplete finetune`` records about
the adapter it wrote (the base model it belongs to, its data and the time split's cut-off), read
by serving (the base check) and by ``eval repo --adapter`` (the held-out future by default).

Written by :mod:`training.finetune.adapter`; this module only names and reads it, so the engine
and the evals need no import of the training package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ADAPTER_METADATA = "repocomplete-adapter.json"


def read_adapter_metadata(adapter_dir: str | os.PathLike[str]) -> dict | None:
    """The adapter's metadata, or None where there is none (a plain PEFT folder) or it does not parse."""
    try:
        meta = json.loads((Path(adapter_dir) / ADAPTER_METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def recorded_base(adapter_dir: str | os.PathLike[str]) -> dict | None:
    """The ``base_model`` entry of the metadata (None without one)."""
    base = (read_adapter_metadata(adapter_dir) or {}).get("base_model")
    return base if isinstance(base, dict) else None


def recorded_cutoffs(metadata: dict) -> list[dict]:
    """``{"repo", "root", "cutoff"}`` of each training repository split by time: training saw that
    repository as it was at commit ``cutoff``, and only what was written after it is unseen."""
    manifest = metadata.get("data_manifest") if isinstance(metadata.get("data_manifest"), dict) else {}
    found = []
    for repo in manifest.get("repos") or []:
        split = repo.get("split") if isinstance(repo, dict) else None
        if isinstance(split, dict) and isinstance(split.get("cutoff"), str) and split["cutoff"]:
            found.append({"repo": repo.get("name"), "root": repo.get("root"), "cutoff": split["cutoff"]})
    return found
