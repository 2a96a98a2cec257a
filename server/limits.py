"""Load and fault limits: body size, bounded concurrency + queue, timeouts, disconnects.

Generation is blocking (torch), so it runs on a dedicated thread pool sized to the
concurrency limit; the event loop only waits on futures and keeps answering health
and metrics. A slot is released when the generation *thread* ends, not when the client
gives up, so abandoned work still counts against the limit until it has stopped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from repocomplete.errors import CancelledError, OverloadedError, RequestTooLargeError
from server.errors import BodyTimeoutError, QueueTimeoutError, RequestTimeoutError, domain_error_response

T = TypeVar("T")
_END = object()


class BodyLimit:
    """ASGI middleware: a request body within ``max_bytes`` and ``timeout_s``, before any route parses it.

    Too large: 413. The body is read and dropped first (up to :data:`DRAIN_BYTES`, within the
    deadline), so an ordinary client that sends its whole body before reading the answer gets
    the 413 instead of a connection reset; a client that sent ``Expect: 100-continue`` is
    answered at once and never asked for the body. Too slow: 408. Either way the connection
    is then closed.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        declared = int(length) if length.isdigit() else 0
        deadline = time.monotonic() + self.timeout_s
        if declared > self.max_bytes:
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await _drain(receive, deadline)
            await self._refuse(self._too_large(), scope, receive, send)
            return
        # Buffer the (small, JSON) body so chunked uploads are bounded too, then replay it;
        # later receive() calls go straight through so disconnects are still seen.
        chunks, size = [], 0
        while True:
            message = await _receive_by(receive, deadline)
            if message is None:
                await self._refuse(BodyTimeoutError(f"request body not received within {self.timeout_s:g} s"),
                                   scope, receive, send)
                return
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, deadline)
                await self._refuse(self._too_large(), scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> RequestTooLargeError:
        return RequestTooLargeError(f"request body over the {self.max_bytes}-byte limit")

    @staticmethod
    async def _refuse(error, scope: Scope, receive: Receive, send: Send) -> None:
        response = domain_error_response(error)
        response.headers["Connection"] = "close"  # the rest of the body (if any) is not read
        await response(scope, receive, send)


#: Most bytes of a too-large body read and dropped before the 413 (more: the connection is closed).
DRAIN_BYTES = 64 * 1024 * 1024


async def _receive_by(receive: Receive, deadline: float) -> Message | None:
    """The next ASGI message, or None when the deadline passes first."""
    try:
        return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return None


async def _drain(receive: Receive, deadline: float) -> None:
    """Read and drop the rest of a body, up to :data:`DRAIN_BYTES` and the deadline."""
    dropped = 0
    while dropped <= DRAIN_BYTES:
        message = await _receive_by(receive, deadline)
        if message is None or message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client has gone (the request body must already be consumed)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def check_prompt_size(texts: list[str], max_chars: int) -> None:
    """413 when the text a client sends for the prompt exceeds ``max_chars`` in total."""
    total = sum(len(t) for t in texts)
    if total > max_chars:
        raise RequestTooLargeError(f"prompt text is {total} characters; the limit is {max_chars}")


class Limiter:
    """Admission control and cancellable execution of blocking generation calls."""

    def __init__(self, *, max_concurrency: int, max_queue: int, timeout_s: float) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.max_queue = max(0, max_queue)
        self.timeout_s = timeout_s
        self.executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="repocomplete-generate")
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._free = asyncio.Event()
        self.waiting = 0
        self.running = 0
        #: Moving average of a generation's duration, for Retry-After.
        self.mean_s = 1.0
        #: Called with the reason whenever a running generation is told to stop.
        self.on_cancel: Callable[[str], None] = lambda reason: None
        #: Stop events of running ahead-of-time work (:meth:`prefetch`): set by every request that asks for a slot.
        self._prefetching: set[threading.Event] = set()

    def retry_after_s(self) -> float:
        return max(1.0, self.mean_s * (self.waiting + 1) / self.max_concurrency)

    def deadline(self) -> float:
        return time.monotonic() + self.timeout_s

    async def acquire(self, deadline: float) -> None:
        """Take a slot, waiting in the bounded queue; 429 when it is full, 503 past the deadline.
        Running ahead-of-time work is told to stop first: a request never waits behind it."""
        for stop in self._prefetching:
            stop.set()
        if self._slots.acquire(blocking=False):
            self.running += 1
            return
        if self.waiting >= self.max_queue:
            raise OverloadedError(
                f"server busy: {self.running} running, {self.waiting} queued; retry later",
                retry_after_s=self.retry_after_s(),
            )
        self.waiting += 1
        try:
            while not self._slots.acquire(blocking=False):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueueTimeoutError("timed out waiting for a free generation slot", self.retry_after_s())
                self._free.clear()
                try:
                    await asyncio.wait_for(self._free.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self.waiting -= 1
        self.running += 1

    def _release(self, started: float) -> None:
        self.running -= 1
        self.mean_s = 0.8 * self.mean_s + 0.2 * (time.monotonic() - started)
        self._slots.release()
        self._free.set()

    def _submit(self, fn: Callable[..., T], *args) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _release_when_done(self, future: asyncio.Future | None, started: float) -> None:
        if future is None or future.done():
            self._release(started)
        else:  # abandoned work: the slot frees when the thread really stops
            future.add_done_callback(lambda f: (f.cancelled() or f.exception(), self._release(started)))

    def _stop(self, cancel: threading.Event, reason: str) -> None:
        if not cancel.is_set():
            cancel.set()
            self.on_cancel(reason)

    async def call(self, fn: Callable[[], T], *, cancel: threading.Event, receive: Receive, deadline: float) -> T:
        """Run blocking ``fn`` in a slot; stop it on client disconnect (499) or deadline (504)."""
        await self.acquire(deadline)
        return await self._run(fn, cancel, receive, deadline)

    async def prefetch(self, fn: Callable[[], T], *, cancel: threading.Event, receive: Receive,
                       deadline: float) -> T | None:
        """Run blocking ahead-of-time ``fn`` only in a slot free now (None when there is none or a
        request is queued: such work never queues); any request that asks for a slot meanwhile sets
        ``cancel``, and ``fn`` is expected to return soon after with what it did."""
        if self.waiting or not self._slots.acquire(blocking=False):
            return None
        self.running += 1
        self._prefetching.add(cancel)
        try:
            return await self._run(fn, cancel, receive, deadline)
        finally:
            self._prefetching.discard(cancel)

    async def _run(self, fn: Callable[[], T], cancel: threading.Event, receive: Receive, deadline: float) -> T:
        """``fn`` in the slot just taken (released when its thread stops)."""
        started = time.monotonic()
        future = self._submit(fn)
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            done, _ = await asyncio.wait(
                {future, watcher}, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
            self._release_when_done(future, started)
        if future in done:
            return future.result()
        if watcher in done:
            self._stop(cancel, "disconnect")
            raise CancelledError("client disconnected")
        self._stop(cancel, "timeout")
        raise RequestTimeoutError(f"request took longer than {self.timeout_s:g} s")

    async def iterate(self, make: Callable[[], Iterator[T]], *, cancel: threading.Event, deadline: float) -> AsyncIterator[T]:
        """Admit now, then return an async iterator over blocking ``make()``'s items.

        Leaving the iterator early (client gone, task cancelled) sets ``cancel`` at once;
        the slot is freed when the generating thread has stopped.
        """
        await self.acquire(deadline)
        return self._iterate(make, cancel, deadline, time.monotonic())

    async def _iterate(self, make, cancel, deadline, started) -> AsyncIterator[T]:
        future: asyncio.Future | None = None
        finished, reason = False, "disconnect"  # left early without an error: the consumer went away
        try:
            future = self._submit(make)
            iterator = await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
            while True:
                future = self._submit(next, iterator, _END)
                item = await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
                if item is _END:
                    finished = True
                    return
                yield item
        except TimeoutError:
            self._stop(cancel, "timeout")
            raise RequestTimeoutError(f"request took longer than {self.timeout_s:g} s") from None
        except Exception:
            reason = "error"
            raise
        finally:
            if not finished:
                self._stop(cancel, reason)
            self._release_when_done(future, started)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
