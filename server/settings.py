"""Server settings: one typed dataclass, loaded like every other config.

Precedence (``repocomplete.config.load_config``): defaults < ``[server]`` of the TOML
file < ``REPOCOMPLETE_<FIELD>`` environment (e.g. ``REPOCOMPLETE_TOKENS=a,b``) < flags.
The engine itself is configured by the ``[engine]`` section (``EngineConfig``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Literal

from repocomplete.config import EngineConfig, setting
from repocomplete.errors import ConfigError

#: Host names a loopback-bound server answers to (anything else is a DNS-rebinding attempt).
LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")


@dataclasses.dataclass
class ServerSettings:
    """Everything ``repocomplete serve`` can be told; ``[server]`` in the TOML config."""

    host: str = setting("127.0.0.1", "interface to bind; loopback by default")
    port: int = setting(8765, "TCP port")
    tokens: list[str] = setting(help="bearer tokens; empty = no auth (env: REPOCOMPLETE_TOKENS=a,b)", factory=list)
    admin_tokens: list[str] = setting(help="bearer tokens that may also read indexed content back (debug_options."
                                      "return_prompt / return_snippets) and, when set, alone may (un)register "
                                      "workspaces (env: REPOCOMPLETE_ADMIN_TOKENS=a,b)", factory=list)
    allow_no_token: bool = setting(False, "serve on a non-loopback interface without any token (anyone who reaches "
                                   "the port may use the server); refused otherwise")
    workspaces: list[str] = setting(help="repository roots registered and indexed (in the background) at start", factory=list)
    allow_roots: list[str] = setting(help="folders under which clients may register workspaces over the API "
                                     "(besides the start-up workspaces); empty = only the start-up workspaces", factory=list)
    adapter_dirs: list[str] = setting(help="folders from which requests may load adapters by path; empty = only the "
                                      "adapters loaded at start", factory=list)
    max_concurrency: int = setting(4, "generations running at once; more wait in the queue")
    max_queue: int = setting(16, "requests allowed to wait for a slot; past this: 429 with Retry-After")
    request_timeout_s: float = setting(30.0, "seconds a request may take, queueing included (then 504)")
    max_body_bytes: int = setting(1_000_000, "largest request body, bytes (then 413)")
    header_timeout_s: float = setting(10.0, "seconds a client has to send a request's headers, from connecting or from "
                                      "the previous response (then the connection is closed)")
    body_timeout_s: float = setting(30.0, "seconds a client has to send a request's body (then 408)")
    max_connections: int = setting(512, "open connections at most (lowered to fit the open-file limit); past it the "
                                   "connection waiting longest for its headers is closed")
    max_prompt_chars: int = setting(200_000, "largest prefix + suffix + client context, characters (then 413)")
    events_db: str | None = setting(None, "SQLite file of completion events (default <cache dir>/events.sqlite; cache dir: $REPOCOMPLETE_CACHE_DIR or ~/.cache/repocomplete)")
    allowed_hosts: list[str] = setting(help="Host header names accepted; empty = loopback names when bound to loopback, else any", factory=list)
    config_file: str | None = setting(None, "TOML file these settings came from (its [engine] section configures the engine)")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = setting("info", "uvicorn log level")
    #: The engine this server runs: ``[engine]`` of the config file (model, backend, adapters, limits, ...).
    engine: EngineConfig = setting(help="the engine's config ([engine] in the TOML file)", factory=EngineConfig)

    def host_allowlist(self) -> set[str] | None:
        """Accepted Host names (port stripped), or None when any host is accepted."""
        if self.allowed_hosts:
            return {h.lower() for h in self.allowed_hosts}
        if is_loopback(self.host):
            return set(LOOPBACK_NAMES)
        return None

    def all_tokens(self) -> list[str]:
        """Every token the server accepts (admin tokens are tokens too)."""
        return [*self.tokens, *self.admin_tokens]

    def check_exposure(self) -> str | None:
        """ConfigError when bound beyond loopback with no token and no explicit consent;
        otherwise a warning to print loudly when the server is open to the network, or None."""
        if is_loopback(self.host) or self.all_tokens():
            return None
        if not self.allow_no_token:
            raise ConfigError(
                f"refusing to serve on {self.host} without a token: anyone who can reach port {self.port} could "
                "use this server and read what it indexed. Set REPOCOMPLETE_TOKENS (or --token), or pass "
                "--allow-no-token to accept that risk")
        hosts = ", ".join(sorted(self.host_allowlist() or ())) or "any Host header (no DNS-rebinding check)"
        return (f"WARNING: serving on {self.host} WITHOUT A TOKEN (--allow-no-token): anyone who can reach port "
                f"{self.port} can use this server; accepted Host names: {hosts}")

    def events_path(self) -> Path:
        if self.events_db:
            return Path(self.events_db).expanduser()
        from repocomplete.events import default_events_path

        return default_events_path()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(config_file: str | None = None, overrides: dict | None = None,
                  engine_overrides: dict | None = None) -> ServerSettings:
    """Defaults < ``[server]`` (and ``[engine]``) of ``config_file`` < ``REPOCOMPLETE_*`` env <
    ``overrides`` (``engine_overrides`` for the engine's fields; None values: not given)."""
    from repocomplete.config import load_config, load_engine_config

    overrides = dict(overrides or {})
    overrides["config_file"] = config_file
    overrides["engine"] = load_engine_config(config_file, **(engine_overrides or {}))
    return load_config(ServerSettings, toml_path=config_file, section="server", overrides=overrides)
