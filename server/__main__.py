"""``repocomplete serve`` (main) and ``repocomplete run`` (run_main): the server's commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from repocomplete.backends import backend_names
from repocomplete.config import parse_adapters
from repocomplete.errors import ConfigError
from repocomplete.models import MODEL_HELP


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
    parser.add_argument("--workspace", action="append", metavar="DIR",
                        help="repository to index and serve (repeatable; default: the git repository of the current directory)")
    parser.add_argument("--no-workspace", action="store_true", help="serve no repository at start (register them later by API)")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--adapter", action="append", metavar="NAME=PATH", help="LoRA adapter to load (repeatable)")
    parser.add_argument("--backend", choices=backend_names(), help="model runner (default: transformers)")
    parser.add_argument("--openai-url", metavar="URL", help="with --backend openai: the engine's base URL, e.g. http://vllm-host:8000/v1")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8765)")
    parser.add_argument("--config", metavar="FILE", help="TOML config with [server] and [engine] sections")
    parser.add_argument("--token", action="append", help="bearer token clients must send (repeatable)")
    parser.add_argument("--admin-token", action="append", metavar="TOKEN",
                        help="token that may also read indexed content back (debug options) and manage workspaces (repeatable)")
    parser.add_argument("--allow-no-token", action="store_true", default=None,
                        help="serve a non-loopback --host without any token (otherwise refused)")
    parser.add_argument("--allowed-host", action="append", metavar="NAME", help="Host header name accepted (repeatable)")
    parser.add_argument("--allow-root", action="append", metavar="DIR",
                        help="folder under which clients may register workspaces (repeatable; default: the --workspace roots)")
    parser.add_argument("--adapter-dir", action="append", metavar="DIR",
                        help="folder from which requests may load adapters by path (repeatable; default: none)")
    parser.add_argument("--max-concurrency", type=int, help="generations at once (default 4)")
    parser.add_argument("--max-queue", type=int, help="requests waiting for a slot before 429 (default 16)")
    parser.add_argument("--request-timeout", type=float, metavar="SECONDS", help="per-request timeout (default 30)")
    parser.add_argument("--events-db", metavar="FILE", help="SQLite file for completion events")
    parser.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"))
    return parser


def settings_from_args(args: argparse.Namespace):
    from server.settings import load_settings

    overrides = {
        "workspaces": args.workspace, "model": args.model, "adapters": parse_adapters(args.adapter) or None,
        "backend": args.backend, "openai_url": args.openai_url, "host": args.host, "port": args.port, "tokens": args.token,
        "admin_tokens": args.admin_token, "allow_no_token": args.allow_no_token, "allowed_hosts": args.allowed_host,
        "allow_roots": args.allow_root, "adapter_dirs": args.adapter_dir,
        "max_concurrency": args.max_concurrency, "max_queue": args.max_queue,
        "request_timeout_s": args.request_timeout, "events_db": args.events_db, "log_level": args.log_level,
    }
    return load_settings(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """``repocomplete serve``: run the HTTP server until interrupted."""
    import uvicorn

    from server.app import build_engine, create_app

    args = serve_parser().parse_args(argv)
    settings = settings_from_args(args)
    if not settings.workspaces and not args.no_workspace:
        settings.workspaces = default_workspaces()
    check_settings(settings)
    # Built here rather than in the lifespan so a bad model is a one-line error, not a traceback.
    engine = build_engine(settings)
    print(f"repocomplete serve: {engine.summary()} on {settings.url}", flush=True)
    uvicorn.run(
        create_app(settings, engine=engine),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=2,
    )
    return 0


def default_workspaces() -> list[str]:
    """The git repository around the current directory, as ``context`` and ``complete`` choose it; said on stderr."""
    from pathlib import Path

    from indexer.workspace import git_root

    root = git_root(Path.cwd())
    if root is None:
        return []
    print(f"repocomplete serve: no --workspace given: serving the git repository of the current directory, {root} "
          "(--workspace DIR to choose, --no-workspace for none)", file=sys.stderr, flush=True)
    return [str(root)]


def run_main(argv: Sequence[str] | None = None) -> int:
    """``repocomplete run [DIR]``: index DIR, serve it on the default model, show how to connect."""
    from server.quickstart import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
