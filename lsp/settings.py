"""The language server's options: defaults, overlaid by what the editor sends.

Editors send settings twice: once as ``initializationOptions`` and later (whole or
partial) in ``workspace/didChangeConfiguration``. Both use the camelCase names of the
VS Code settings (``serverUrl``, ``debounceMs``...), optionally nested under a
``"repocomplete"`` key. Unknown keys are ignored (editors send neighbours' settings too);
a value of the wrong type is a :class:`~repocomplete.errors.ConfigError`.

Fields are declared with :func:`repocomplete.config.setting` like the engine's and server's
(help text in the metadata: docs/configuration.md and ``repocomplete lsp --help`` read it).
What the engine already defines is not stated again: ``model`` and ``backend`` take the help
and valid values of :class:`~repocomplete.config.EngineConfig` (unset: the engine's own
configured default), ``maxTokens`` and ``mode`` the defaults and values of
:class:`~repocomplete.types.CompletionRequest`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repocomplete.config import EngineConfig, field_choices, parse_adapter, setting
from repocomplete.errors import ConfigError
from repocomplete.types import CompletionMode, CompletionRequest

#: camelCase option name (what editors send) -> :class:`Settings` field name.
OPTION_NAMES = {
    "serverUrl": "server_url",
    "token": "token",
    "model": "model",
    "adapter": "adapter",
    "backend": "backend",
    "workspace": "workspace",
    "enable": "enable",
    "languages": "languages",
    "debounceMs": "debounce_ms",
    "maxTokens": "max_tokens",
    "mode": "mode",
    "maxPrefixChars": "max_prefix_chars",
    "maxSuffixChars": "max_suffix_chars",
    "index": "index",
    "prefetch": "prefetch",
}

_OPTIONAL_STR = ("server_url", "token", "model", "adapter", "backend", "workspace")
_INTS = ("debounce_ms", "max_tokens", "max_prefix_chars", "max_suffix_chars")
_MODES: tuple[str, ...] = typing.get_args(CompletionMode)


def _engine_help(name: str) -> str:
    """An :class:`EngineConfig` field's help, for the in-process engine the setting configures."""
    help_text = next(f for f in dataclasses.fields(EngineConfig) if f.name == name).metadata["help"]
    return f"in-process engine {help_text}; unset: the [engine] config's (ignored with serverUrl)"


def _request_default(name: str) -> Any:
    """The default of a :class:`CompletionRequest` field (what a request without it gets)."""
    return next(f for f in dataclasses.fields(CompletionRequest) if f.name == name).default


@dataclass(frozen=True)
class Settings:
    """Everything an editor can configure; every field has a working default."""

    server_url: str | None = setting(None, "URL of a running `repocomplete serve`; unset runs the engine in-process")
    token: str | None = setting(None, "bearer token for the server URL")
    model: str | None = setting(None, _engine_help("model"))
    adapter: str | None = setting(None, "LoRA adapter per request: a name the server knows, a local PATH or NAME=PATH")
    backend: str | None = setting(None, _engine_help("backend"))
    workspace: str | None = setting(None, "server-side workspace name (HTTP mode); unset lets the server resolve it")
    enable: bool = setting(True, "master switch")
    languages: dict[str, bool] = setting(help="per-language switches by LSP language id (\"*\": the rest); "
                                         "missing languages are enabled", factory=dict)
    debounce_ms: int = setting(75, "wait this long after the last keystroke before asking the model, ms")
    max_tokens: int = setting(_request_default("max_tokens"), "most tokens one completion may generate")
    mode: str = setting(_request_default("mode"), f"completion length: {', '.join(_MODES)} (auto: from the cursor's context)")
    max_prefix_chars: int = setting(12_000, "most text before the cursor sent, characters (the engine budgets tokens again)")
    max_suffix_chars: int = setting(4_000, "most text after the cursor sent, characters")
    index: bool = setting(True, "index the workspace root in the background (in-process mode)")
    prefetch: bool = setting(True, "process the prompt where the cursor lands before anything is typed there "
                             "(repocomplete/cursor notifications; in-process, or the server's /v1/prefetch)")

    def adapters(self) -> dict[str, str]:
        """Adapters the in-process engine loads: the configured one when it names a local path."""
        if not self.adapter:
            return {}
        name, path = parse_adapter(self.adapter)
        return {name: path} if Path(path).exists() else {}

    def adapter_name(self) -> str | None:
        """The adapter name requests carry: a local adapter's name, else the setting as given."""
        if not self.adapter:
            return None
        return next(iter(self.adapters()), self.adapter)

    def enabled_for(self, language_id: str | None) -> bool:
        """Whether completions are on for documents of ``language_id``."""
        if not self.enable:
            return False
        return bool(self.languages.get(language_id or "", self.languages.get("*", True)))

    @classmethod
    def from_options(cls, options: Any, base: Settings | None = None) -> Settings:
        """``base`` (or the defaults) overlaid with the editor's ``options`` dict."""
        base = base or cls()
        if options is None:
            return base
        if not isinstance(options, dict):
            raise ConfigError(f"settings must be an object, got {type(options).__name__}")
        if isinstance(options.get("repocomplete"), dict):
            options = options["repocomplete"]
        changes: dict[str, Any] = {}
        for key, value in options.items():
            name = OPTION_NAMES.get(key) or (key if key in OPTION_NAMES.values() else None)
            if name is None:
                continue
            changes[name] = _checked(key, name, value)
        return dataclasses.replace(base, **changes)


def _checked(key: str, name: str, value: Any) -> Any:
    """``value`` validated (and lightly normalised) for the field ``name``."""
    if name in _OPTIONAL_STR:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"setting {key} must be a string")
        backends = field_choices(EngineConfig, "backend") if name == "backend" else None
        if backends and value not in backends:
            raise ConfigError(f"setting {key} must be one of {', '.join(backends)}")
        return value.rstrip("/") if name == "server_url" else value
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"setting {key} must be a non-negative number")
        return int(value)
    if name in ("enable", "index", "prefetch"):
        if not isinstance(value, bool):
            raise ConfigError(f"setting {key} must be true or false")
        return value
    if name == "languages":
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise ConfigError(f"setting {key} must map language ids to true/false")
        return dict(value)
    if name == "mode":
        if value not in _MODES:
            raise ConfigError(f"setting {key} must be one of {', '.join(_MODES)}")
        return value
    raise ConfigError(f"unknown setting {key}")  # pragma: no cover - OPTION_NAMES and _checked agree
