"""Connection-level limits uvicorn lacks: a header deadline, a header size cap, a connection cap.

uvicorn times out only *idle* keep-alive connections, and any byte cancels that timer, so a
client sending one header byte every few seconds holds its connection (and a file
descriptor) forever; a few hundred such clients exhaust the descriptors and nothing,
``/v1/health`` included, gets in (issue 21.9). The protocol class built by
:func:`guarded_protocol` wraps uvicorn's own (httptools or h11) and adds:

- a header deadline: a request's headers must be complete ``header_timeout_s`` after the
  connection opened or the previous response ended, else the connection is closed;
- a header size cap (:data:`MAX_HEADER_BYTES`) for the bytes received before the headers end;
- a connection cap: past ``max_connections``, the connection that has waited longest for its
  headers is closed to make room (a slow client loses its place, a new one gets in); when
  every connection is busy with a request, the new one is answered 503 and closed.

The body has its own deadline, enforced per request by :class:`server.limits.BodyLimit`.
"""

from __future__ import annotations

import json
import logging
import resource
import time

log = logging.getLogger("repocomplete.server")

#: Bytes a client may send before its request headers end (h11's default limit is 16 KiB).
MAX_HEADER_BYTES = 64 * 1024
#: Descriptors kept free for the model, the index and logs when the cap follows the open-file limit.
FD_RESERVE = 64

_BUSY_BODY = json.dumps({"error": {"type": "unavailable", "message": "too many connections; retry later",
                                   "code": "unavailable", "param": None}}).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
         b"retry-after: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


def connection_cap(requested: int) -> int:
    """``requested``, lowered to what the process's open-file limit can hold."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(8, min(requested, soft - FD_RESERVE))


def guarded_protocol(base: type, *, header_timeout_s: float, max_connections: int) -> type:
    """A subclass of uvicorn's HTTP protocol ``base`` with the limits above."""

    class GuardedHttpProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer = None
        #: The request cycle that was current when the wait for headers began.
        _waiting_after = None
        _waiting_since = 0.0
        _header_bytes = 0

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()
            if len(self.connections) > max_connections:
                self._make_room()

        def data_received(self, data: bytes) -> None:
            waiting = self._header_timer is not None
            if waiting:
                self._header_bytes += len(data)
            super().data_received(data)
            if waiting and self.cycle is not self._waiting_after:
                self._stop_waiting()  # the headers are complete: a request has started
            elif waiting and self._header_bytes > MAX_HEADER_BYTES:
                log.warning("closing a connection whose request headers exceed %d bytes", MAX_HEADER_BYTES)
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._await_headers()  # the next request's headers must come in time too

        def connection_lost(self, exc) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._stop_waiting()
            self._waiting_after, self._waiting_since, self._header_bytes = self.cycle, time.monotonic(), 0
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_late)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing() and self.cycle is self._waiting_after:
                self.transport.close()

        def _make_room(self) -> None:
            waiting = [c for c in self.connections if getattr(c, "_header_timer", None) is not None and c is not self]
            if waiting:
                oldest = min(waiting, key=lambda c: c._waiting_since)
                oldest._stop_waiting()
                oldest.transport.close()
            else:  # every other connection is serving a request: this one waits its turn elsewhere
                self._stop_waiting()
                self.transport.write(_BUSY)
                self.transport.close()

    GuardedHttpProtocol.__name__ = GuardedHttpProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedHttpProtocol


def uvicorn_options(settings) -> dict:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that apply these limits."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return {
        "http": guarded_protocol(AutoHTTPProtocol, header_timeout_s=settings.header_timeout_s,
                                 max_connections=connection_cap(settings.max_connections)),
        "timeout_keep_alive": max(1, round(min(settings.header_timeout_s, 5.0))),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
