"""``OPTIONS`` and 405 answers: ``Allow`` lists every method a path answers, ``OPTIONS`` included.

No CORS: no ``Access-Control-*`` header is ever sent, so browsers keep refusing cross-origin
calls; an ``OPTIONS`` request simply learns the methods (RFC 9110 §9.3.7).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send


#: Methods a route here may answer (HEAD only where a route declares it).
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(app, path: str) -> list[str]:
    """The methods routes of ``app`` answer at ``path`` (plus OPTIONS), sorted; empty when none match.

    Asks each route whether it fully matches (path and method), as the router itself does."""
    methods = set()
    for method in _METHODS:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": [], "query_string": b""}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            methods.add(method)
    return sorted(methods | {"OPTIONS"}) if methods else []


class Options:
    """ASGI middleware: ``OPTIONS`` on a known path is 204 with its ``Allow`` list; unknown paths fall through (404)."""

    def __init__(self, app: ASGIApp, *, routes_of) -> None:
        self.app = app
        self.routes_of = routes_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            methods = allowed_methods(self.routes_of, scope["path"])
            if methods:
                await Response(status_code=204, headers={"Allow": ", ".join(methods)})(scope, receive, send)
                return
        await self.app(scope, receive, send)
