"""Processing a prompt ahead of time (the cursor landed; nothing typed yet): the backend's
``prefill`` and the engine's ``prefetch``, on the tiny model built from config."""

from __future__ import annotations

import threading

import pytest

from repocomplete.backends.base import GenerationRequest
from repocomplete.backends.fake import FakeBackend
from repocomplete.backends.transformers import TransformersBackend
from repocomplete.engine import Engine
from repocomplete.types import CompletionRequest, Segments

from .conftest import make_lora_adapter

PROMPT = "<|rc:file|>pkg/mod.py\n<|rc:prefix|>" + "".join(f"value_{i} = compute({i})\n" for i in range(40)) + \
    "def total(values):\n    return<|rc:suffix|>\n<|rc:middle|>"
#: A prompt that ends at the cursor, in a new line's indentation: token healing takes its last token back.
AT_CURSOR = "".join(f"value_{i} = compute({i})\n" for i in range(30)) + "def total(values):\n    "


def greedy(prompt=PROMPT, **kwargs) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=kwargs.pop("max_tokens", 12), **kwargs)


@pytest.fixture(scope="module")
def fresh(tiny_model_dir):
    """The reference: no prompt cache at all."""
    return TransformersBackend(tiny_model_dir, kv_cache=False)


@pytest.mark.parametrize("prompt", [PROMPT, AT_CURSOR])
def test_a_prefilled_prompt_is_answered_from_the_cache_with_the_same_text(tiny_model_dir, fresh, prompt):
    backend = TransformersBackend(tiny_model_dir)
    cached = backend.prefill(greedy(prompt))
    assert cached > 32
    got = backend.generate(greedy(prompt))
    assert got.cached_tokens == cached  # only the prompt's last token ran again
    assert got.texts == fresh.generate(greedy(prompt)).texts


def test_a_keystroke_after_the_prefill_runs_only_what_was_typed(tiny_model_dir, fresh):
    backend = TransformersBackend(tiny_model_dir)
    cached = backend.prefill(greedy())
    typed = PROMPT.replace("return", "return s")
    got = backend.generate(greedy(typed))
    assert cached - 4 <= got.cached_tokens <= cached and got.prompt_tokens - got.cached_tokens <= 8
    assert got.texts == fresh.generate(greedy(typed)).texts


def test_cancel_stops_between_chunks_and_keeps_what_was_processed(tiny_model_dir, fresh):
    backend = TransformersBackend(tiny_model_dir)
    backend.prefill_chunk_tokens = 16
    cancel = threading.Event()
    chunks: list[int] = []
    forward = backend._forward

    def counting(model, tokens, cache, **kwargs):
        chunks.append(len(tokens))
        cancel.set()  # a request arrives while the first chunk runs
        return forward(model, tokens, cache, **kwargs)

    backend._forward = counting
    assert backend.prefill(greedy(cancel=cancel)) == 16 and chunks == [16]
    backend._forward = forward
    got = backend.generate(greedy())
    assert got.cached_tokens == 16 and got.texts == fresh.generate(greedy()).texts


def test_a_prefill_cancelled_before_it_starts_processes_nothing(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir)
    cancel = threading.Event()
    cancel.set()
    assert backend.prefill(greedy(cancel=cancel)) == 0
    assert backend.generate(greedy()).cached_tokens == 0


def test_an_adapters_prompt_is_prefilled_on_the_adapted_model(tiny_model_dir, tmp_path):
    adapter = str(make_lora_adapter(tiny_model_dir, tmp_path / "one", seed=1))
    backend, reference = TransformersBackend(tiny_model_dir), TransformersBackend(tiny_model_dir, kv_cache=False)
    for each in (backend, reference):
        each.load_adapter("one", adapter)
    cached = backend.prefill(greedy(adapter="one"))
    assert backend.generate(greedy()).cached_tokens == 0  # the base keeps its own entry
    adapted = backend.generate(greedy(adapter="one"))
    assert adapted.cached_tokens == cached > 0
    assert adapted.texts == reference.generate(greedy(adapter="one")).texts


def test_without_a_prompt_cache_there_is_nothing_to_prefill(fresh):
    assert fresh.prefill(greedy()) == 0


def test_the_engine_prefetches_the_prompt_its_completion_would_send():
    backend = FakeBackend("x")
    engine = Engine(backend)
    request = CompletionRequest(segments=Segments(prefix="def f(x):\n    return ", suffix="\n"), max_tokens=16)
    assert engine.prefetch(request) > 0 and not backend.requests  # nothing was generated
    assert backend.prefills[0].prompt == engine.prompt_for(request)


def test_a_backend_without_a_prompt_cache_is_not_asked():
    class Remote(FakeBackend):
        prefill = None  # an OpenAI-compatible engine: no prompt cache of ours to fill

    engine = Engine(Remote("x"))
    assert engine.prefetch(CompletionRequest(segments=Segments(prefix="x = ", suffix=""))) == 0
