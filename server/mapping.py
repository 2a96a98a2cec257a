"""Wire schemas <-> engine types (``repocomplete.types``): the only place they meet."""

from __future__ import annotations

import threading

from repocomplete.errors import InvalidRequestError
from repocomplete.types import (
    ClientSnippet,
    CompletionRequest,
    CompletionResult,
    DebugOptions,
    Declaration,
    Segments,
)
from server.limits import check_prompt_size
from server.schemas import (
    ChoiceOut,
    CompletionIn,
    CompletionOut,
    DebugDataOut,
    OpenAICompletionIn,
    SnippetOut,
    TimingsOut,
)
from server.settings import ServerSettings


def completion_request(body: CompletionIn, settings: ServerSettings) -> CompletionRequest:
    """Tabby's / our request -> the engine's, with size limits checked and a cancel Event attached."""
    seg = body.segments
    debug = body.debug_options
    raw_prompt = debug.raw_prompt if debug else None
    if isinstance(raw_prompt, str):
        # Tabby: a raw prompt replaces the segments and goes to the model unformatted.
        segments = Segments(prefix=raw_prompt)
    elif seg is None:
        segments = Segments(prefix="")
    else:
        snippets = [*(seg.snippets or []), *(seg.relevant_snippets_from_changed_files or []),
                    *(seg.relevant_snippets_from_recently_opened_files or [])]
        segments = Segments(
            prefix=seg.prefix,
            suffix=seg.suffix or "",
            filepath=seg.filepath,
            git_url=seg.git_url,
            declarations=[Declaration(d.filepath, d.body) for d in seg.declarations or []],
            snippets=[ClientSnippet(s.filepath, s.body, s.score) for s in snippets],
            clipboard=seg.clipboard,
        )
    check_prompt_size(
        [segments.prefix, segments.suffix, segments.clipboard or "",
         *(d.body for d in segments.declarations), *(s.body for s in segments.snippets)],
        settings.max_prompt_chars,
    )
    return CompletionRequest(
        segments=segments,
        language=body.language,
        workspace=body.workspace,
        adapter=body.adapter,
        max_tokens=_max_tokens(body.max_tokens, settings),
        temperature=body.temperature,
        top_p=body.top_p,
        n=body.n,
        seed=body.seed,
        mode=body.mode,
        stop=list(body.stop or []),
        sources=body.sources,
        debug_options=DebugOptions(
            return_prompt=bool(debug and debug.return_prompt),
            return_snippets=bool(debug and debug.return_snippets),
            disable_retrieval=bool(debug and (debug.disable_retrieval or debug.disable_retrieval_augmented_code_completion)),
            raw_prompt=bool(raw_prompt),
        ),
        cancel=threading.Event(),
    )


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
    debug = None
    if result.prompt is not None or result.snippets is not None:
        snippets = None
        if result.snippets is not None:
            snippets = [
                SnippetOut(filepath=s.filepath, body=s.body, source=s.source, score=s.score,
                           start_line=s.start_line, end_line=s.end_line)
                for s in result.snippets
            ]
        debug = DebugDataOut(prompt=result.prompt, snippets=snippets)
    t = result.timings
    return CompletionOut(
        id=result.id,
        choices=[ChoiceOut(index=c.index, text=c.text, finish_reason=c.finish_reason) for c in result.choices],
        model=result.model,
        timings=TimingsOut(retrieval_ms=t.retrieval_ms, prompt_ms=t.prompt_ms, generate_ms=t.generate_ms, total_ms=t.total_ms),
        debug_data=debug,
    )
