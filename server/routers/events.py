"""``POST /v1/events``: acceptance telemetry (ours and Tabby's bodies), stored locally."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from server.errors import ERROR_RESPONSES
from server.runtime import Runtime, runtime
from server.schemas import EventIn, EventOut

router = APIRouter(tags=["events"])


@router.post("/v1/events", response_model=EventOut, responses=ERROR_RESPONSES)
def post_event(body: EventIn, select_kind: str | None = None, rt: Runtime = Depends(runtime)) -> EventOut:
    """Record a view / select / dismiss / partial event (Tabby also sends ``?select_kind=``)."""
    event = body.model_dump(exclude_none=True)
    if select_kind and "select_kind" not in event:
        event["select_kind"] = select_kind[:64]
    rt.events.add(event)
    rt.metrics.events.labels(body.type if body.type in ("view", "select", "dismiss", "partial") else "other").inc()
    return EventOut()
