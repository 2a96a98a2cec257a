"""The language server's ``adapter`` setting, in-process and in server mode (issue 23.3).

A real ``repocomplete lsp`` process on the tiny model: each adapter (and none) gives its own
greedy completion at the same cursor, and switching the setting while running never answers
from the completion cache of the previous adapter.
"""

from __future__ import annotations

import pytest

from tests.lsp.conftest import fake_env
from tests.server.test_adapters_served import adapters, served  # noqa: F401 - module fixtures: the tiny base + 2 LoRAs

SOURCE = "".join(f"value_{i} = compute({i})\n" for i in range(12)) + "def total(values):\n    "
URI = "file:///proj/calc.py"
LINE, COLUMN = 12, 4


def complete(lsp) -> str:
    result = lsp.inline(URI, LINE, COLUMN, timeout=120)
    assert result and result["items"], result
    return result["items"][0]["insertText"]


def switch(lsp, adapter: str | None) -> None:
    lsp.notify("workspace/didChangeConfiguration", {"settings": {"repocomplete": {"adapter": adapter}}})


def texts_per_adapter(lsp, settings: dict[str, str | None]) -> dict[str | None, str]:
    """The completion at the cursor under each ``adapter`` setting, switched in one process."""
    texts = {}
    for label, setting in settings.items():
        switch(lsp, setting)
        texts[label] = complete(lsp)
    return texts


def test_in_process_adapter_setting(spawn_lsp, tiny_model_dir, adapters, tmp_path):  # noqa: F811
    lsp = spawn_lsp(env=fake_env(tmp_path / "cache"))
    lsp.initialize({"backend": "transformers", "model": str(tiny_model_dir), "index": False, "debounceMs": 0,
                    "adapter": f"one={adapters['one']}"})
    lsp.open(URI, SOURCE)
    first = complete(lsp)
    texts = texts_per_adapter(lsp, {"two": f"two={adapters['two']}", None: None, "one": f"one={adapters['one']}",
                                    "two by path": str(adapters["two"])})
    assert texts["one"] == first
    assert len({texts["one"], texts["two"], texts[None]}) == 3, texts
    assert texts["two by path"] == texts["two"]
    assert lsp.shutdown_and_exit() == 0


def test_server_mode_adapter_setting(spawn_lsp, served, tmp_path):  # noqa: F811
    lsp = spawn_lsp("--server-url", served.url, env=fake_env(tmp_path / "cache"))
    lsp.initialize({"debounceMs": 0})
    lsp.open(URI, SOURCE)
    texts = texts_per_adapter(lsp, {None: None, "one": "one", "two": "two", "one again": "one", "base again": None})
    assert len({texts[None], texts["one"], texts["two"]}) == 3, texts
    assert texts["one again"] == texts["one"] and texts["base again"] == texts[None]
    assert lsp.shutdown_and_exit() == 0
