"""``repocomplete lsp``: run the language server over stdio (default) or TCP.

stdout is the protocol: this command moves every other writer (print, warnings,
progress bars of libraries) to stderr before it starts, and logs to stderr or
``--log-file``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from repocomplete.config import EngineConfig, add_config_flags


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete lsp",
        description=(
            "Language server for inline code completion (textDocument/inlineCompletion, with "
            "textDocument/completion as a fallback). With --server-url it talks to a running "
            "`repocomplete serve`; without, it runs the engine in-process on the embedded default "
            "model and indexes the workspace in the background. Editor settings "
            "(initializationOptions) override these flags."
        ),
    )
    parser.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="address for --tcp (default: %(default)s)")
    parser.add_argument("--server-url", help="URL of `repocomplete serve` (default: run the engine in-process)")
    parser.add_argument("--token", help="bearer token for --server-url")
    add_config_flags(parser, EngineConfig, {"model": "--model", "backend": "--backend"})  # the in-process engine
    parser.add_argument("--adapter", help="LoRA adapter name (server) or path (in-process)")
    parser.add_argument("--debounce-ms", type=int, help="wait after the last keystroke (default 75)")
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _flag_options(args: argparse.Namespace) -> dict:
    """Command-line flags as settings (camelCase, like initializationOptions)."""
    flags = {
        "serverUrl": args.server_url,
        "token": args.token,
        "model": args.model,
        "adapter": args.adapter,
        "backend": args.backend,
        "debounceMs": args.debounce_ms,
    }
    return {key: value for key, value in flags.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``repocomplete lsp``; returns when the client exits or closes stdin."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    handler: logging.Handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler], force=True)
    # pygls logs every message at INFO; keep it quiet unless asked
    logging.getLogger("pygls").setLevel(max(logging.getLevelName(args.log_level), logging.WARNING))

    from lsp.server import create_server

    server = create_server()
    server.service.flag_options = _flag_options(args)  # type: ignore[attr-defined]
    if args.tcp is not None:
        server.start_tcp(args.host, args.tcp)
        return 0
    # The protocol keeps the real stdout; anything else printed goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, protocol_out)
    # The spec: `exit` without `shutdown` first is an error; end of input is a clean exit.
    service = server.service  # type: ignore[attr-defined]
    return 1 if service.exit_requested and not server.protocol._shutdown else 0


if __name__ == "__main__":
    sys.exit(main())
