"""Prometheus metrics, one registry per app (so tests and several apps never collide)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from repocomplete.types import Timings

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """Counters, gauges and histograms of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("repocomplete_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram(
            "repocomplete_request_seconds", "HTTP request latency by route", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "repocomplete_stage_seconds",
            "Completion latency by stage (retrieval, prompt, generation)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("repocomplete_generated_tokens", "Tokens generated", registry=r)
        self.cancelled = Counter("repocomplete_cancelled_generations", "Generations told to stop", ["reason"], registry=r)
        self.queue_depth = Gauge("repocomplete_queue_depth", "Requests waiting for a generation slot", registry=r)
        self.in_flight = Gauge("repocomplete_generations_in_flight", "Generations running (threads not yet stopped)", registry=r)
        self.events = Counter("repocomplete_events", "Completion events received", ["type"], registry=r)
        self.acceptance = Gauge("repocomplete_acceptance_rate", "Accepted / viewed completions (from the event store)", registry=r)

    def bind(self, *, queue_depth: Callable[[], float], in_flight: Callable[[], float], acceptance: Callable[[], float]) -> None:
        """Gauges read live values at scrape time."""
        self.queue_depth.set_function(queue_depth)
        self.in_flight.set_function(in_flight)
        self.acceptance.set_function(acceptance)

    def observe_completion(self, timings: Timings, completion_tokens: int) -> None:
        self.stage_seconds.labels("retrieval").observe(timings.retrieval_ms / 1000)
        self.stage_seconds.labels("prompt").observe(timings.prompt_ms / 1000)
        self.stage_seconds.labels("generation").observe(timings.generate_ms / 1000)
        self.tokens.inc(completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: count every response by route template and status, time it."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = _Recorder(send)
        failed = False
        try:
            await self.app(scope, receive, recorder)
        except Exception:
            failed = True
            raise
        finally:
            # Unmatched paths share one label so fuzzers cannot blow up cardinality.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            status = recorder.status if recorder.started else (500 if failed else 499)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)


class _Recorder:
    """Wraps ``send`` to remember the response status."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        await self.send(message)
