"""Request and response types of the completion engine (the contract in DESIGN.md).

Plain dataclasses: the server has its own pydantic schemas and converts at the edge,
so the engine never depends on a web framework.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from indexer.types import Snippet

CompletionMode = Literal["auto", "line", "multiline"]

#: Bounds of a request's fields, checked by the engine (``Engine._validate``) and stated in the
#: HTTP schema (``server/schemas.py``) from these same constants.
MAX_CHOICES = 8
MAX_TEMPERATURE = 2.0


@dataclass
class Declaration:
    """A client-supplied definition to show the model (Tabby ``declarations``)."""

    filepath: str
    body: str


@dataclass
class ClientSnippet:
    """A client-supplied snippet (Tabby ``relevant_snippets_from_changed_files``)."""

    filepath: str
    body: str
    score: float = 0.0


@dataclass
class Segments:
    """The text around the cursor and what the client knows about it."""

    prefix: str
    suffix: str = ""
    filepath: str | None = None
    git_url: str | None = None
    declarations: list[Declaration] = field(default_factory=list)
    snippets: list[ClientSnippet] = field(default_factory=list)
    clipboard: str | None = None


@dataclass
class DebugOptions:
    """Switches for inspecting or ablating a completion."""

    return_prompt: bool = False
    return_snippets: bool = False
    disable_retrieval: bool = False
    #: Force raw prompt mode: send ``segments.prefix`` to the model unformatted.
    raw_prompt: bool = False


@dataclass
class CompletionRequest:
    """One completion request, as every front-end hands it to the engine."""

    segments: Segments
    language: str | None = None
    workspace: str | None = None
    adapter: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    mode: CompletionMode = "auto"
    #: Extra stop strings on top of the template's own.
    stop: list[str] = field(default_factory=list)
    #: Retrieval sources to use (names from ``indexer.retrieve.sources.SOURCES``); None = configured default.
    sources: list[str] | None = None
    debug_options: DebugOptions = field(default_factory=DebugOptions)
    #: Set by the front-end to abort generation (client disconnect, LSP cancel).
    cancel: threading.Event | None = None


@dataclass
class Timings:
    """Milliseconds spent in each stage of one completion."""

    retrieval_ms: float = 0.0
    prompt_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class Choice:
    index: int
    text: str
    finish_reason: str = "stop"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Prompt tokens whose KV cache was reused from the previous request.
    cached_tokens: int = 0


@dataclass
class CompletionResult:
    """The engine's answer; front-ends serialise it to their protocol."""

    id: str
    choices: list[Choice]
    model: str
    timings: Timings = field(default_factory=Timings)
    usage: Usage = field(default_factory=Usage)
    #: The exact prompt sent to the model, when ``debug_options.return_prompt``.
    prompt: str | None = None
    #: Snippets packed into the prompt, when ``debug_options.return_snippets``.
    snippets: list[Snippet] | None = None
