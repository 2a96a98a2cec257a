"""OpenAI-compatible legacy completions under ``/openai/v1`` (Continue, twinny, the ``openai`` client)."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Depends, Request

from server.errors import ERROR_RESPONSES
from server.mapping import openai_request
from server.runtime import Runtime, runtime
from server.schemas import OpenAIChoice, OpenAICompletionIn, OpenAICompletionOut, OpenAIModel, OpenAIModelList, OpenAIUsage
from server.streaming import generate_pieces, sse_response, stream_doc

router = APIRouter(prefix="/openai/v1", tags=["openai"])

STREAM_DOC = stream_doc('with "stream": true, server-sent events of text_completion chunks, then [DONE]')


def _model_name(rt: Runtime) -> str:
    return str(rt.info.get("model", "default"))


def served_names(rt: Runtime) -> set[str]:
    """Names a request's ``model`` may give the served model: its listed id, its label, the
    ``--model`` it was started with (and that path's last part), and ``default`` for the
    embedded default model."""
    configured = rt.settings.engine.model or "default"
    names = {_model_name(rt), str(rt.info.get("model_label") or ""), configured,
             configured.rstrip("/").rsplit("/", 1)[-1]}
    return {n for n in names if n}


@router.post("/completions", response_model=OpenAICompletionOut, responses={**ERROR_RESPONSES, 200: STREAM_DOC})
async def completions(body: OpenAICompletionIn, request: Request, rt: Runtime = Depends(runtime)):
    """``prompt`` is the code before the cursor, ``suffix`` the code after it; ``model`` may name an adapter."""
    req = openai_request(body, rt.settings, rt.adapter_names(), served_names(rt))
    deadline = rt.limiter.deadline()
    created, model = int(time.time()), body.model or _model_name(rt)
    if body.stream:
        chunk_id = f"cmpl-{uuid.uuid4().hex[:24]}"

        def chunk(index: int, text: str, finish_reason: str | None = None) -> dict:
            choice = {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}
            return {"id": chunk_id, "object": "text_completion", "created": created, "model": model, "choices": [choice]}

        pieces = await generate_pieces(rt, req, request.receive, deadline)
        return sse_response(pieces, chunk, rt, last=[chunk(i, "", "stop") for i in range(req.n)])
    result = await rt.limiter.call(lambda: rt.engine.complete(req), cancel=req.cancel, receive=request.receive, deadline=deadline)
    rt.metrics.observe_completion(result.timings, result.usage.completion_tokens)
    usage = result.usage
    return OpenAICompletionOut(
        id=result.id,
        created=created,
        model=model,
        choices=[OpenAIChoice(index=c.index, text=c.text, finish_reason=c.finish_reason) for c in result.choices],
        usage=OpenAIUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                          total_tokens=usage.prompt_tokens + usage.completion_tokens),
    )


@router.get("/models", response_model=OpenAIModelList, responses=ERROR_RESPONSES)
async def models(rt: Runtime = Depends(runtime)) -> OpenAIModelList:
    """The served model, then each loaded adapter (usable as ``model``)."""
    return OpenAIModelList(data=[OpenAIModel(id=name) for name in [_model_name(rt), *rt.adapter_names()]])
