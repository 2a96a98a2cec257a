"""Server-sent events of completion text (our stream and OpenAI's)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse
from starlette.types import Receive

from repocomplete.errors import RepocompleteError
from repocomplete.types import CompletionRequest
from server.runtime import Runtime

#: (choice index, text delta)
Piece = tuple[int, str]


def stream_doc(description: str) -> dict:
    """OpenAPI for a 200 that is a server-sent event stream (before OpenAPI 3.2, ``schema`` is one event)."""
    event = {"type": "object", "properties": {"data": {"type": "string"}, "event": {"type": "string"}}, "required": ["data"]}
    return {"content": {"text/event-stream": {"schema": event}}, "description": description}


async def generate_pieces(rt: Runtime, req: CompletionRequest, receive: Receive, deadline: float) -> AsyncIterator[Piece]:
    """Admit ``req`` now (429/503 before any byte is sent), then its text as pieces.

    One choice streams token by token; several choices are generated together and sent
    as one piece each (the engine streams a single completion).
    """
    if req.n == 1:
        def observe(timings, usage) -> None:
            rt.metrics.observe_completion(timings, usage.completion_tokens)

        deltas = await rt.limiter.iterate(lambda: rt.engine.stream(req, on_done=observe), cancel=req.cancel,
                                          deadline=deadline)
        return _as_choice_zero(deltas)
    result = await rt.limiter.call(lambda: rt.engine.complete(req), cancel=req.cancel, receive=receive, deadline=deadline)
    rt.metrics.observe_completion(result.timings, result.usage.completion_tokens)
    return _from_list([(c.index, c.text) for c in result.choices])


async def _as_choice_zero(deltas: AsyncIterator[str]) -> AsyncIterator[Piece]:
    async for text in deltas:
        yield 0, text


async def _from_list(pieces: list[Piece]) -> AsyncIterator[Piece]:
    for piece in pieces:
        yield piece


def sse_response(
    pieces: AsyncIterator[Piece],
    frame: Callable[[int, str], dict],
    rt: Runtime,
    *,
    last: list[dict] = (),
) -> StreamingResponse:
    """One ``data:`` JSON frame per piece, then ``last``, then ``data: [DONE]``.

    Once headers are sent a status can no longer change, so a failure mid-stream is sent
    as an ``{"error": ...}`` frame. Leaving early (client gone) closes ``pieces``, which
    cancels the generation.
    """

    async def events() -> AsyncIterator[str]:
        try:
            async for index, text in pieces:
                rt.metrics.tokens.inc()
                yield f"data: {json.dumps(frame(index, text))}\n\n"
            for extra in last:
                yield f"data: {json.dumps(extra)}\n\n"
        except RepocompleteError as exc:
            yield f"data: {json.dumps({'error': {'type': exc.error_type, 'message': str(exc)}})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
