"""The backend protocol every model runner implements.

A backend turns an already formatted prompt string into text. It knows its tokenizer
(for budgeting and for choosing a FIM template) but nothing about repositories,
templates or post-processing: that is the engine's job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class GenerationRequest:
    """One generation call, prompt already formatted by the engine."""

    prompt: str
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    #: Generation stops (and the stop string is cut) at the first of these.
    stop: list[str] = field(default_factory=list)
    #: Name of a loaded LoRA adapter, or None for the base model.
    adapter: str | None = None
    #: For remote engines that format FIM themselves: the raw suffix (else None).
    suffix: str | None = None
    #: The text just before the cursor as the prompt shows it (a FIM prompt does not end
    #: there); None: the prompt's end is the cursor. Backends that copy from context use it.
    cursor_prefix: str | None = None
    #: Stop once a non-blank line has ended (a line completion on an empty line: it may start
    #: with newlines, and post-processing keeps only its first non-blank line). Backends that
    #: cannot check it generate up to ``max_tokens`` as before; the shown text is the same.
    stop_after_line: bool = False
    cancel: threading.Event | None = None


@dataclass
class GenerationResult:
    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reasons: list[str] = field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a model runner."""

    #: Display name of the model (path basename or id).
    model_name: str
    #: Maximum prompt + generation tokens the model accepts.
    context_length: int
    #: The FIM order the model was trained to prefer ("psm"/"spm"), or None when it does not say.
    fim_order: str | None

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (no BOS/EOS)."""

    def special_tokens(self) -> set[str]:
        """The tokenizer's special/added token strings (used to pick a FIM template)."""

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate ``request.n`` completions; honours ``stop`` and ``cancel``."""

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield text deltas of a single completion as they are generated."""

    # Optional: ``prefill(request) -> int`` processes a prompt into the backend's prompt cache
    # without generating (the tokens now cached), stopping early once ``request.cancel`` is set.
    # Backends with a prompt cache offer it (transformers); the engine's ``prefetch`` skips
    # backends without it.

    def load_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter under ``name`` (AdapterError if incompatible)."""

    def adapters(self) -> list[str]:
        """Names of loaded adapters."""

    def info(self) -> dict:
        """Model, device, dtype, quantization, adapters: for health endpoints."""
