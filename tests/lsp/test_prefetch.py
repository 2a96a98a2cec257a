"""``repocomplete/cursor``: the prompt where the cursor lands is processed before anything is typed,
over stdio against a real language server (fake backend, which counts the prompts it prefilled).

Notifications are handled in the order they arrive, so a ``debugStats`` request right after one
sees whether it started a prefetch (``prefetches_started``); the prefetch itself runs in the
background and is waited for."""

from __future__ import annotations

from tests.processes import wait_for

SOURCE = "import os\n\n\ndef join(a, b):\n    return os.path.join(a, b)\n\n\ndef split(path):\n    \n"
URI = "file:///work/prefetch_example.py"


def cursor(lsp, line: int, character: int, uri: str = URI) -> dict:
    """Send the cursor notification; the stats right after it."""
    lsp.notify("repocomplete/cursor", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
    return lsp.stats()


def loaded(lsp) -> None:
    wait_for(lambda: lsp.stats()["backend_prefills"] is not None, 60, "the engine to load")


def test_the_prompt_at_the_cursor_is_processed_before_the_first_keystroke(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 0})
    lsp.open(URI, SOURCE)
    loaded(lsp)
    assert cursor(lsp, 8, 4)["prefetches_started"] == 1
    wait_for(lambda: lsp.stats()["prefetches"] == 1, 30, "the prompt at the cursor to be prefilled")
    assert lsp.inline(URI, 8, 4)["items"]
    stats = lsp.stats()
    assert stats["backend_prefills"] == 1 and stats["model_calls"] == 1  # a prefetch is not a completion
    # where a completion is already shown there is nothing to prepare; a new place is prefilled
    assert cursor(lsp, 8, 4)["prefetches_started"] == 1
    assert cursor(lsp, 4, 11)["prefetches_started"] == 2
    wait_for(lambda: lsp.stats()["backend_prefills"] == 2, 30, "the second cursor's prompt")
    assert lsp.shutdown_and_exit() == 0


def test_prefetch_can_be_turned_off_and_bad_notifications_are_ignored(spawn_lsp):
    lsp = spawn_lsp()
    lsp.initialize({"backend": "fake", "debounceMs": 0, "prefetch": False})
    lsp.open(URI, SOURCE)
    loaded(lsp)
    assert cursor(lsp, 8, 4)["prefetches_started"] == 0
    lsp.notify("workspace/didChangeConfiguration", {"settings": {"prefetch": True}})
    for bad in (None, {}, {"position": "here"}, {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}},
                {"textDocument": {"uri": 7}, "position": {"line": 0, "character": 0}}):
        lsp.notify("repocomplete/cursor", bad)
    assert cursor(lsp, 0, 0, uri="file:///work/never_opened.py")["prefetches_started"] == 0
    assert cursor(lsp, 4, 11)["prefetches_started"] == 1
    wait_for(lambda: lsp.stats()["backend_prefills"] == 1, 30, "the prompt after prefetch was turned on")
    assert lsp.shutdown_and_exit() == 0
