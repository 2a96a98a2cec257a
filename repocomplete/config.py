"""Typed configuration: dataclasses with help text, loaded with one precedence rule.

Precedence, lowest first: dataclass defaults < TOML file < environment
(``REPOCOMPLETE_<FIELD>``) < explicit overrides (CLI flags). Every field carries its
help text in ``metadata["help"]`` so front-ends can print it (``describe``). An
unknown key anywhere is a :class:`ConfigError` naming the valid keys; a value of the
wrong type is a :class:`ConfigError` saying where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from repocomplete.backends import backend_names
from repocomplete.errors import ConfigError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING,
            choices: Callable[[], Sequence[str]] | None = None) -> Any:
    """A dataclass field with help text (``factory`` for mutable defaults; ``choices``: a
    function returning the valid values, for fields whose values are a registry's names).

    docs/configuration.md is generated from these fields: after adding or changing one, run
    ``python scripts/config_reference.py`` (tests/docs/test_guide.py fails while the page is stale).
    """
    metadata = {"help": help, **({"choices": choices} if choices else {})}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_choices(cls: type, name: str) -> tuple[str, ...] | None:
    """The valid values of field ``name`` of config dataclass ``cls``, when it declares them."""
    choices = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("choices")
    return tuple(choices()) if choices else None

FimOrderSetting = Literal["auto", "psm", "spm"]


@dataclasses.dataclass
class EngineConfig:
    """How the completion engine loads its model and builds prompts."""

    model: str = setting("default", "model: 'default' (the embedded model), a catalogue name (repocomplete models list), "
                         "a .gguf file, a local directory, or a hub id in the local cache")
    backend: str = setting("transformers", "model runner: transformers (local), openai (remote OpenAI-compatible), fake (tests)",
                           choices=backend_names)
    template: str = setting("auto", "FIM template name (starcoder, qwen, deepseek, ...) or 'auto' to detect from the tokenizer")
    fim_order: FimOrderSetting = setting("auto", "FIM order: psm, spm (suffix first), or auto: the model's own (its config.json "
                                         "'repocomplete_fim_order', else its catalogue entry's, measured per model), else psm")
    device: str = setting("auto", "device for the transformers backend: auto (CUDA when present), cpu, cuda, cuda:1, ...")
    dtype: str = setting("auto", "weights dtype: auto (fp32 on CPU, bf16/fp16 on GPU), float32, bfloat16, float16")
    load_in_4bit: bool = setting(False, "quantize weights to 4-bit (NF4) with bitsandbytes")
    load_in_8bit: bool = setting(False, "quantize weights to 8-bit with bitsandbytes")
    adapters: dict[str, str] = setting(help="LoRA adapters to load at start, name -> path", factory=dict)
    openai_url: str = setting("http://127.0.0.1:8000/v1", "base URL of an OpenAI-compatible engine (vLLM, llama.cpp, TGI)")
    openai_model: str | None = setting(None, "model name to send to the OpenAI-compatible engine (default: --model)")
    api_key: str | None = setting(None, "bearer token for the OpenAI-compatible engine")
    request_timeout_s: float = setting(30.0, "timeout of one request to a remote engine, seconds")
    max_retries: int = setting(2, "retries (with exponential backoff) on connection errors and 5xx replies")
    context_tokens: int | None = setting(None, "prompt budget in tokens (clipped to the model's context minus max_tokens); "
                                         "default: the model's own (its catalogue entry's, measured) for a model of 50M+ "
                                         "parameters on CPU, else 1024 there (prompt processing dominates latency; "
                                         "quality measured in docs/MODELS.md), else 2048")
    retrieval_budget_tokens: int = setting(768, "repository context retrieved per request, tokens (the prompt packs what "
                                           "fits its context share)")
    prefix_share: float | None = setting(None, "share of the prompt budget (after the template's tokens) kept for the text "
                                         "before the cursor; the suffix gets suffix_share, retrieved context the rest, "
                                         "and context space left unused flows back to the prefix; default: the model's "
                                         "own (its catalogue entry's), else 0.5 (docs/MODELS.md, 'Repository context "
                                         "across the three models')")
    suffix_share: float | None = setting(None, "share of the prompt budget kept for the text after the cursor (see "
                                         "prefix_share); default: the model's own, else 0.25")
    sources: list[str] | None = setting(None, "retrieval sources to use (default: indexer.types.DEFAULT_SOURCES)")
    cache_dir: str | None = setting(None, "cache directory (built models, indexes); default ~/.cache/repocomplete")
    kv_cache: bool = setting(True, "reuse the KV cache of the unchanged prompt prefix between requests")
    threads: int | None = setting(None, "CPU threads for the transformers backend (default: chosen at start from the idle "
                                  "physical cores and the model's size, see docs/MODELS.md; REPOCOMPLETE_THREADS overrides)")
    prefill_dtype: str = setting("auto", "transformers on CPU: dtype of a second copy of the model that processes long prompt "
                                 "chunks while decoding stays in --dtype: auto (bfloat16 on CPUs with AMX/AVX512-BF16 for "
                                 "models of 50M+ parameters), bfloat16, off")
    decode_weights: str = setting("auto", "transformers on CPU: weights the decoding model multiplies with: auto (int8 for fp32 "
                                  "models of 50M+ parameters: a generated token reads every weight once, int8 a quarter of "
                                  "fp32's bytes; docs/MODELS.md), int8, off (the --dtype weights)")
    speculative_tokens: int = setting(0, "prompt-lookup speculative decoding: draft tokens copied from the prompt and "
                                      "verified in one forward pass (greedy requests; output unchanged); 0: off, the "
                                      "default (5-13% of drafts accepted on single-line completions: it did not pay, "
                                      "docs/MODELS.md)")
    token_healing: bool = setting(True, "transformers backend: when the prompt ends at the cursor (suffix-first FIM, raw "
                                  "prompts), take its last token back and let the model regenerate it, so a prompt "
                                  "ending in indentation is not one the model never saw (docs/MODELS.md, 'Token healing')")
    context_copy: float | None = setting(None, "weight (0-1) of copying text the prompt already holds while decoding "
                                         "(a cache model); default: the model's own (config.json "
                                         "'repocomplete_context_copy'), else 0")
    context_copy_min_chars: int = setting(8, "shortest text before the cursor, characters, that a copy from context must match")
    max_input_chars: int = setting(1_000_000, "largest prefix + suffix accepted, characters (larger: request too large)")
    max_tokens_limit: int = setting(1024, "largest max_tokens a request may ask for")
    fake_text: str = setting("pass\n", "fake backend: the text it generates (cycled to max_tokens)")
    fake_delay_s: float = setting(0.0, "fake backend: delay per generated token, seconds (load tests)")


def load_engine_config(config_file: str | Path | None = None, **overrides: Any) -> EngineConfig:
    """The engine's config: ``[engine]`` of ``config_file`` < ``REPOCOMPLETE_*`` env < ``overrides``
    (None values: not given). What every front-end builds its engine from."""
    return load_config(EngineConfig, toml_path=config_file, section="engine", overrides=overrides)


def parse_adapter(spec: str) -> tuple[str, str]:
    """An adapter as given on a command line or in settings: ``NAME=PATH``, or ``PATH`` (named
    after its folder) -> ``(name, path)``; ConfigError (one line) when a part is empty."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).name or spec, spec
    if not name.strip() or not path.strip():
        raise ConfigError(f"an adapter is NAME=PATH or PATH, got {spec!r}")
    return name.strip(), path.strip()


def parse_adapters(specs: Sequence[str] | None) -> dict[str, str]:
    """Several :func:`parse_adapter` specs -> ``{name: path}``."""
    return dict(parse_adapter(spec) for spec in specs or ())


def add_config_flags(parser: Any, cls: type, flags: Mapping[str, str]) -> None:
    """Add one command-line flag per field of config dataclass ``cls``: ``flags`` maps field name
    -> flag (``{"port": "--port"}``). Help text, default and choices come from the field, so they
    are stated once. A list field's flag repeats; a bool field's is a switch; a flag not given
    leaves the value to the config file and environment (see :func:`flag_overrides`)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, flag in flags.items():
        f, tp = fields[name], hints[name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        base = inner[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(inner) == 1 else tp
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = f" (default: {default})" if default not in (None, "", [], {}, False) else ""
        if typing.get_origin(base) is list:
            shown += " (repeatable)"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": (f.metadata.get("help", "") + shown).replace("%", "%%")}
        choices = field_choices(cls, name) or (typing.get_args(base) if typing.get_origin(base) is Literal else None)
        if choices:
            kwargs["choices"] = choices
        if base is not bool and not choices:
            kwargs["metavar"] = flag.lstrip("-").upper().replace("-", "_")
        if base is bool:
            kwargs["action"] = "store_true"
        elif typing.get_origin(base) is list:
            kwargs["action"] = "append"
        elif base in (int, float):
            kwargs["type"] = base
        parser.add_argument(flag, **kwargs)


def flag_overrides(args: Any, flags: Mapping[str, str]) -> dict[str, Any]:
    """The values of :func:`add_config_flags` flags, as ``load_config`` overrides (None: not given)."""
    return {name: getattr(args, name) for name in flags}


def config_keys(cls: type) -> list[str]:
    """Names of a config dataclass's fields."""
    return [f.name for f in dataclasses.fields(cls)]


def describe(cls: type) -> list[dict[str, Any]]:
    """Name, type, default and help of every field (for ``--help`` and docs)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default, "help": f.metadata.get("help", "")})
    return rows


def load_config(
    cls: type[T],
    *,
    toml_path: str | Path | None = None,
    section: str | None = None,
    env_prefix: str | None = "REPOCOMPLETE_",
    overrides: Mapping[str, Any] | None = None,
    overrides_from: str = "overrides",
) -> T:
    """Build ``cls`` from defaults < TOML (``section``, dotted) < environment < ``overrides``.

    ``overrides`` values that are None are ignored (a CLI flag that was not given).
    """
    hints = typing.get_type_hints(cls)
    valid = config_keys(cls)
    values: dict[str, Any] = {}

    if toml_path is not None:
        for key, raw in read_toml(Path(toml_path), section).items():
            _check_key(key, [k for k in valid if not dataclasses.is_dataclass(hints[k])],
                       f"{toml_path}" + (f" [{section}]" if section else ""))
            values[key] = _coerce(raw, hints[key], f"{key} (in {toml_path})", from_text=False, choices=field_choices(cls, key))

    if env_prefix:
        for key in (k for k in valid if not dataclasses.is_dataclass(hints[k])):  # nested configs load themselves
            name = f"{env_prefix}{key.upper()}"
            if name in os.environ:
                values[key] = _coerce(os.environ[name], hints[key], f"{key} (from ${name})", from_text=True,
                                      choices=field_choices(cls, key))

    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        _check_key(key, valid, overrides_from)
        where = key if overrides_from == "overrides" else f"{key} (in {overrides_from})"
        values[key] = _coerce(raw, hints[key], where, from_text=False, choices=field_choices(cls, key))

    return cls(**values)


def read_toml(path: Path, section: str | None = None) -> dict[str, Any]:
    """The table ``section`` (dotted; None: the whole file) of a TOML file; ConfigError (one line)
    when the file is missing or invalid."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    for part in section.split(".") if section else ():
        data = data.get(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
    return data


def _check_key(key: str, valid: list[str], where: str) -> None:
    if key not in valid:
        raise ConfigError(f"unknown config key {key!r} in {where}; valid keys: {', '.join(valid)}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(raw: Any, tp: Any, where: str, *, from_text: bool, choices: Sequence[str] | None = None) -> Any:
    """Convert ``raw`` to the annotated type ``tp`` (one of ``choices`` when given) or raise ConfigError."""
    try:
        value = _convert(raw, tp, from_text)
        if choices is not None and value not in choices:
            raise ValueError(f"choose from: {', '.join(choices)}")
        return value
    except (ValueError, TypeError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ConfigError(f"invalid value for {where}: {raw!r} is not {_type_name(tp)}{detail}") from None


def _convert(raw: Any, tp: Any, from_text: bool) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (raw is None or (from_text and str(raw).strip().lower() in ("", "none", "null"))):
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(raw, inner[0], from_text)
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"choose from: {', '.join(map(str, args))}")
        return raw
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if from_text and str(raw).strip().lower() in _TRUE | _FALSE:
            return str(raw).strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if tp in (int, float):
        if isinstance(raw, bool) or not (isinstance(raw, (int, float)) or from_text):
            raise ValueError(f"expected {tp.__name__}")
        value = tp(raw)
        if tp is int and isinstance(raw, float) and raw != value:
            raise ValueError("expected an integer")
        return value
    if tp is str:
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    if origin is list:
        if from_text and isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("[") else [p.strip() for p in raw.split(",") if p.strip()]
        if not isinstance(raw, (list, tuple)):
            raise ValueError("expected a list")
        return [_convert(item, args[0], from_text) for item in raw]
    if origin is dict:
        if from_text and isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("{") else _parse_pairs(raw)
        if not isinstance(raw, Mapping):
            raise ValueError("expected a table of name = value")
        return {str(k): _convert(v, args[1], from_text) for k, v in raw.items()}
    return raw


def _parse_pairs(text: str) -> dict[str, str]:
    """``a=x,b=y`` -> {"a": "x", "b": "y"} (how a dict is written in an environment variable)."""
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError("expected name=value pairs separated by commas")
        pairs[name.strip()] = value.strip()
    return pairs
