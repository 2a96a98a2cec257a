"""A minimal JSON-over-HTTP server for stand-ins of `repocomplete serve` (tests and the benchmark)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_json(respond: Callable[[str, dict], dict], port: int = 0,
               headers_seen: list[dict[str, str]] | None = None) -> ThreadingHTTPServer:
    """Answer every POST with ``respond(path, body)`` as JSON, on 127.0.0.1:``port``, in a thread
    (each request's headers appended to ``headers_seen`` when given)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if headers_seen is not None:
                headers_seen.append(dict(self.headers))
            data = json.dumps(respond(self.path, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
