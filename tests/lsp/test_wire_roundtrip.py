"""A request from the language server reaches the engine field for field, in server mode
(over real HTTP, through `repocomplete serve`'s app under uvicorn) as in-process."""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time

import uvicorn

from lsp.clients import HttpClient, InProcessClient
from lsp.settings import Settings
from repocomplete.backends.fake import FakeBackend
from repocomplete.engine import Engine
from server.app import create_app
from server.settings import ServerSettings
from tests.processes import timeout
from tests.repocomplete.test_wire import full_request, wire_fields


ADMIN = "admin-token-for-the-test"


class RecordingEngine(Engine):
    """The real engine, remembering every request it is handed."""

    def __init__(self, adapter_dir) -> None:
        super().__init__(FakeBackend("done\n"))
        self.backend.load_adapter("lora", str(adapter_dir))  # the request names adapter "lora"
        self.received = []

    def complete(self, request):
        self.received.append(copy.copy(request))
        return super().complete(request)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served(engine: Engine, tmp_path):
    settings = ServerSettings(port=_free_port(), events_db=str(tmp_path / "events.sqlite"), log_level="warning",
                              admin_tokens=[ADMIN])  # debug output (the prompt) needs an admin token
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine), port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout(30)
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return server, thread, settings.url


def test_server_mode_hands_the_engine_what_in_process_mode_does(tmp_path):
    sent = full_request()
    sent.workspace = None  # no workspace is registered on either side
    sent.sources = ["client"]
    sent.debug_options.disable_retrieval = False

    remote = RecordingEngine(tmp_path)
    server, thread, url = _served(remote, tmp_path)
    try:
        async def over_http():
            client = HttpClient(url, token=ADMIN)
            try:
                return await client.complete(copy.deepcopy(sent))
            finally:
                await client.close()

        http_result = asyncio.run(over_http())
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()

    local = RecordingEngine(tmp_path)
    in_process = InProcessClient(Settings(), None, lambda state, message: None, events_path=tmp_path / "ev.sqlite")
    in_process._engine.set_result(local)  # the engine it would load, already built
    in_process._started = True
    local_result = asyncio.run(in_process.complete(copy.deepcopy(sent)))

    assert len(remote.received) == len(local.received) == 1
    assert wire_fields(remote.received[0]) == wire_fields(local.received[0]) == wire_fields(sent)
    # and the answer comes back the same way: choices, prompt and packed snippets
    assert [c.text for c in http_result.choices] == [c.text for c in local_result.choices]
    assert http_result.prompt == local_result.prompt and http_result.prompt
    assert [(s.filepath, s.body) for s in http_result.snippets] == [(s.filepath, s.body) for s in local_result.snippets]
    assert http_result.snippets
