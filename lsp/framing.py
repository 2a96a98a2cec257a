"""LSP base-protocol framing that survives a wrong ``Content-Length``.

pygls reads exactly the declared number of bytes: one frame whose length is too large
swallows the following messages (``shutdown`` included) and then waits forever; one that is
too small leaves the rest of its body in front of the next header, which pygls then never
finds. :class:`FrameParser` (no I/O; driven by :class:`FrameReader` on stdio and by
:func:`next_body_async` on TCP) resynchronises on the next ``Content-Length`` header instead:

- bytes before a header that are not one (the tail of a frame declared too short, noise)
  are skipped, with a warning; the truncated body itself fails to parse and is answered
  with a Parse error by the caller;
- a body declared too long is cut where a complete JSON value ends when the next header
  follows it, or, when nothing more arrives for ``idle_s``, when only whitespace follows it;
- a frame over ``max_body`` bytes is skipped (the caller answers its empty body with a
  Parse error) and reading resumes at the next header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select

log = logging.getLogger(__name__)

# Spelled without (?i): a pattern with a literal-ish start is searched much faster.
_LENGTH = re.compile(rb"[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh][ \t]*:[ \t]*(\d+)[ \t]*\r\n")
#: What may lie between a JSON body and the next Content-Length: whitespace, other headers.
_BETWEEN = re.compile(rb"\s*(?:[A-Za-z][A-Za-z0-9-]*[ \t]*:[^\r\n]*\r\n)*")
_READ_SIZE = 1 << 20


def json_end(data: bytes | bytearray) -> int | None:
    """Byte offset just past the JSON object or array at the start of ``data`` (after leading
    whitespace), or None when ``data`` does not start with a complete one."""
    stripped = len(data) - len(data.lstrip())
    if data[stripped:stripped + 1] not in (b"{", b"["):
        return None
    try:
        text = bytes(data[stripped:]).decode("utf-8")
    except UnicodeDecodeError as exc:
        text = bytes(data[stripped:stripped + exc.start]).decode("utf-8")
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return stripped + len(text[:end].encode("utf-8"))


class FrameParser:
    """The framing rules without I/O: :meth:`feed` bytes, take bodies with :meth:`next_body`."""

    def __init__(self, *, max_body: int = 256 << 20) -> None:
        self._buffer = bytearray()
        self.max_body = max_body
        #: (body start, declared length) of the frame being read, once its header is complete.
        self._frame: tuple[int, int] | None = None
        self._scanned = 0   # the next header is looked for only in bytes not searched yet

    @property
    def in_body(self) -> bool:
        """True while a frame's body is incomplete (when silence means "declared too long")."""
        return self._frame is not None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_body(self, *, idle: bool = False) -> bytes | None:
        """The next message body, or None until more bytes are fed. ``idle``: nothing has
        arrived for a while, so a complete JSON value is taken even if declared longer."""
        while self._frame is None:
            header = _LENGTH.search(self._buffer)
            end = -1 if header is None else self._buffer.find(b"\r\n\r\n", header.end() - 2)
            if end < 0:
                if header is None and len(self._buffer) > 4096:
                    self._skip(len(self._buffer) - 64)   # noise: keep what may start a header
                return None
            if self._buffer[: header.start()].strip():
                self._skip(header.start())
                continue
            start, length = end + 4, int(header.group(1))
            if length > self.max_body:
                log.warning("skipping a frame of %d bytes (over %d)", length, self.max_body)
                del self._buffer[:start]
                return b""
            self._frame, self._scanned = (start, length), start
        start, length = self._frame
        complete = len(self._buffer) - start >= length
        cut = self._cut_before_next_header(start, self._scanned, start + length if complete else None)
        if cut is not None:
            return self._take(start, cut, "shorter than its Content-Length; the next frame follows it")
        if complete:
            return self._take(start, length, None)
        self._scanned = max(start, len(self._buffer) - 64)
        if idle:
            available = self._buffer[start:]
            end = json_end(available)
            if end is not None and not available[end:].strip():
                return self._take(start, len(available), "shorter than its Content-Length")
        return None

    def _skip(self, count: int) -> None:
        log.warning("skipped %d bytes that are not an LSP frame (wrong Content-Length before?)", count)
        del self._buffer[:count]

    def _cut_before_next_header(self, start: int, scan_from: int, stop: int | None) -> int | None:
        """Where the body at ``start`` ends, when a complete JSON value is followed by a header
        (a raw CR LF, hence a header, cannot occur inside a JSON string)."""
        header = _LENGTH.search(self._buffer, scan_from, len(self._buffer) if stop is None else stop)
        if header is None:
            return None
        data = self._buffer[start:header.start()]
        end = json_end(data)
        if end is None or _BETWEEN.fullmatch(data, end) is None:
            return None
        return end

    def _take(self, start: int, size: int, why: str | None) -> bytes:
        if why is not None:
            log.warning("a frame's body was %s: resynchronised", why)
        body = bytes(self._buffer[start:start + size])
        del self._buffer[:start + size]
        self._frame = None
        return body


class FrameReader:
    """Message bodies from a file descriptor (stdio), read in a thread."""

    def __init__(self, fd: int, *, max_body: int = 256 << 20, idle_s: float = 0.25) -> None:
        self._fd = fd
        self._parser = FrameParser(max_body=max_body)
        self.idle_s = idle_s

    def next_body(self) -> bytes | None:
        """The next message body; None at the end of input."""
        while True:
            body = self._parser.next_body()
            if body is not None:
                return body
            if self._parser.in_body and not select.select([self._fd], [], [], self.idle_s)[0]:
                body = self._parser.next_body(idle=True)
                if body is not None:
                    return body
            chunk = os.read(self._fd, _READ_SIZE)
            if not chunk:
                return self._parser.next_body(idle=True) if self._parser.in_body else None
            self._parser.feed(chunk)


async def next_body_async(reader: asyncio.StreamReader, parser: FrameParser, idle_s: float = 0.25) -> bytes | None:
    """:meth:`FrameReader.next_body` for an asyncio stream (the TCP transport)."""
    while True:
        body = parser.next_body()
        if body is not None:
            return body
        try:
            chunk = await asyncio.wait_for(reader.read(_READ_SIZE), idle_s) if parser.in_body else await reader.read(_READ_SIZE)
        except asyncio.TimeoutError:
            body = parser.next_body(idle=True)
            if body is not None:
                return body
            chunk = await reader.read(_READ_SIZE)
        if not chunk:
            return parser.next_body(idle=True) if parser.in_body else None
        parser.feed(chunk)
