"""Token healing: golden cases of the constraint, and the transformers backend healing a prompt
that ends in indentation (the tiny model's byte-level BPE splits whitespace as Qwen's does)."""

from __future__ import annotations

import pytest

from repocomplete.backends.base import GenerationRequest
from repocomplete.backends.token_healing import TokenHealer, advance

#: A toy vocabulary: token i's text (None: a special token).
VOCAB = [None, " ", "  ", "   ", "    ", " x", "  x", "x", "xy", "\n", "\ufffd", "", "    return"]


@pytest.fixture(scope="module")
def healer():
    return TokenHealer(VOCAB)


@pytest.mark.parametrize(("remaining", "expected"), [
    # tokens that start with the text, and tokens that are a non-empty beginning of it
    ("  ", {1, 2, 3, 4, 6, 12}),
    (" ", {1, 2, 3, 4, 5, 6, 12}),
    ("x", {7, 8}),
    ("xy", {7, 8}),
    ("    r", {1, 2, 3, 4, 12}),
    ("\n", {9}),
    ("q", set()),
    ("", set()),
])
def test_allowed_tokens_start_with_the_text_or_begin_it(healer, remaining, expected):
    assert set(healer.allowed(remaining)) == expected
    assert 0 not in healer.allowed(remaining), "a special token (end-of-text) never heals"
    assert 10 not in healer.allowed(remaining) and 11 not in healer.allowed(remaining)


@pytest.mark.parametrize(("remaining", "token", "left"), [
    ("    ", "   ", " "),       # three of four spaces: one still to come
    ("    ", "    ", ""),       # exactly the healed text
    (" ", " x", ""),            # covers it and goes on
    ("xy", "x", "y"),
])
def test_advance(remaining, token, left):
    assert advance(remaining, token) == left


def test_split_takes_back_the_last_ordinary_token_only(healer):
    assert healer.split([5, 7, 4], special_ids={0}) == ([5, 7], "    ")
    assert healer.split([5, 7, 0], special_ids={0}) == ([5, 7, 0], ""), "a FIM sentinel at the end: nothing to heal"
    assert healer.split([4], special_ids={0}) == ([4], ""), "a one-token prompt is left whole"
    assert healer.split([5, 10], special_ids={0}) == ([5, 10], ""), "half a character is not healed"
    assert healer.split([5, 9], special_ids={0}) == ([5, 9], ""), "a line break is a boundary the tokenizer keeps"


# -- the backend -----------------------------------------------------------------------------

def _scripted(backend, monkeypatch, script):
    """Make ``backend._forward`` return logits ranking token ids as ``script[call]`` lists them
    (best first), recording what each call ran."""
    import torch

    calls: list[list[int]] = []
    vocab = backend.base_model.config.vocab_size

    def forward(model, tokens, cache, *, keep=1, prefill=None):
        calls.append(list(tokens))
        logits = torch.zeros(keep, vocab)
        ranking = script[min(len(calls) - 1, len(script) - 1)]
        for rank, token in enumerate(ranking):
            logits[-1, token] = 100.0 - rank
        return logits

    monkeypatch.setattr(backend, "_forward", forward)
    return calls


def test_a_prompt_ending_in_indentation_is_healed(tiny_model_dir, monkeypatch):
    from repocomplete.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_model_dir, kv_cache=False)
    tok = backend.tokenizer
    prompt = "def f():\n    x = 1\n    "
    prompt_ids = tok.encode(prompt, add_special_tokens=False)
    assert tok.decode(prompt_ids[-1:]) == "    ", "the prompt ends in a four-space token"
    three, x_token = (tok.encode(s, add_special_tokens=False) for s in ("   ", " x"))
    assert len(three) == 1 and len(x_token) == 1
    eos = tok.eos_token_id
    # the model's favourite first token is end-of-text; then three spaces, then " x", then end
    calls = _scripted(backend, monkeypatch, [[eos, three[0]], [x_token[0]], [eos]])
    result = backend.generate(GenerationRequest(prompt=prompt, max_tokens=8))
    assert calls[0] == prompt_ids[:-1], "the last token is taken back"
    # the regenerated four spaces (three + the space of " x") are not shown; the rest is
    assert result.texts == ["x"]
    assert result.prompt_tokens == len(prompt_ids)


def test_without_healing_the_same_model_ends_at_once(tiny_model_dir, monkeypatch):
    from repocomplete.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_model_dir, kv_cache=False, token_healing=False)
    eos = backend.tokenizer.eos_token_id
    prompt = "def f():\n    x = 1\n    "
    calls = _scripted(backend, monkeypatch, [[eos]])
    assert backend.generate(GenerationRequest(prompt=prompt, max_tokens=8)).texts == [""]
    assert calls[0] == backend.tokenizer.encode(prompt, add_special_tokens=False)
    assert backend.info()["token_healing"] is False


def test_healing_tokens_do_not_count_against_max_tokens(tiny_model_dir, monkeypatch):
    from repocomplete.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_model_dir, kv_cache=False)
    tok = backend.tokenizer
    prompt = "def f():\n    x = 1\n    "
    four, x_token = (tok.encode(s, add_special_tokens=False)[0] for s in ("    ", "x"))
    _scripted(backend, monkeypatch, [[four], [x_token]])
    # the first token only rebuilds the healed four spaces; max_tokens=1 still allows "x"
    assert backend.generate(GenerationRequest(prompt=prompt, max_tokens=1)).texts == ["x"]


def test_a_prompt_ending_in_a_special_token_is_not_healed(tiny_model_dir, monkeypatch):
    from repocomplete.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_model_dir, kv_cache=False)
    tok = backend.tokenizer
    prompt = "<|rc:prefix|>def f():\n    <|rc:suffix|>\n<|rc:middle|>"
    calls = _scripted(backend, monkeypatch, [[tok.eos_token_id]])
    assert backend.generate(GenerationRequest(prompt=prompt, max_tokens=4)).texts == [""]
    assert calls[0] == tok.encode(prompt, add_special_tokens=False)


def test_healed_streaming_matches_generate_and_stops_hold(tiny_model_dir):
    """On the real (random) tiny model: streamed text equals generated text, the stop holds, and a
    keystroke after a healed prompt still reuses the cache."""
    from repocomplete.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_model_dir)
    prompt = "import os\n\ndef main():\n    path = os.getcwd()\n    "
    request = GenerationRequest(prompt=prompt, max_tokens=12, stop=["\n"])
    generated = backend.generate(request).texts[0]
    streamed = "".join(backend.stream(request))
    assert streamed == generated and "\n" not in generated
    again = backend.generate(GenerationRequest(prompt=prompt + "r", max_tokens=4))
    assert again.cached_tokens > 0
