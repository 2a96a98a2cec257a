"""``POST /v1/completions``: DESIGN.md's contract, a superset of Tabby's (JSON or SSE stream);
``POST /v1/prefetch``: the same body, its prompt processed ahead of time."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from server.auth import is_admin
from server.errors import ERROR_RESPONSES
from server.mapping import completion_request, completion_response
from server.runtime import Runtime, runtime
from server.schemas import CompletionIn, CompletionOut, PrefetchOut
from server.streaming import generate_pieces, sse_response, stream_doc

router = APIRouter(tags=["completions"])

STREAM_DOC = stream_doc('with "stream": true, server-sent events of {"id", "choices"} deltas, then [DONE]')


@router.post("/v1/completions", response_model=CompletionOut, responses={**ERROR_RESPONSES, 200: STREAM_DOC})
async def complete(body: CompletionIn, request: Request, rt: Runtime = Depends(runtime)):
    """Complete the code between ``segments.prefix`` and ``segments.suffix``."""
    req = completion_request(body, rt.settings, paths=rt.paths, adapters=rt.adapter_names(), admin=is_admin(request))
    deadline = rt.limiter.deadline()
    if body.stream:
        stream_id = f"cmpl-{uuid.uuid4().hex[:24]}"
        pieces = await generate_pieces(rt, req, request.receive, deadline)
        return sse_response(pieces, lambda index, text: {"id": stream_id, "choices": [{"index": index, "text": text}]}, rt)
    result = await rt.limiter.call(lambda: rt.engine.complete(req), cancel=req.cancel, receive=request.receive, deadline=deadline)
    rt.metrics.observe_completion(result.timings, result.usage.completion_tokens)
    return completion_response(result)


@router.post("/v1/prefetch", response_model=PrefetchOut, responses=ERROR_RESPONSES)
async def prefetch(body: CompletionIn, request: Request, rt: Runtime = Depends(runtime)) -> PrefetchOut:
    """Process the prompt of this completion ahead of time (the editor's cursor landed there), generating
    nothing: the completion that follows at that cursor, or a few keystrokes on, pays only for the rest.
    Runs only when a generation slot is free now, and stops within one chunk of the prompt when a
    completion asks for a slot or the client goes away."""
    req = completion_request(body, rt.settings, paths=rt.paths, adapters=rt.adapter_names(), admin=is_admin(request))
    cached = await rt.limiter.prefetch(lambda: rt.engine.prefetch(req), cancel=req.cancel, receive=request.receive,
                                       deadline=rt.limiter.deadline())
    return PrefetchOut(cached_tokens=cached or 0)
