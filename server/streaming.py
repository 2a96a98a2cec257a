"""Server-sent events over an async iterator of text deltas (our stream and OpenAI's)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from repocomplete.errors import RepocompleteError
from server.metrics import ServerMetrics


def sse_response(
    deltas: AsyncIterator[str],
    frame: Callable[[str], dict],
    metrics: ServerMetrics,
    *,
    last: dict | None = None,
) -> StreamingResponse:
    """One ``data:`` JSON frame per delta, ``last`` (if any), then ``data: [DONE]``.

    Once headers are sent a status can no longer change, so a failure mid-stream is sent
    as an ``{"error": ...}`` frame. Leaving early (client gone) closes ``deltas``, which
    cancels the generation.
    """

    async def events() -> AsyncIterator[str]:
        try:
            async for text in deltas:
                metrics.tokens.inc()
                yield f"data: {json.dumps(frame(text))}\n\n"
            if last is not None:
                yield f"data: {json.dumps(last)}\n\n"
        except RepocompleteError as exc:
            yield f"data: {json.dumps({'error': {'type': exc.error_type, 'message': str(exc)}})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
