"""Unit tests of the language server's pure parts: cache, debounce, settings, items, events."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from lsprotocol import types

from lsp.cache import CompletionCache
from lsp.converters import ACCEPT_COMMAND, UTF16, lsp_completion_list, lsp_inline_completion_list, lsp_word_before
from lsp.debounce import Debouncer
from lsp.events import completion_event
from repocomplete.events import EventStore
from lsp.__main__ import _flag_options, _parser
from lsp.settings import OPTION_NAMES, Settings
from repocomplete.config import EngineConfig, field_choices
from repocomplete.errors import ConfigError
from repocomplete.types import CompletionRequest


def test_cache_exact_and_typing_through():
    cache = CompletionCache()
    cache.put("def f():\n    ret", "\n", "urn value", "c1")
    assert cache.get("def f():\n    ret", "\n").text == "urn value"
    hit = cache.get("def f():\n    retur", "\n")
    assert (hit.text, hit.typed, hit.entry.completion_id) == ("n value", 2, "c1")
    assert cache.get("def f():\n    retx", "\n") is None  # typed something else
    assert cache.get("def f():\n    retur", "x\n") is None  # the suffix changed
    assert cache.get("def f():\n    return value", "\n") is None  # typed it all: ask again
    assert (cache.hits, cache.misses) == (2, 3)


def test_cache_evicts_least_recently_used():
    cache = CompletionCache(capacity=2)
    cache.put("a", "", "1", "c1")
    cache.put("b", "", "2", "c2")
    cache.get("a", "")
    cache.put("c", "", "3", "c3")
    assert cache.get("b", "") is None and cache.get("a", "") is not None and len(cache) == 2


def test_debounce_only_the_newest_request_proceeds():
    async def burst():
        debouncer = Debouncer(0.02)
        results = await asyncio.gather(*(debouncer.wait("doc") for _ in range(5)), debouncer.wait("other"))
        return results, debouncer.superseded

    results, superseded = asyncio.run(burst())
    assert results == [False, False, False, False, True, True] and superseded == 4


def test_settings_overlay_nested_and_validation():
    base = Settings.from_options({"repocomplete": {"serverUrl": "http://h:1/", "debounceMs": 10, "unknownKey": 1}})
    assert base.server_url == "http://h:1" and base.debounce_ms == 10
    changed = Settings.from_options({"languages": {"markdown": False}, "maxTokens": 32}, base=base)
    assert changed.server_url == "http://h:1" and changed.max_tokens == 32
    assert changed.enabled_for("python") and not changed.enabled_for("markdown")
    assert not Settings.from_options({"enable": False}).enabled_for("python")
    assert not Settings.from_options({"languages": {"*": False, "python": True}}).enabled_for("go")
    with pytest.raises(ConfigError):
        Settings.from_options({"debounceMs": "fast"})
    with pytest.raises(ConfigError):
        Settings.from_options({"mode": "paragraph"})
    with pytest.raises(ConfigError, match="backend must be one of transformers"):
        Settings.from_options({"backend": "llama"})


def test_settings_state_the_engines_defaults_once():
    """What the engine defines (request defaults, backend names, model help) the settings take from it."""
    defaults, request = Settings(), CompletionRequest(segments=None)  # type: ignore[arg-type]
    assert (defaults.max_tokens, defaults.mode) == (request.max_tokens, request.mode)
    for name in field_choices(EngineConfig, "backend") or ():
        assert Settings.from_options({"backend": name}).backend == name
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(Settings)}
    engine = {f.name: f.metadata["help"] for f in dataclasses.fields(EngineConfig)}
    assert engine["model"] in helps["model"] and engine["backend"] in helps["backend"]
    assert all(helps.values()), "every editor setting has help text (docs/configuration.md shows it)"


def test_lsp_flags_come_from_the_settings_fields():
    parser = _parser()
    help_text = " ".join(parser.format_help().split())
    assert f"ms (default: {Settings().debounce_ms})" in help_text and "--adapter ADAPTER LoRA adapter per request" in help_text
    args = parser.parse_args(["--server-url", "http://h:2/", "--debounce-ms", "5", "--backend", "fake"])
    options = _flag_options(args)
    assert options == {"serverUrl": "http://h:2/", "debounceMs": 5, "backend": "fake"}
    assert Settings.from_options(options) == Settings(server_url="http://h:2", debounce_ms=5, backend="fake")
    assert _flag_options(parser.parse_args([])) == {}


def test_vscode_manifest_defaults_match_the_settings():
    """The extension's package.json restates the defaults (VS Code reads only JSON); they must agree."""
    manifest = json.loads((Path(__file__).resolve().parents[2] / "extension" / "package.json").read_text())
    properties = manifest["contributes"]["configuration"]["properties"]
    defaults = Settings()
    checked = 0
    for key, spec in properties.items():
        name = OPTION_NAMES.get(key.removeprefix("repocomplete."))
        if name is None:
            continue  # an extension-only setting (pythonPath)
        ours = getattr(defaults, name)
        assert spec["default"] == ("" if ours is None else ours), key
        checked += 1
    assert checked >= 5


def test_inline_item_inserts_at_the_cursor_and_carries_the_accept_command():
    position = types.Position(line=3, character=7)
    result = lsp_inline_completion_list("urn x", position, {"completion_id": "c1"})
    (item,) = result.items
    assert item.insert_text == "urn x" and item.range.start == item.range.end == position
    assert item.command.command == ACCEPT_COMMAND and item.command.arguments == [{"completion_id": "c1"}]
    assert lsp_inline_completion_list("", position, {}).items == []


def test_completion_fallback_replaces_the_word_so_clients_do_not_filter_it_out():
    result = lsp_completion_list("urn value\nmore", "    ret", types.Position(line=0, character=7), UTF16, {"completion_id": "c"})
    (item,) = result.items
    assert item.text_edit.new_text == "return value\nmore" and item.filter_text.startswith("ret")
    assert item.text_edit.range.start.character == 4 and item.label == "return value"
    assert result.is_incomplete
    assert lsp_word_before("a.b_c1") == "b_c1" and lsp_word_before("x(") == ""


def test_events_go_to_the_shared_sqlite_store(tmp_path):
    log = EventStore(tmp_path / "sub" / "events.sqlite")
    event = completion_event("select", {"completion_id": "c9", "accepted_chars": 5, "shown_at": 100.0}, now=100.25)
    log.add(event)
    log.add(completion_event("dismiss", {"completion_id": "c9"}))
    rows = log.recent()[::-1]
    assert [r["type"] for r in rows] == ["select", "dismiss"]
    assert rows[0]["elapsed_ms"] == 250.0 and rows[0]["accepted_chars"] == 5 and rows[1]["accepted_chars"] == 0
    with pytest.raises(ValueError):
        completion_event("explode", {})


def test_the_text_sent_is_the_prompts_cut_bounded_by_the_limit():
    from lsp.service import _trim_prefix, _trim_suffix

    assert _trim_prefix("aaaa\nbb\ncc", 6) == "bb\ncc" and _trim_prefix("short", 99) == "short"
    assert _trim_prefix("x" * 10, 4) == "xxxx"  # one long line: still at most the limit
    assert _trim_suffix("ab\ncd\nef", 5) == "ab\n" and _trim_suffix("y" * 10, 4) == "yyyy"
