"""``repocomplete serve`` (main) and ``repocomplete run`` (run_main): the server's commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from repocomplete.config import EngineConfig, add_config_flags, flag_overrides, parse_adapters
from server.settings import ServerSettings

#: Flags of `repocomplete serve`, generated from the settings' fields (help and default stated there).
SERVER_FLAGS = {
    "workspaces": "--workspace", "host": "--host", "port": "--port", "tokens": "--token",
    "admin_tokens": "--admin-token", "allow_no_token": "--allow-no-token", "allowed_hosts": "--allowed-host",
    "allow_roots": "--allow-root", "adapter_dirs": "--adapter-dir", "max_concurrency": "--max-concurrency",
    "max_queue": "--max-queue", "request_timeout_s": "--request-timeout", "header_timeout_s": "--header-timeout",
    "body_timeout_s": "--body-timeout", "max_connections": "--max-connections", "events_db": "--events-db",
    "log_level": "--log-level",
}
ENGINE_FLAGS = {"model": "--model", "backend": "--backend", "template": "--template", "openai_url": "--openai-url"}


def check_settings(settings) -> None:
    """Refuse unsafe or impossible settings in one line before the model loads; warn loudly when open."""
    from server.paths import PathPolicy

    policy = PathPolicy.from_settings(settings.allow_roots, settings.workspaces, settings.adapter_dirs)
    for root in settings.workspaces:
        policy.startup_root(root)
    warning = settings.check_exposure()
    if warning:
        print(warning, file=sys.stderr, flush=True)


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete serve",
        description="Serve repository-aware completions over HTTP (Tabby- and OpenAI-compatible API).",
        epilog="Settings precedence: defaults < [server]/[engine] of --config < REPOCOMPLETE_* env < flags. "
        "Tokens are better passed as REPOCOMPLETE_TOKENS=tok1,tok2 than on the command line.",
    )
    add_config_flags(parser, ServerSettings, SERVER_FLAGS)
    add_config_flags(parser, EngineConfig, ENGINE_FLAGS)
    parser.add_argument("--no-workspace", action="store_true", help="serve no repository at start (register them later by API)")
    parser.add_argument("--adapter", action="append", metavar="NAME=PATH",
                        help="LoRA adapter to load at start, NAME=PATH or PATH (repeatable)")
    parser.add_argument("--config", metavar="FILE", help="TOML config with [server] and [engine] sections")
    return parser


def settings_from_args(args: argparse.Namespace):
    from server.settings import load_settings

    engine = {**flag_overrides(args, ENGINE_FLAGS), "adapters": parse_adapters(args.adapter) or None}
    return load_settings(args.config, flag_overrides(args, SERVER_FLAGS), engine)


def main(argv: Sequence[str] | None = None) -> int:
    """``repocomplete serve``: run the HTTP server until interrupted."""
    import uvicorn

    from server.app import build_engine, create_app
    from server.connections import uvicorn_options

    args = serve_parser().parse_args(argv)
    settings = settings_from_args(args)
    chosen = ""
    if not settings.workspaces and not args.no_workspace and (around := default_workspace()) is not None:
        settings.workspaces = [around]
        chosen = " (the git repository of the current directory; --workspace DIR to choose, --no-workspace for none)"
    check_settings(settings)
    # Built here rather than in the lifespan so a bad model is a one-line error, not a traceback.
    engine = build_engine(settings)
    workspaces = ", ".join(settings.workspaces) or "none (--workspace DIR, or POST /v1/workspaces under --allow-root)"
    print(f"repocomplete serve: {engine.summary()} on {settings.url}; workspaces: {workspaces}{chosen}", flush=True)
    uvicorn.run(
        create_app(settings, engine=engine),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=2,
        **uvicorn_options(settings),
    )
    return 0


def default_workspace() -> str | None:
    """The git repository around the current directory, as ``context`` and ``complete`` choose theirs."""
    from pathlib import Path

    from indexer.workspace import git_root

    root = git_root(Path.cwd())
    return None if root is None else str(root)


def run_main(argv: Sequence[str] | None = None) -> int:
    """``repocomplete run [DIR]``: index DIR, serve it on the default model, show how to connect."""
    from server.quickstart import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
