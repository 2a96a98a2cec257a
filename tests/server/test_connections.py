"""Connection-level attacks on a real server process: slow clients (issue 21.9), big bodies (21.17).

Every socket a test opens is closed in ``finally``; every test stops by itself within its
(scaled) deadline.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.processes import timeout

SLOW_SOCKETS = 40
#: The request line and first header a slow client sends before dripping the rest.
HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed (or reset) ``sock``; never blocks."""
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return sock.recv(65536) == b""
    except OSError:
        return True


def health_ok(url: str) -> float:
    """Seconds a fresh connection takes to get a 200 from /v1/health."""
    started = time.monotonic()
    assert httpx.get(f"{url}/v1/health", timeout=timeout(5)).status_code == 200
    return time.monotonic() - started


def test_slow_header_clients_are_dropped_and_health_keeps_answering(serve):
    """21.9 as written, bounded: clients that send a header byte at a time never finish their headers."""
    served = serve("--header-timeout", "2", "--max-connections", "30")
    host, port = address(served.url)
    sockets: list[socket.socket] = []
    try:
        for _ in range(SLOW_SOCKETS):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(HEAD)
            sockets.append(sock)
        # Past the cap (30) the longest-waiting slow clients made room: health gets in at once.
        assert health_ok(served.url) < timeout(1.5)
        deadline = time.monotonic() + timeout(2 + 6)
        open_ = list(sockets)
        while open_ and time.monotonic() < deadline:
            for sock in list(open_):
                if closed_by_server(sock):
                    open_.remove(sock)
                    continue
                try:
                    sock.send(b"X")  # one more header byte: keeps uvicorn's own idle timer from firing
                except OSError:
                    open_.remove(sock)
            assert health_ok(served.url) < timeout(1.5)
            time.sleep(0.2)
        assert not open_, f"{len(open_)} slow connections still open after the header deadline"
    finally:
        for sock in sockets:
            sock.close()
    assert health_ok(served.url) < timeout(1.5)


def test_a_slow_keep_alive_client_is_dropped_after_its_response(serve):
    """The deadline holds for the next request on a kept-alive connection too."""
    served = serve("--header-timeout", "2")
    host, port = address(served.url)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(HEAD)
        deadline, closed = time.monotonic() + timeout(2 + 6), False
        while not closed and time.monotonic() < deadline:
            try:
                sock.send(b"X")  # resets uvicorn's keep-alive timer: only the header deadline can end this
                closed = closed_by_server(sock)
            except OSError:
                closed = True
            time.sleep(0.3)
        assert closed, "a kept-alive connection dripping header bytes stayed open past the header deadline"


def test_a_body_that_does_not_arrive_in_time_is_408(serve):
    served = serve("--body-timeout", "1")
    host, port = address(served.url)
    with socket.create_connection((host, port), timeout=timeout(10)) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"segments\": ")
        started = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert time.monotonic() - started < timeout(5)


def test_a_too_large_body_gets_its_413_not_a_reset(serve):
    """21.17 as written: a 6 MB body from an ordinary client (http.client, as urllib and requests use)."""
    served = serve()
    host, port = address(served.url)
    body = json.dumps({"segments": {"prefix": "x" * 6_000_000}}).encode()
    connection = http.client.HTTPConnection(host, port, timeout=timeout(30))
    try:
        connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert payload["error"]["type"] == "request_too_large"
    assert health_ok(served.url) < timeout(1.5)


def test_expect_100_continue_gets_the_413_without_sending_the_body(serve):
    served = serve()
    host, port = address(served.url)
    with socket.create_connection((host, port), timeout=timeout(10)) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 6000000\r\nExpect: 100-continue\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"100 Continue" not in reply


def test_the_guard_wraps_the_h11_protocol_too():
    """Where httptools is missing uvicorn speaks h11: the header deadline holds there as well."""
    import threading

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from server.connections import guarded_protocol
    from tests.server.conftest import free_port

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off",
                                           http=guarded_protocol(H11Protocol, header_timeout_s=1, max_connections=50)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout(10)
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(HEAD)
            deadline, closed = time.monotonic() + timeout(6), False
            while not closed and time.monotonic() < deadline:
                try:
                    sock.send(b"X")
                    closed = closed_by_server(sock)
                except OSError:
                    closed = True
                time.sleep(0.2)
            assert closed
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=timeout(5)).text == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout(10))
