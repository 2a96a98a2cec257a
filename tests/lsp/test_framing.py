"""Golden cases of :mod:`lsp.framing`: bodies out of a real pipe, wrong Content-Lengths included."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from lsp.framing import FrameParser, FrameReader, json_end, next_body_async


def frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def bodies(data: bytes, *, close: bool = True, idle_s: float = 0.05) -> list[bytes | None]:
    """Everything a reader yields from ``data`` written to a pipe (then closed, or left open)."""
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_fd, data), close and os.close(write_fd)))
    writer.start()
    reader, found = FrameReader(read_fd, idle_s=idle_s, max_body=1000), []
    try:
        while True:
            body = reader.next_body()
            found.append(body)
            if body is None or (not close and len(found) == data.count(b"Content-Length")):
                return found
    finally:
        writer.join()
        os.close(read_fd)
        if not close:
            os.close(write_fd)


A, B = b'{"id": 1, "text": "a\\r\\nContent-Length: 5"}', b'{"id": 2}'


@pytest.mark.parametrize(("data", "expected"), [
    (frame(A) + frame(B), [A, B, None]),
    (b"Content-Type: application/vscode-jsonrpc\r\n" + frame(A), [A, None]),   # other headers
    (frame(A, len(A) + 30) + frame(B), [A, B, None]),                          # too long, next frame behind
    (frame(A, len(A) - 4) + frame(B), [A[:-4], B, None]),                      # too short: rest skipped
    (b"garbage\r\n" + frame(B), [B, None]),
    (frame(b"x" * 2000) + frame(B), [b"", B, None]),                           # over max_body
    (frame(A, 3), [A[:3], None]),
])
def test_bodies(data, expected):
    assert bodies(data) == expected
    assert asyncio.run(async_bodies(data)) == expected   # the TCP transport's reader


async def async_bodies(data: bytes) -> list[bytes | None]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser, found = FrameParser(max_body=1000), []
    while True:
        found.append(await next_body_async(reader, parser, idle_s=0.05))
        if found[-1] is None:
            return found


def test_a_body_declared_too_long_is_taken_once_the_client_goes_quiet():
    """The client waits for an answer: nothing more arrives, yet the frame is complete JSON."""
    assert bodies(frame(B, len(B) + 100), close=False) == [B]


def test_json_end():
    assert json_end(b'  {"a": "}"} rest') == 12
    assert json_end(b'{"a": 1') is None and json_end(b"12 ") is None
    assert json_end('{"é": 1}x'.encode()) == len('{"é": 1}'.encode())
