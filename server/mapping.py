"""Wire schemas <-> engine types: validated bodies go through :mod:`repocomplete.wire`, the one
definition of the completion contract; the OpenAI-compatible route maps its own names here."""

from __future__ import annotations

import threading

from repocomplete.errors import InvalidRequestError
from repocomplete.types import CompletionRequest, CompletionResult, Segments
from repocomplete.wire import request_from_json, result_to_json
from server.limits import check_prompt_size
from server.schemas import CompletionIn, CompletionOut, OpenAICompletionIn
from server.settings import ServerSettings


def completion_request(body: CompletionIn, settings: ServerSettings) -> CompletionRequest:
    """Tabby's / our request -> the engine's (:mod:`repocomplete.wire`), with size limits checked
    and a cancel Event attached."""
    request = request_from_json(body.model_dump(exclude_none=True))
    segments = request.segments
    check_prompt_size(
        [segments.prefix, segments.suffix, segments.clipboard or "",
         *(d.body for d in segments.declarations), *(s.body for s in segments.snippets)],
        settings.max_prompt_chars,
    )
    request.max_tokens = _max_tokens(request.max_tokens, settings)
    request.cancel = threading.Event()
    return request


def openai_request(body: OpenAICompletionIn, settings: ServerSettings, adapters: list[str]) -> CompletionRequest:
    """OpenAI legacy completion: ``prompt`` is the code before the cursor, ``suffix`` after it.

    ``model`` selects a loaded adapter when it names one; any other name means the served model.
    """
    prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt[:1])
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    check_prompt_size([prompt, body.suffix or ""], settings.max_prompt_chars)
    return CompletionRequest(
        segments=Segments(prefix=prompt, suffix=body.suffix or ""),
        adapter=body.model if body.model in adapters else None,
        max_tokens=_max_tokens(body.max_tokens or 64, settings),
        temperature=0.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        n=body.n,
        seed=body.seed,
        stop=stop,
        cancel=threading.Event(),
    )


def _max_tokens(requested: int, settings: ServerSettings) -> int:
    if requested > settings.max_tokens_limit:
        raise InvalidRequestError(f"max_tokens {requested} is over this server's limit of {settings.max_tokens_limit}")
    return requested


def completion_response(result: CompletionResult) -> CompletionOut:
    return CompletionOut.model_validate(result_to_json(result))
