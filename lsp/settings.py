"""The language server's options: defaults, overlaid by what the editor sends.

Editors send settings twice: once as ``initializationOptions`` and later (whole or
partial) in ``workspace/didChangeConfiguration``. Both use the camelCase names of the
VS Code settings (``serverUrl``, ``debounceMs``...), optionally nested under a
``"repocomplete"`` key. Unknown keys are ignored (editors send neighbours' settings too);
a value of the wrong type is a :class:`~repocomplete.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repocomplete.config import parse_adapter
from repocomplete.errors import ConfigError

#: camelCase option name -> dataclass field name.
_FIELDS = {
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
}

_OPTIONAL_STR = ("server_url", "token", "model", "adapter", "backend", "workspace")
_INTS = ("debounce_ms", "max_tokens", "max_prefix_chars", "max_suffix_chars")


@dataclass(frozen=True)
class Settings:
    """Everything an editor can configure; every field has a working default."""

    #: URL of a running ``repocomplete serve``; None runs the engine in-process.
    server_url: str | None = None
    #: Bearer token for ``server_url``.
    token: str | None = None
    #: Model for the in-process engine (path or ``default``); ignored with a server URL.
    model: str | None = None
    #: LoRA adapter per request: a name the server knows, a local PATH or NAME=PATH.
    adapter: str | None = None
    #: In-process engine backend (``transformers``, ``openai``, ``fake``); None = configured default.
    backend: str | None = None
    #: Server-side workspace name (HTTP mode); None lets the server resolve it.
    workspace: str | None = None
    #: Master switch.
    enable: bool = True
    #: Per-language switches by LSP language id; missing languages are enabled.
    languages: dict[str, bool] = field(default_factory=dict)
    #: Wait this long after the last keystroke before asking the model.
    debounce_ms: int = 75
    max_tokens: int = 64
    mode: str = "auto"
    #: How much text around the cursor is sent (the engine budgets tokens again).
    max_prefix_chars: int = 12_000
    max_suffix_chars: int = 4_000
    #: Index the workspace root in the background (in-process mode).
    index: bool = True

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
            name = _FIELDS.get(key) or (key if key in _FIELDS.values() else None)
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
        return value.rstrip("/") if name == "server_url" else value
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"setting {key} must be a non-negative number")
        return int(value)
    if name in ("enable", "index"):
        if not isinstance(value, bool):
            raise ConfigError(f"setting {key} must be true or false")
        return value
    if name == "languages":
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise ConfigError(f"setting {key} must map language ids to true/false")
        return dict(value)
    if name == "mode":
        if value not in ("auto", "line", "multiline"):
            raise ConfigError(f"setting {key} must be auto, line or multiline")
        return value
    raise ConfigError(f"unknown setting {key}")  # pragma: no cover - _FIELDS and _checked agree
