"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from server.runtime import Runtime, runtime

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(rt: Runtime = Depends(runtime)) -> Response:
    """Requests by route and status, stage latencies, tokens, queue depth, acceptance rate."""
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
