"""Where a model spec points on disk: one resolution for every ``--model`` and ``--base``.

A spec is ``default`` (the embedded model in ``repocomplete/assets/default-model/``,
committed with the package), a catalogue name (``qwen2.5-coder-0.5b``: the verified file
in the store, see :mod:`repocomplete.model_store`), a ``.gguf`` file, a transformers
directory, or a hub id already in the local Hugging Face cache. A GGUF file is served
from the transformers folder made from it once (:func:`repocomplete.backends.gguf.prepare_gguf`).
Nothing is downloaded unless the caller asks to pull a catalogue model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.config import cache_root
from repocomplete.errors import ModelNotFoundError

if TYPE_CHECKING:
    from repocomplete.catalog import PromptLayout

#: The embedded default model (weights committed by the pretraining work).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default-model"

#: Help text of every ``--model`` option (one resolution: :func:`resolve_model`).
MODEL_HELP = ("'default' (the embedded model), a catalogue name such as qwen2.5-coder-0.5b (see `repocomplete models "
              "list`), a .gguf file, a model directory, or a hub id in the local cache")

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A transformers model directory, how to describe it to users, and where it came from."""

    path: Path
    label: str
    is_default: bool = False
    is_tiny: bool = False
    #: sha256 of the source file (the GGUF a catalogue model or a .gguf spec was prepared from);
    #: None for a plain directory. Adapters record it as the hash of their base model.
    sha256: str | None = None
    #: The catalogue name, when the spec was one.
    name: str | None = None
    #: The GGUF file the folder was prepared from, if any.
    source: Path | None = None
    #: The FIM template the source's own tokenizer supports (None: not read or none known).
    template: str | None = None
    #: The FIM order the catalogue measured best for this model (None: the model's own, else psm).
    fim_order: str | None = None
    #: The prompt budget and shares the catalogue measured for this model (None: the engine's).
    prompt_layout: PromptLayout | None = None


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


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 over a model folder's ``config.json`` and weight files: the identity of the weights
    an adapter was trained against (recorded in its ``repocomplete-adapter.json``, checked when
    it is loaded), whatever spec named the folder."""
    import hashlib

    root = Path(path)
    digest = hashlib.sha256()
    names = ["config.json"] + sorted(p.name for p in root.iterdir()
                                     if p.suffix in (".safetensors", ".bin") and p.is_file())
    for name in names:
        file = root / name
        if not file.exists():
            continue
        digest.update(name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_model(spec: str | None, *, cache: str | Path | None = None, pull: bool = False,
                  progress=None) -> ResolvedModel:
    """Resolve ``spec`` to a local model directory; ModelNotFoundError (one line) if there is none.

    A catalogue name that is not installed is an error telling how to pull it, unless ``pull``
    is true (then it is pulled, reporting to ``progress``, a :class:`repocomplete.model_store.Progress`).
    A catalogue name wins over a same-named folder in the current directory (write ``./NAME``).
    Slow steps (hashing, the one-time preparation of a GGUF) report to stderr unless
    ``progress`` is given.
    """
    if spec in (None, "", "default"):
        if has_weights(DEFAULT_MODEL_DIR):
            return ResolvedModel(DEFAULT_MODEL_DIR, "embedded default model", is_default=True)
        raise ModelNotFoundError(f"the embedded default model is missing from {DEFAULT_MODEL_DIR} (reinstall repocomplete)")
    from repocomplete.catalog import catalog

    entries = catalog()
    if progress is None:
        from repocomplete.model_store import ConsoleProgress

        progress = ConsoleProgress()
    if spec in entries:
        return _resolve_catalog(entries[spec], cache, pull, progress)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _resolve_gguf_file(path, cache, progress)
    if path.exists():
        if not path.is_dir() or not has_weights(path):
            raise ModelNotFoundError(f"{spec} is not a model directory (it needs config.json and weights) nor a .gguf file")
        tiny = is_tiny_model(path)
        return ResolvedModel(path.resolve(), f"tiny untrained model at {path}" if tiny else path.name, is_tiny=tiny)
    if _HUB_ID.match(spec):
        snapshot = _hub_cache_snapshot(spec)
        if snapshot is not None:
            return ResolvedModel(snapshot, spec)
        raise ModelNotFoundError(f"model {spec!r} is not in the local Hugging Face cache (nothing is downloaded; pass a local directory)")
    raise ModelNotFoundError(f"model not found: {spec} (no such file or directory, and not a catalogue name: "
                             f"{', '.join(entries)}; see `repocomplete models list`)")


def _resolve_catalog(entry, cache, pull: bool, progress) -> ResolvedModel:
    from repocomplete import model_store
    from repocomplete.errors import ModelUnavailableError

    path = model_store.installed_file(entry, cache, progress)
    if path is None:
        if not pull:
            raise ModelUnavailableError(f"model {entry.name} is not installed: run `repocomplete models pull {entry.name}` "
                                        f"({entry.size / 1e6:,.0f} MB download, verified by sha256)")
        path = model_store.pull(entry, cache=cache, progress=progress)
    folder = _prepare(path, entry.sha256, entry.name, cache, progress)
    return ResolvedModel(folder, f"{entry.name} ({entry.params}, {entry.format})", sha256=entry.sha256,
                         name=entry.name, source=path, template=_prepared_template(folder), fim_order=entry.fim_order,
                         prompt_layout=entry.prompt_layout)


def _resolve_gguf_file(path: Path, cache, progress) -> ResolvedModel:
    from repocomplete.catalog import catalog
    from repocomplete.model_store import sha256_file

    path = path.resolve()
    digest = sha256_file(path, progress, f"Hashing {path.name}")
    folder = _prepare(path, digest, path.name, cache, progress)
    known = next((e for e in catalog().values() if e.sha256 == digest), None)  # a catalogue model's file, by hash
    return ResolvedModel(folder, path.name, sha256=digest, source=path, template=_prepared_template(folder),
                         fim_order=known.fim_order if known else None,
                         prompt_layout=known.prompt_layout if known else None)


def _prepare(path: Path, sha256: str, name: str, cache, progress) -> Path:
    from repocomplete.backends.gguf import prepare_gguf
    from repocomplete.model_store import prepared_dir

    return prepare_gguf(path, sha256, prepared_dir(sha256, cache), name=name, progress=progress)


def _prepared_template(folder: Path) -> str | None:
    from repocomplete.backends.gguf import read_prepared

    return (read_prepared(folder) or {}).get("template")


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a hub model, looked up offline."""
    try:
        from huggingface_hub import snapshot_download

        # The cache location is read now (not at huggingface_hub import) so it can be changed at run time.
        path = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    return path if has_weights(path) else None
