"""Access guard: Host-header check (DNS rebinding), optional bearer tokens, admin role.

A pure ASGI middleware so it also covers streaming responses and unknown routes.
Tokens are compared in constant time and never logged or echoed. Whether the caller
holds an admin token is recorded in the request state (``request.state.admin``) for
the routes that return indexed content or manage workspaces.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import HostNotAllowedError, UnauthorizedError, domain_error_response

#: Routes answered without a token (load balancers and Tabby's agent probe them first).
PUBLIC_PATHS: frozenset[str] = frozenset({"/v1/health"})


def host_name(host_header: str) -> str:
    """``"[::1]:8765"`` -> ``"[::1]"``; ``"localhost:80"`` -> ``"localhost"`` (lower-cased)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_is_valid(token: str | None, tokens: list[str]) -> bool:
    if token is None:
        return False
    candidate = token.encode()
    # Compare against every token so timing does not reveal which one nearly matched.
    return any([hmac.compare_digest(candidate, t.encode()) for t in tokens])


def is_admin(request: Request) -> bool:
    """True when the request carried an admin token (set by :class:`AccessGuard`)."""
    return bool(getattr(request.state, "admin", False))


class AccessGuard:
    """Refuse foreign Host headers (403) and requests without a valid token (401).

    ``tokens`` are every accepted token, ``admin_tokens`` those among them with the admin role.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: set[str] | None, tokens: list[str],
                 admin_tokens: list[str] = ()) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.tokens = list(tokens)
        self.admin_tokens = list(admin_tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = bearer_token(headers.get("authorization", ""))
        scope.setdefault("state", {})["admin"] = bool(self.admin_tokens) and token_is_valid(token, self.admin_tokens)
        error = None
        if self.allowed_hosts is not None and host_name(headers.get("host", "")) not in self.allowed_hosts:
            error = HostNotAllowedError("Host header not allowed: this server only answers to its loopback name")
        elif self.tokens and scope["path"] not in PUBLIC_PATHS:
            if not token_is_valid(token, self.tokens):
                error = UnauthorizedError("missing or invalid bearer token (send 'Authorization: Bearer TOKEN')")
        if error is None:
            await self.app(scope, receive, send)
        else:
            await domain_error_response(error)(scope, receive, send)
