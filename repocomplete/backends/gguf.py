"""GGUF files: what their metadata says, and turning one into a transformers folder once.

A GGUF file (llama.cpp's format, how Qwen publishes quantized Qwen2.5-Coder) carries its
tokenizer in its metadata, so the FIM template is read from there
(:func:`gguf_control_tokens`), never guessed from the file name. Serving it in-process
needs a transformers folder: :func:`prepare_gguf` loads the file with transformers'
GGUF support (dequantized), drops the gguf quantizer (``save_pretrained`` refuses a
"quantized" model otherwise) and saves model and tokenizer to
``cache_dir()/prepared/<sha256[:16]>/``, atomically (a temporary folder renamed into
place: a kill never leaves half a folder), with ``repocomplete-prepared.json`` recording
the source file's sha256 and name. Later loads find it there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from repocomplete.errors import ModelNotFoundError, TemplateMismatchError, first_line

#: The record written into every prepared folder.
PREPARED_JSON = "repocomplete-prepared.json"
#: Bump when the preparation changes, so stale folders are made again.
PREPARED_VERSION = 1
#: gguf.TokenType values of tokens a tokenizer treats as special (CONTROL, USER_DEFINED).
_SPECIAL_TYPES = (3, 4)


def gguf_metadata(path: str | Path) -> dict:
    """Architecture, name and the special tokens of a GGUF file (reads only its header).

    ``special_tokens`` are the CONTROL and USER_DEFINED tokens of ``tokenizer.ggml.tokens``:
    where Qwen, StarCoder, DeepSeek ... keep their FIM sentinels.
    """
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: one line
        raise ModelNotFoundError(f"{path} is not a readable GGUF file ({first_line(exc)})") from None

    def scalar(key: str):
        field = reader.fields.get(key)
        return field.contents() if field is not None else None

    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    types_field = reader.fields.get("tokenizer.ggml.token_type")
    specials: set[str] = set()
    if tokens_field is not None and types_field is not None:
        types = types_field.contents()
        tokens = tokens_field.contents()
        specials = {token for token, kind in zip(tokens, types, strict=False) if kind in _SPECIAL_TYPES}
    return {"architecture": scalar("general.architecture"), "name": scalar("general.name"),
            "special_tokens": specials}


def gguf_template_name(path: str | Path) -> str | None:
    """The FIM template the file's own tokenizer supports, or None when it has no known FIM tokens."""
    from repocomplete.fim import detect_template

    try:
        return detect_template(gguf_metadata(path)["special_tokens"]).name
    except TemplateMismatchError:
        return None


def read_prepared(folder: Path) -> dict | None:
    """The record of a prepared folder, or None when the folder is not a complete, current one."""
    try:
        record = json.loads((folder / PREPARED_JSON).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("version") == PREPARED_VERSION else None


def prepare_gguf(gguf_path: str | Path, sha256: str, target: Path, *, name: str | None = None,
                 progress=None) -> Path:
    """The transformers folder ``target`` made from ``gguf_path`` (whose sha256 is ``sha256``).

    Made once: an existing folder whose record names the same sha256 is returned as is.
    ``progress`` (a :class:`repocomplete.model_store.Progress`) gets one note before the slow part.
    """
    gguf_path = Path(gguf_path)
    record = read_prepared(target)
    if record is not None and record.get("source_sha256") == sha256:
        return target
    meta = gguf_metadata(gguf_path)
    template = gguf_template_name(gguf_path)
    if progress is not None:
        progress.note(f"Preparing {name or gguf_path.name} for in-process serving (once; about a minute per "
                      f"0.5B parameters) into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    from repocomplete.model_store import sweep_stale

    sweep_stale(target.parent, f".{target.name}-*")  # a preparation killed mid-way left its staging folder
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        started = time.monotonic()
        _dequantize(gguf_path, staging, meta)
        _check_template(staging, template, gguf_path)
        record = {"version": PREPARED_VERSION, "source_sha256": sha256, "source_name": name or gguf_path.name,
                  "source_file": gguf_path.name, "architecture": meta["architecture"], "gguf_name": meta["name"],
                  "template": template, "prepared_at": time.time(), "seconds": round(time.monotonic() - started, 1)}
        (staging / PREPARED_JSON).write_text(json.dumps(record, indent=2))
        staging.chmod(0o755)  # mkdtemp makes it private
        if target.exists():  # stale (another version or sha): replace it
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another process prepared the same file meanwhile: its folder is identical
            if read_prepared(target) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _dequantize(gguf_path: Path, out: Path, meta: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    try:  # transformers' own bar stays visible: dequantizing is the slow step (a minute or more)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise ModelNotFoundError(f"cannot load {gguf_path} (architecture {meta['architecture']!r}) with transformers: "
                                 f"{first_line(exc)}") from None
    # The weights are plain float tensors now; without this save_pretrained refuses a "gguf-quantized" model.
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:  # a read-only property in some versions: derived from hf_quantizer
            pass
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.save_pretrained(out)  # its progress bar stays too: writing gigabytes takes a while
    tokenizer.save_pretrained(out)


def _check_template(folder: Path, expected: str | None, gguf_path: Path) -> None:
    """The saved tokenizer must keep the FIM tokens the GGUF had (else completions would leak sentinels)."""
    if expected is None:
        return
    from transformers import AutoTokenizer

    from repocomplete.fim import detect_template

    tokenizer = AutoTokenizer.from_pretrained(folder)
    specials = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    try:
        found = detect_template(specials).name
    except TemplateMismatchError:
        found = None
    if found != expected:
        raise TemplateMismatchError(f"converting {gguf_path.name} lost its FIM tokens ({expected} in the GGUF, "
                                    f"{found or 'none'} after conversion)")

