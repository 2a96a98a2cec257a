"""The engine above a fake backend: validation, retrieval wiring, prompt, post-processing, streaming."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from indexer.types import Snippet
from repocomplete.backends.fake import FakeBackend
from repocomplete.config import EngineConfig
from repocomplete.engine import Engine
from repocomplete.errors import (
    AdapterError,
    CancelledError,
    ConfigError,
    InvalidRequestError,
    RequestTooLargeError,
    TemplateMismatchError,
    WorkspaceNotFoundError,
)
from repocomplete.fim import TEMPLATES
from repocomplete.types import ClientSnippet, CompletionRequest, Declaration, DebugOptions, Segments


class StubWorkspace:
    """A workspace with the indexer's interface that returns one fixed snippet and records queries."""

    def __init__(self, root: Path, body: str = "def helper(x):\n    return x * 2\n", fail: bool = False):
        self.root, self.name, self.body, self.fail = root, root.name, body, fail
        self.queries = []

    def retrieve(self, query):
        self.queries.append(query)
        if self.fail:
            raise RuntimeError("index is corrupt")
        return [Snippet(filepath="pkg/helpers.py", body=self.body, source="bm25", score=3.0)]

    def close(self):
        pass


def request(prefix="def f():\n    return ", suffix="\n", **kwargs) -> CompletionRequest:
    filepath = kwargs.pop("filepath", "pkg/mod.py")
    return CompletionRequest(segments=Segments(prefix=prefix, suffix=suffix, filepath=filepath), **kwargs)


def test_complete_returns_postprocessed_text_timings_and_id():
    engine = Engine(FakeBackend("helper(1)\nmore junk\n"))
    result = engine.complete(request(debug_options=DebugOptions(return_prompt=True)))
    assert [c.text for c in result.choices] == ["helper(1)"]  # line mode: rest of the line only
    assert result.id.startswith("cmpl-") and len(result.id) > 10
    assert result.timings.total_ms >= result.timings.generate_ms >= 0
    assert engine.template.name == "repocomplete"
    assert result.prompt.endswith("<|rc:middle|>") and "<|rc:prefix|>def f():" in result.prompt
    assert result.usage.prompt_tokens == len(result.prompt)


def test_ids_are_unique():
    engine = Engine(FakeBackend("x"))
    assert len({engine.complete(request()).id for _ in range(5)}) == 5


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_no_special_token_ever_reaches_the_user(template):
    """A model that emits its sentinels (and other special tokens) mid-text returns none of them.

    Another family's sentinel is plain text to this model (``<s>`` is also HTML), so only
    the model's own special tokens are stopped at.
    """
    every = sorted(TEMPLATES[template].special_tokens | {"<|im_start|>", "<extra_special>"})
    babble = "x = 1" + "".join(f" {t} y" for t in every) + "\n"
    backend = FakeBackend(babble, special_tokens=every)
    engine = Engine(backend, template=template)
    for mode in ("line", "multiline"):
        for stream in (False, True):
            req = request(prefix="def f():\n    ", suffix="", mode=mode, max_tokens=len(babble))
            text = "".join(engine.stream(req)) if stream else engine.complete(req).choices[0].text
            assert text.startswith("x = 1")
            assert not any(t in text for t in every), text


def test_client_declarations_and_snippets_go_into_the_prompt():
    engine = Engine(FakeBackend("1"))
    req = request(debug_options=DebugOptions(return_prompt=True, return_snippets=True))
    req.segments.declarations = [Declaration(filepath="lib/a.py", body="def declared(): ...")]
    req.segments.snippets = [ClientSnippet(filepath="lib/b.py", body="SNIPPET_BODY = 1", score=0.5)]
    result = engine.complete(req)
    assert "<|rc:file|>lib/a.py\ndef declared(): ..." in result.prompt and "SNIPPET_BODY = 1" in result.prompt
    assert {s.source for s in result.snippets} == {"client"}


def test_workspace_retrieval_by_name_path_and_fallbacks(tmp_path):
    engine = Engine(FakeBackend("1"))
    root = tmp_path / "myrepo"
    root.mkdir()
    workspace = StubWorkspace(root)
    assert engine.workspaces.add(workspace) == "myrepo"
    req = request(filepath=str(root / "pkg" / "mod.py"), debug_options=DebugOptions(return_prompt=True))
    prompt = engine.complete(req).prompt
    assert prompt.startswith("<|rc:repo|>myrepo\n<|rc:file|>pkg/helpers.py\ndef helper(x):")
    assert "<|rc:file|>pkg/mod.py\n<|rc:prefix|>" in prompt  # path relative to the root
    assert workspace.queries[-1].filepath == "pkg/mod.py" and workspace.queries[-1].count_tokens("abc") == 3

    req = request(workspace="myrepo", sources=["bm25"], debug_options=DebugOptions(return_snippets=True))
    assert [s.source for s in engine.complete(req).snippets] == ["bm25"]
    assert workspace.queries[-1].sources == ("bm25",)

    with pytest.raises(WorkspaceNotFoundError, match="myrepo"):
        engine.complete(request(workspace="other"))
    disabled = request(workspace="myrepo", debug_options=DebugOptions(disable_retrieval=True, return_snippets=True))
    assert engine.complete(disabled).snippets == []
    outside = request(filepath=str(tmp_path / "elsewhere.py"), debug_options=DebugOptions(return_snippets=True))
    assert engine.complete(outside).snippets == []


def test_retrieval_is_told_the_models_window_not_the_whole_file(tmp_path):
    """A small model's prompt shows only the lines about the cursor: retrieval hears exactly
    that, so the file's own far lines may come back as context (and nearby ones need not)."""
    engine = Engine(FakeBackend("1", context_length=2048))  # one token per character
    root = tmp_path / "myrepo"
    root.mkdir()
    workspace = StubWorkspace(root)
    engine.workspaces.add(workspace)
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(300)) + "total = "
    suffix = "\n" + "".join(f"check({i})\n" for i in range(300))
    result = engine.complete(request(prefix=prefix, suffix=suffix, filepath=str(root / "mod.py"), max_tokens=16,
                                     debug_options=DebugOptions(return_prompt=True)))
    visible = workspace.queries[-1].visible_text
    assert visible == engine.visible_text(prefix, suffix, 16, "mod.py", "myrepo")
    assert "value_299 = compute(299)" in visible and "check(0)" in visible
    assert "value_0 = compute(0)" not in visible and "check(299)" not in visible
    for line in visible.split("\n"):
        assert line in result.prompt      # every line called visible is in the prompt


def test_typing_on_the_same_line_reuses_the_retrieval(tmp_path):
    """Keystrokes within a line neither query the index again nor re-measure the window."""
    engine = Engine(FakeBackend("1"))
    root = tmp_path / "myrepo"
    root.mkdir()
    workspace = StubWorkspace(root)
    engine.workspaces.add(workspace)
    measured = []
    original = engine.visible_text
    engine.visible_text = lambda *args: measured.append(args) or original(*args)
    path = str(root / "mod.py")
    for typed in ("total = ", "total = comp", "total = compute("):
        result = engine.complete(request(prefix="import os\n" + typed, filepath=path,
                                         debug_options=DebugOptions(return_snippets=True)))
        assert [s.filepath for s in result.snippets] == ["pkg/helpers.py"]
    assert len(workspace.queries) == 1 and len(measured) == 1
    engine.complete(request(prefix="import os\ntotal = compute(1)\n", filepath=path))   # a new line
    assert len(workspace.queries) == 2 and len(measured) == 2


def test_a_failing_index_degrades_to_no_context(tmp_path):
    engine = Engine(FakeBackend("ok"))
    engine.workspaces.add(StubWorkspace(tmp_path, fail=True))
    result = engine.complete(request(workspace=tmp_path.name, debug_options=DebugOptions(return_snippets=True)))
    assert result.choices[0].text == "ok" and result.snippets == []


def test_prompt_fits_the_budget_and_the_context_window():
    backend = FakeBackend("1", context_length=600)
    engine = Engine(backend, config=EngineConfig(context_tokens=4000))
    long_prefix = "".join(f"line_{i} = {i}\n" for i in range(500))
    result = engine.complete(request(prefix=long_prefix, max_tokens=100, debug_options=DebugOptions(return_prompt=True)))
    assert len(result.prompt) <= 500 and "line_499 = 499" in result.prompt


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"max_tokens": 0}, InvalidRequestError), ({"max_tokens": 100_000}, InvalidRequestError),
     ({"n": 99}, InvalidRequestError), ({"temperature": -1.0}, InvalidRequestError),
     ({"mode": "paragraph"}, InvalidRequestError), ({"sources": ["telepathy"]}, InvalidRequestError),
     ({"adapter": "nope"}, AdapterError)],
)
def test_invalid_requests(changes, error):
    with pytest.raises(error):
        Engine(FakeBackend("x")).complete(request(**changes))


def test_huge_prompt_is_too_large_and_empty_file_is_fine():
    engine = Engine(FakeBackend("print('hi')\n"), config=EngineConfig(max_input_chars=1000))
    with pytest.raises(RequestTooLargeError):
        engine.complete(request(prefix="x" * 2000))
    assert engine.complete(request(prefix="", suffix="")).choices[0].text == "print('hi')"


@pytest.mark.parametrize(("model_order", "configured", "expected"), [
    (None, "auto", "psm"), ("spm", "auto", "spm"), ("spm", "psm", "psm"), (None, "spm", "spm")])
def test_fim_order_is_the_configured_one_else_the_models_own(model_order, configured, expected):
    backend = FakeBackend("1", fim_order=model_order)
    engine = Engine(backend, template="repocomplete", config=EngineConfig(fim_order=configured))
    engine.complete(request(prefix="def f():\n    return ", suffix="\nprint(f())\n"))
    prompt = backend.requests[-1].prompt
    assert engine.info()["fim_order"] == expected
    suffix_at, prefix_at = prompt.index("<|rc:suffix|>"), prompt.index("<|rc:prefix|>")
    assert (suffix_at < prefix_at) == (expected == "spm")
    if expected == "spm":
        assert prompt.endswith("def f():\n    return <|rc:middle|>")


def test_the_backend_is_told_where_the_cursor_is_in_the_prompt():
    # Copying from context (backends/context_copy.py) matches the text before the cursor, which a
    # PSM prompt does not end with: the engine passes the prefix as the prompt shows it.
    backend = FakeBackend("1")
    engine = Engine(backend, template="repocomplete", config=EngineConfig(fim_order="psm"))
    prefix = "".join(f"line_{i} = {i}\n" for i in range(3000)) + "def f():\n    return "
    engine.complete(request(prefix=prefix, suffix="\nprint(f())\n"))
    sent = backend.requests[-1]
    assert sent.cursor_prefix and prefix.endswith(sent.cursor_prefix) and len(sent.cursor_prefix) < len(prefix)
    assert sent.cursor_prefix in sent.prompt and not sent.prompt.endswith(sent.cursor_prefix + "<|rc:middle|>")
    engine.complete(request(prefix="raw text", debug_options=DebugOptions(raw_prompt=True)))
    assert backend.requests[-1].cursor_prefix is None                   # a raw prompt ends at the cursor


def test_forcing_a_template_the_tokenizer_lacks_is_an_error():
    with pytest.raises(TemplateMismatchError, match="starcoder"):
        Engine(FakeBackend("x"), template="starcoder")


def test_adapters_by_name_and_by_path(tmp_path):
    backend = FakeBackend("base", adapter_texts={"mine": "tuned"})
    backend.load_adapter("mine", str(tmp_path))
    engine = Engine(backend)
    assert engine.complete(request(adapter="mine")).choices[0].text == "tuned"
    assert engine.complete(request()).choices[0].text == "base"
    assert engine.complete(request(adapter=str(tmp_path))).choices[0].text == "base"
    assert str(tmp_path) in engine.info()["adapters"]
    fresh = FakeBackend("base", adapter_texts={"mine": "tuned"})
    fresh.load_adapter("mine", str(tmp_path))
    configured = Engine(fresh, config=EngineConfig(adapters={"mine": str(tmp_path)}))
    assert configured.complete(request(adapter=str(tmp_path) + "/")).choices[0].text == "tuned"
    assert fresh.adapters() == ["mine"]  # found by its path, not loaded twice


def test_n_choices_and_user_stop_strings():
    engine = Engine(FakeBackend("alpha STOP beta"))
    result = engine.complete(request(n=3, stop=["STOP"]))
    assert [c.text for c in result.choices] == ["alpha", "alpha", "alpha"]


def test_stream_concatenates_to_complete():
    text = "if x:\n        y = 1\n        z = 2\n    return y\n"
    engine = Engine(FakeBackend(text))
    req = dict(prefix="def f(x):\n    ", suffix="", mode="multiline", max_tokens=len(text))
    done = []
    deltas = list(engine.stream(request(**req), on_done=lambda timings, usage: done.append((timings, usage))))
    assert len(deltas) > 1 and "".join(deltas) == engine.complete(request(**req)).choices[0].text
    (timings, usage), = done
    assert usage.completion_tokens == len(text)  # the fake backend: one token per character
    assert timings.total_ms >= timings.generate_ms > 0 and usage.prompt_tokens > 0


def test_cancel_stops_generation_and_raises():
    cancel = threading.Event()
    engine = Engine(FakeBackend("abc" * 100, delay_s=0.01))
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    with pytest.raises(CancelledError):
        engine.complete(request(mode="multiline", max_tokens=1000, cancel=cancel))
    assert len(engine.backend.requests) == 1


def test_info_describes_the_model():
    info = Engine(FakeBackend("x")).info()
    assert info["template"] == "repocomplete" and info["backend"]["backend"] == "fake" and info["workspaces"] == []


def test_typing_within_a_line_keeps_the_retrieved_context(tmp_path):
    """Same-line keystrokes reuse the snippets (a stable prompt head keeps the KV cache warm)."""
    engine = Engine(FakeBackend("1"))
    workspace = StubWorkspace(tmp_path)
    engine.workspaces.add(workspace)
    base = "def f():\n    return val"
    for typed in ("", "u", "ue", "ue + 1"):
        engine.complete(request(prefix=base + typed, workspace=tmp_path.name))
    assert len(workspace.queries) == 1
    engine.complete(request(prefix=base + "ue\n    x = ", workspace=tmp_path.name))  # a new line
    engine.complete(request(prefix=base, suffix="\nother\n", workspace=tmp_path.name))  # another suffix
    engine.complete(request(prefix="def g", workspace=tmp_path.name))  # the cursor moved back
    assert len(workspace.queries) == 4


@pytest.mark.parametrize(("info", "budget"), [
    ({"device": "cpu", "parameters": 494_000_000}, 1024),  # a real model on CPU: prefill is the latency
    ({"device": "cpu", "parameters": 7_000_000}, 2048),  # the embedded model: its prompt is cheap
    ({"device": "cuda:0", "parameters": 1_500_000_000}, 2048),
    ({"backend": "openai"}, 2048),  # a remote engine: not our CPU
])
def test_default_prompt_budget(info, budget):
    from repocomplete.engine import default_prompt_budget

    assert default_prompt_budget(info) == budget
    # a model's measured CPU budget (its catalogue entry's) replaces 1024 on CPU only
    assert default_prompt_budget(info, 1280) == (1280 if budget == 1024 else budget)


def test_a_configured_budget_wins_over_the_default():
    backend = FakeBackend("1", context_length=8000)
    long_prefix = "".join(f"line_{i} = {i}\n" for i in range(2000))
    sizes = {}
    for configured in (None, 3000):
        engine = Engine(backend, config=EngineConfig(context_tokens=configured))
        result = engine.complete(request(prefix=long_prefix, max_tokens=16, debug_options=DebugOptions(return_prompt=True)))
        sizes[configured] = result.usage.prompt_tokens
    assert sizes[None] <= 2048 < sizes[3000] <= 3000


@pytest.mark.parametrize(("prefix", "mode", "stops_after_line", "stops_at_newline"), [
    ("def f():\n    ", "line", True, False),          # empty line: one line, perhaps after newlines
    ("def f():\n    return ", "line", False, True),   # text before the cursor: the rest of this line
    ("def f():\n    ", "multiline", False, False),
])
def test_a_line_completion_stops_generating_once_its_line_is_written(prefix, mode, stops_after_line, stops_at_newline):
    backend = FakeBackend("x")
    Engine(backend).complete(request(prefix=prefix, mode=mode))
    sent = backend.requests[-1]
    assert sent.stop_after_line is stops_after_line and ("\n" in sent.stop) is stops_at_newline


def test_configured_shares_reach_the_prompt_and_bad_ones_are_a_config_error():
    backend = FakeBackend("1", context_length=8000)
    long_prefix = "".join(f"line_{i} = {i}\n" for i in range(2000))
    context = [ClientSnippet(filepath="lib.py", body="".join(f"def helper_{i}(): pass\n" for i in range(300)))]
    kept = {}
    for shares in ((0.5, 0.25), (0.7, 0.1)):
        engine = Engine(backend, config=EngineConfig(context_tokens=1000, prefix_share=shares[0], suffix_share=shares[1]))
        result = engine.complete(CompletionRequest(
            segments=Segments(prefix=long_prefix, suffix="\n", filepath="pkg/mod.py", snippets=context),
            max_tokens=16, debug_options=DebugOptions(return_prompt=True)))
        kept[shares] = result.prompt.count("line_")
        assert "helper_" in result.prompt and result.usage.prompt_tokens <= 1000
    assert kept[(0.7, 0.1)] > kept[(0.5, 0.25)] * 1.2
    with pytest.raises(ConfigError, match="prefix_share"):
        Engine(backend, config=EngineConfig(prefix_share=0.8, suffix_share=0.4))
