"""What a running server holds: built once in the lifespan, kept in ``app.state.runtime``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import Request

from repocomplete.events import EventStore
from repocomplete.indexing import IndexJobs
from server.auth import is_admin
from server.errors import ForbiddenError
from server.limits import Limiter
from server.metrics import ServerMetrics
from server.paths import PathPolicy
from server.settings import ServerSettings


@dataclass
class Runtime:
    settings: ServerSettings
    engine: object
    limiter: Limiter
    metrics: ServerMetrics
    events: EventStore
    jobs: IndexJobs
    #: What clients may name: allowed workspace roots, adapter folders.
    paths: PathPolicy = field(default_factory=PathPolicy)
    #: Adapters loaded at start: name -> path.
    adapters: dict[str, str] = field(default_factory=dict)
    #: Model, device, ... read once at start (health must never wait on the model).
    info: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def adapter_names(self) -> list[str]:
        return sorted(self.adapters)

    def require_manager(self, request: Request) -> None:
        """403 unless the caller may (un)register workspaces: anyone the guard let in, or only
        admin tokens when the server has any."""
        if self.settings.admin_tokens and not is_admin(request):
            raise ForbiddenError("registering and deleting workspaces needs an admin token on this server")


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's runtime."""
    return request.app.state.runtime
