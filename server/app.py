"""``create_app(settings)``: the FastAPI application, engine built once in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from repocomplete import __version__
from repocomplete.errors import RepocompleteError
from server.auth import AccessGuard
from server.errors import install_error_handlers
from repocomplete.events import EventStore
from server.limits import BodyLimit, Limiter
from server.methods import Options
from server.metrics import RequestMetrics, ServerMetrics
from server.paths import PathPolicy
from server.routers import completions, events, health, metrics, openai, workspaces
from server.runtime import Runtime
from server.settings import ServerSettings

log = logging.getLogger("repocomplete.server")


def build_engine(settings: ServerSettings):
    """Load the model and build the engine from ``settings.engine`` (slow: call it once, off the event loop)."""
    from repocomplete.engine import Engine

    return Engine.from_config(settings.engine)


def create_app(settings: ServerSettings, *, engine=None) -> FastAPI:
    """The application. ``engine``: an already built engine (tests, benchmarks, ``repocomplete run``);
    otherwise one is built from ``settings`` when the server starts."""
    server_metrics = ServerMetrics()
    limiter = Limiter(
        max_concurrency=settings.max_concurrency, max_queue=settings.max_queue, timeout_s=settings.request_timeout_s
    )
    limiter.on_cancel = lambda reason: server_metrics.cancelled.labels(reason).inc()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = engine is None
        built = await asyncio.to_thread(build_engine, settings) if owned else engine
        # One limit for clients to read: the tighter of the server's and the engine's.
        store = EventStore(settings.events_path())
        runtime = Runtime(
            settings=settings, engine=built, limiter=limiter, metrics=server_metrics, events=store,
            jobs=built.indexing, adapters=_adapters(built, settings), info=health.static_info(built),
            paths=PathPolicy.from_settings(settings.allow_roots, settings.workspaces, settings.adapter_dirs),
        )
        server_metrics.bind(
            queue_depth=lambda: limiter.waiting, in_flight=lambda: limiter.running, acceptance=store.acceptance_rate
        )
        for root in settings.workspaces:
            try:
                runtime.jobs.start(runtime.paths.startup_root(root))
            except RepocompleteError as exc:  # keep serving the others; say why in one line
                log.error("workspace %s not served: %s", root, exc)
        app.state.runtime = runtime
        log.info("serving %s on %s", runtime.info.get("model"), settings.url)
        try:
            yield
        finally:
            limiter.shutdown()
            store.close()
            if owned:
                built.close()

    app = FastAPI(
        title="repocomplete",
        version=__version__,
        summary="Repository-aware code completion (Tabby- and OpenAI-compatible)",
        lifespan=lifespan,
    )
    for module in (completions, events, health, metrics, workspaces, openai):
        app.include_router(module.router)
    install_error_handlers(app)
    _document_limits(app, settings)
    # Added last = outermost: metrics see every status, the guard runs before any body is read.
    app.add_middleware(Options, routes_of=app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(AccessGuard, allowed_hosts=settings.host_allowlist(), tokens=settings.all_tokens(),
                       admin_tokens=settings.admin_tokens)
    app.add_middleware(RequestMetrics, metrics=server_metrics)
    return app


def _adapters(engine, settings: ServerSettings) -> dict[str, str]:
    """Loaded adapters, name -> path (path unknown for ones the engine loaded by itself)."""
    config = getattr(engine, "config", None)
    paths = {**settings.engine.adapters, **getattr(config, "adapters", {})}
    return {name: paths.get(name, "") for name in engine.backend.adapters()}


def _document_limits(app: FastAPI, settings: ServerSettings) -> None:
    """Put this server's configured limits into its OpenAPI schema, so the schema is the truth."""
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = plain_openapi()  # FastAPI caches it in app.openapi_schema
            for name in ("CompletionIn", "OpenAICompletionIn"):
                prop = schema["components"]["schemas"][name]["properties"]["max_tokens"]
                for variant in [prop, *prop.get("anyOf", [])]:
                    if variant.get("type") == "integer":
                        variant["maximum"] = settings.engine.max_tokens_limit
        return app.openapi_schema

    app.openapi = openapi
