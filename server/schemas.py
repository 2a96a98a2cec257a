"""Wire schemas (pydantic), apart from logic.

Request models accept Tabby's bodies as its agent sends them: unknown fields are ignored,
never a 422, so newer clients keep working. Responses carry Tabby's required fields
(``id``, ``choices[].index``, ``choices[].text``) plus ours.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints, model_validator

from indexer.retrieve.sources import SOURCES
from repocomplete.types import MAX_CHOICES, MAX_TEMPERATURE

#: A retrieval source name (``indexer.retrieve.sources.SOURCES``).
SourceName = Literal[SOURCES]  # type: ignore[valid-type]


#: Seeds up to 2**32 - 1: exact in every JSON parser (larger integers get rounded as floats).
MAX_SEED = 2**32 - 1
#: Counters (ms, characters): exact as JSON doubles.
MAX_COUNT = 2**52

#: Longest path a request may name (PATH_MAX on Linux).
MAX_PATH_CHARS = 4096
#: A path's text: no NUL, no other control character (``server.paths.check_text`` enforces it too).
PRINTABLE_PATH = re.compile(r"[^\x00-\x1f\x7f]*\Z")
#: The wire type of every path field (``server.paths`` normalises and judges the path itself).
PathText = Annotated[str, StringConstraints(max_length=MAX_PATH_CHARS, pattern=r"^[^\x00-\x1f\x7f]*$")]

#: A root to register: absolute (``~`` is never expanded for clients).
AbsolutePathText = Annotated[str, StringConstraints(max_length=MAX_PATH_CHARS, pattern=r"^/[^\x00-\x1f\x7f]*$")]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(value: Any) -> Any:
    """Replace lone surrogates (valid JSON escapes, invalid text) so no encoder downstream fails."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [valid_unicode(v) for v in value]
    if isinstance(value, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in value.items()}
    return value


def _no_bool_or_text(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("must be an integer (not a boolean or a string)")
    return value


def integer(**bounds: int) -> Any:
    """An integer field with ``bounds`` (ge, le): ``true`` and ``"64"`` are refused; ``3.0`` is
    accepted, as JSON Schema's ``integer`` accepts it (``3.5`` is refused)."""
    return Annotated[int, Field(**bounds), Strict(False), BeforeValidator(_no_bool_or_text)]


PositiveInt = integer(ge=1)
ChoiceCount = integer(ge=1, le=MAX_CHOICES)
ChoiceIndex = integer(ge=0, le=1_000_000)
Seed = integer(ge=0, le=MAX_SEED)
Count = integer(ge=0, le=MAX_COUNT)


class Tolerant(BaseModel):
    """Base for request bodies: unknown fields are accepted and dropped; text is valid Unicode;
    types are strict (``true`` is no integer, ``1`` no boolean, ``"64"`` no number; an integer
    is still a valid float)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return valid_unicode(data)


class DeclarationIn(Tolerant):
    filepath: str = ""
    body: str


class SnippetIn(Tolerant):
    filepath: str = ""
    body: str
    score: float = Field(0.0, allow_inf_nan=False)


class SegmentsIn(Tolerant):
    prefix: str = ""
    suffix: str | None = None
    filepath: PathText | None = None
    git_url: str | None = None
    declarations: list[DeclarationIn] | None = None
    #: Ours (DESIGN.md).
    snippets: list[SnippetIn] | None = None
    #: Tabby's names for client-side snippets.
    relevant_snippets_from_changed_files: list[SnippetIn] | None = None
    relevant_snippets_from_recently_opened_files: list[SnippetIn] | None = None
    clipboard: str | None = None


class DebugOptionsIn(Tolerant):
    #: Tabby: a prompt string sent to the model as is (segments ignored); ours: a flag.
    raw_prompt: str | bool | None = None
    return_snippets: bool = False
    return_prompt: bool = False
    disable_retrieval: bool = False
    #: Tabby's name for ``disable_retrieval``.
    disable_retrieval_augmented_code_completion: bool = False


#: What a completion needs (Tabby answers 400 without either): the segments around the cursor,
#: or Tabby's ``debug_options.raw_prompt`` text.
_SEGMENTS_OR_RAW_PROMPT = {"anyOf": [
    {"required": ["segments"], "properties": {"segments": {"type": "object"}}},
    {"required": ["debug_options"],
     "properties": {"debug_options": {"type": "object", "required": ["raw_prompt"], "properties": {"raw_prompt": {"type": "string"}}}}},
]}


class CompletionIn(Tolerant):
    """``POST /v1/completions``: DESIGN.md's contract, a superset of Tabby's request."""

    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra=_SEGMENTS_OR_RAW_PROMPT)

    language: str | None = None
    segments: SegmentsIn | None = None
    workspace: PathText | None = None
    adapter: PathText | None = None
    max_tokens: PositiveInt = 64
    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    n: ChoiceCount = 1
    seed: Seed | None = None
    mode: Literal["auto", "line", "multiline"] = "auto"
    stop: list[str] | None = None
    sources: list[SourceName] | None = None
    user: str | None = None
    stream: bool = False
    debug_options: DebugOptionsIn | None = None


class ChoiceOut(BaseModel):
    index: int
    text: str
    finish_reason: str | None = None


class TimingsOut(BaseModel):
    retrieval_ms: float = 0.0
    prompt_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0


class SnippetOut(BaseModel):
    filepath: str
    body: str
    source: str = ""
    score: float = 0.0
    start_line: int = 0
    end_line: int = 0


class DebugDataOut(BaseModel):
    prompt: str | None = None
    snippets: list[SnippetOut] | None = None


class CompletionOut(BaseModel):
    id: str
    choices: list[ChoiceOut]
    model: str | None = None
    timings: TimingsOut | None = None
    debug_data: DebugDataOut | None = None


class PrefetchOut(BaseModel):
    #: Prompt tokens now cached for a completion at this cursor; 0 when nothing was done (the server
    #: was busy, the request was stopped first, or its model keeps no prompt cache).
    cached_tokens: int = 0


class EventIn(Tolerant):
    """``POST /v1/events``: ours and Tabby's event bodies."""

    type: str = Field(..., min_length=1, max_length=64)
    completion_id: str | None = Field(None, max_length=256)
    choice_index: ChoiceIndex = 0
    view_id: str | None = Field(None, max_length=256)
    #: Ours.
    elapsed_ms: Count | None = None
    #: Tabby's name for ``elapsed_ms``.
    elapsed: Count | None = None
    accepted_chars: Count | None = None
    select_kind: str | None = Field(None, max_length=64)


class EventOut(BaseModel):
    stored: bool = True


class VersionOut(BaseModel):
    build_date: str
    git_sha: str
    git_describe: str


class HealthOut(BaseModel):
    """Tabby's health fields plus ours (adapters, workspaces, uptime)."""

    model: str
    #: How the model is described to people (e.g. "tiny untrained model").
    model_label: str = ""
    chat_model: str | None = None
    device: str
    arch: str
    cpu_info: str
    cpu_count: int
    cuda_devices: list[str]
    version: VersionOut
    adapters: list[str]
    workspaces: list[str]
    uptime_s: float
    backend: dict[str, Any] = {}
    #: CPU threads the model runs on and why they were chosen (None: not a local CPU model).
    threads: int | None = None
    threads_reason: str | None = None


class ServerSettingOut(BaseModel):
    disable_client_side_telemetry: bool = False


class WorkspaceIn(Tolerant):
    #: Absolute path of the repository to index, on the server's machine.
    root: AbsolutePathText
    name: str | None = Field(None, min_length=1, max_length=200)


class WorkspaceOut(BaseModel):
    name: str
    root: str
    status: Literal["queued", "indexing", "ready", "failed"]
    files_done: int = 0
    files_total: int = 0
    elapsed_s: float = 0.0
    error: str | None = None
    summary: dict[str, Any] | None = None


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class AdapterOut(BaseModel):
    name: str
    path: str | None = None


class AdapterList(BaseModel):
    adapters: list[AdapterOut]


class ErrorBody(BaseModel):
    type: str
    message: str
    #: OpenAI's names: ``code`` repeats ``type``; ``param`` is the request field at fault, if any.
    code: str | None = None
    param: str | None = None


class ErrorOut(BaseModel):
    """Every error response: ``{"error": {"type", "message"}}``."""

    error: ErrorBody


#: Something to complete (vLLM refuses an empty prompt): a non-empty prompt, or a suffix to fill before.
_PROMPT_OR_SUFFIX = {"anyOf": [
    {"properties": {"prompt": {"anyOf": [{"type": "string", "minLength": 1},
                                         {"type": "array", "minItems": 1, "items": {"type": "string"},
                                          "prefixItems": [{"type": "string", "minLength": 1}]}]}}},
    {"required": ["suffix"], "properties": {"suffix": {"type": "string", "minLength": 1}}},
]}


class OpenAICompletionIn(Tolerant):
    """Legacy OpenAI ``/v1/completions`` (what Continue, twinny and ``openai`` send)."""

    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra=_PROMPT_OR_SUFFIX)

    model: str | None = None
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: PositiveInt | None = None
    temperature: float | None = Field(None, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    n: ChoiceCount = 1
    stream: bool = False
    stop: str | list[str] | None = None
    seed: Seed | None = None
    user: str | None = None


class OpenAIChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = "stop"
    logprobs: None = None


class OpenAIUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class OpenAICompletionOut(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[OpenAIChoice]
    usage: OpenAIUsage | None = None


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "repocomplete"


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
