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

from lsp.settings import OPTION_NAMES, Settings
from repocomplete.config import EngineConfig, add_config_flags

#: Editor settings that are also flags (help and default from the field; settings override them).
_SETTING_FLAGS = {"server_url": "--server-url", "token": "--token", "adapter": "--adapter", "debounce_ms": "--debounce-ms"}
#: The in-process engine's flags, as ``EngineConfig`` declares them.
_ENGINE_FLAGS = {"model": "--model", "backend": "--backend"}


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
    add_config_flags(parser, Settings, _SETTING_FLAGS)
    add_config_flags(parser, EngineConfig, _ENGINE_FLAGS)
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _flag_options(args: argparse.Namespace) -> dict:
    """Command-line flags as settings (camelCase, like initializationOptions)."""
    camel = {name: key for key, name in OPTION_NAMES.items()}
    values = {camel[name]: getattr(args, name) for name in (*_SETTING_FLAGS, *_ENGINE_FLAGS)}
    return {key: value for key, value in values.items() if value is not None}


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
