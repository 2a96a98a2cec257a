"""Wire schemas <-> engine types: validated bodies go through :mod:`repocomplete.wire`, the one
definition of the completion contract; the OpenAI-compatible route maps its own names here."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from repocomplete.errors import InvalidRequestError, ModelNotFoundError
from repocomplete.types import CompletionRequest, CompletionResult, Segments
from repocomplete.wire import request_from_json, result_to_json
from server.errors import ForbiddenError
from server.limits import check_prompt_size
from server.paths import PathPolicy
from server.schemas import CompletionIn, CompletionOut, OpenAICompletionIn
from server.settings import ServerSettings


def completion_request(body: CompletionIn, settings: ServerSettings, *, paths: PathPolicy = PathPolicy(),
                       adapters: Sequence[str] = (), admin: bool = False) -> CompletionRequest:
    """Tabby's / our request -> the engine's (:mod:`repocomplete.wire`): path fields checked by
    ``paths`` (``adapters``: the loaded names), debug output only for an ``admin``, size limits
    checked, a cancel Event attached."""
    debug = body.debug_options
    if debug and (debug.return_prompt or debug.return_snippets) and not admin:
        raise ForbiddenError("debug_options.return_prompt and return_snippets return indexed content: "
                             "they need an admin token (serve --admin-token)")
    if body.segments is None and not (debug and isinstance(debug.raw_prompt, str)):
        # Tabby answers 400 (EmptyPrompt) too: there is nothing to complete.
        raise InvalidRequestError("segments is required (segments.prefix / suffix around the cursor), "
                                  "or debug_options.raw_prompt")
    request = request_from_json(body.model_dump(exclude_none=True))
    segments = request.segments
    segments.filepath = paths.filepath(segments.filepath)
    request.workspace = paths.workspace_ref(request.workspace)
    request.adapter = paths.adapter(request.adapter, adapters)
    check_prompt_size(
        [segments.prefix, segments.suffix, segments.clipboard or "",
         *(d.body for d in segments.declarations), *(s.body for s in segments.snippets)],
        settings.max_prompt_chars,
    )
    request.cancel = threading.Event()
    return request


def openai_request(body: OpenAICompletionIn, settings: ServerSettings, adapters: list[str],
                   served: set[str]) -> CompletionRequest:
    """OpenAI legacy completion: ``prompt`` is the code before the cursor, ``suffix`` after it.

    ``model`` selects a loaded adapter when it names one, the served model when it is one of
    its names (``served``) or absent; any other name is 404 ``model_not_found``, as vLLM answers.
    """
    if body.model is not None and body.model not in adapters and body.model not in served:
        error = ModelNotFoundError(f"The model `{body.model}` does not exist (served: "
                                   f"{', '.join(sorted({*served, *adapters}))})")
        error.param = "model"  # OpenAI's error.param: the field at fault
        raise error
    prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt[:1])
    if not prompt and not body.suffix:
        raise InvalidRequestError("nothing to complete: prompt and suffix are both empty")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    check_prompt_size([prompt, body.suffix or ""], settings.max_prompt_chars)
    return CompletionRequest(
        segments=Segments(prefix=prompt, suffix=body.suffix or ""),
        adapter=body.model if body.model in adapters else None,
        max_tokens=body.max_tokens or 64,
        temperature=0.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        n=body.n,
        seed=body.seed,
        stop=stop,
        cancel=threading.Event(),
    )


def completion_response(result: CompletionResult) -> CompletionOut:
    return CompletionOut.model_validate(result_to_json(result))
