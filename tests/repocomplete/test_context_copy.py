"""Copying from the prompt while decoding: golden cases of the matcher, and the backend using it."""

from __future__ import annotations

import pytest
import torch

from repocomplete.backends.base import GenerationRequest
from repocomplete.backends.context_copy import (
    CONTINUATION_CHARS,
    CopyProposal,
    CopySettings,
    TokenTexts,
    continuations,
    propose_copy,
    mix_copy,
)
from repocomplete.backends.transformers import TransformersBackend, declared_context_copy
from repocomplete.errors import ConfigError

SENTINELS = ("<|rc:prefix|>", "<|rc:suffix|>", "<|rc:middle|>", "<|rc:file|>")


@pytest.mark.parametrize(("source", "query", "expected"), [
    # the longest tail wins: "self.protocol.no" matches 16 chars in the second line, 6 in the first
    ("x = proto.notify(a)\nself.protocol.notify(b)\n", "        self.protocol.no", (16, ["tify(b)\n"])),
    # several occurrences of the longest tail each give their continuation, in prompt order
    ("call(a)\ncall(b)\n", "x = call(", (5, ["a)\ncall(b)\n", "b)\n"])),
    # a line cut mid-word still finds the word (characters, not tokens)
    ("import collections.abc\n", "    impo", (4, ["rt collections.abc\n"])),
    # tails shorter than min_chars are chance: no match
    ("ab", "xab", (0, [])),
    ("", "anything", (0, [])),
])
def test_continuations_golden(source, query, expected):
    assert continuations(source, query, min_chars=2) == expected


def test_the_prompts_own_copy_of_the_prefix_is_no_source():
    # SPM: context, suffix, then the prefix itself, which runs into <|rc:middle|>.
    context = "<|rc:file|>a.py\nresult = compute_total(values)\n"
    prefix = "def f(values):\n    result = compute_"
    prompt = f"{context}<|rc:suffix|>\n    return result\n<|rc:prefix|>{prefix}<|rc:middle|>"
    length, texts = continuations(prompt, prefix, min_chars=8, stops=SENTINELS)
    assert texts == ["total(values)\n"] and length == len("result = compute_")
    # the continuation is cut at the first sentinel and at CONTINUATION_CHARS
    long_line = "x" * 200
    assert continuations(f"key = {long_line}", "key = ", min_chars=4)[1] == [long_line[:CONTINUATION_CHARS]]
    assert continuations("value<|rc:file|>b.py", "my value", min_chars=5, stops=SENTINELS) == (0, [])


def test_token_texts_and_copy_ids():
    texts = TokenTexts(["<eos>", "t", "to", "tal", "total", "(", None, "\ufffd"])
    assert texts.starting("total(x)") == [1, 2, 4]        # "t", "to", "total": every beginning, not "tal"
    assert texts.starting("") == [] and texts.starting("zzz") == []
    settings = CopySettings(weight=0.5, min_chars=4)
    assert propose_copy("sum = total(x)\n", "    sum = ", texts, settings) == CopyProposal([1, 2, 4], False)
    assert propose_copy("sum = total(x)\n", "nothing like it", texts, settings) == CopyProposal([], False)
    # where the copied line ends, the proposal says so (the backend then lets the model stop)
    newline = TokenTexts(["<eos>", "\n", "\n    "])
    assert propose_copy("sum = total(x)\n    y", "= total(x)", newline, settings) == CopyProposal([1, 2], True)


def test_mix_copy_moves_the_given_share_onto_the_copy_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    mixed = torch.softmax(mix_copy(logits, [2, 3], 0.6), dim=-1)
    # p = 0.4 * p_model + 0.6 * p_model renormalised over {2, 3}: 0.15/0.2 and 0.05/0.2
    assert torch.allclose(mixed, torch.tensor([0.2, 0.12, 0.06 + 0.45, 0.02 + 0.15]), atol=1e-6)
    assert torch.equal(mix_copy(logits, [], 0.6), logits) and torch.equal(mix_copy(logits, [1], 0.0), logits)
    # the end-of-text token keeps its probability; the copy share comes out of the rest
    kept = torch.softmax(mix_copy(logits, [2, 3], 0.6, keep_ids=[0]), dim=-1)
    assert torch.allclose(kept, torch.tensor([0.5, 0.12, 0.06 + 0.225, 0.02 + 0.075]), atol=1e-6)


@pytest.mark.parametrize("bad", [{"weight": -0.1}, {"weight": 1.5}, {"min_chars": 0}])
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        CopySettings(**bad)


# -- the backend ------------------------------------------------------------------------------

CONTEXT_LINE = "    return weighted_average(samples, weights=normalise(raw_weights))\n"


def spm_prompt(prefix: str) -> str:
    return (f"<|rc:file|>stats/core.py\ndef summary(samples, raw_weights):\n{CONTEXT_LINE}"
            f"<|rc:file|>stats/api.py\n<|rc:suffix|>\n\nprint(report)\n<|rc:prefix|>{prefix}<|rc:middle|>")


def test_full_copy_weight_spells_the_line_the_context_holds(tiny_model_dir):
    # A random tiny model knows nothing; with weight 1 decoding may only continue the text
    # that follows the longest match in context, whatever tokenization the model prefers.
    backend = TransformersBackend(tiny_model_dir, context_copy=1.0)
    prefix = "def report(samples, raw_weights):\n    return weighted_av"
    request = GenerationRequest(prompt=spm_prompt(prefix), max_tokens=40, stop=["\n"], cursor_prefix=prefix)
    assert backend.generate(request).texts == ["erage(samples, weights=normalise(raw_weights))"]
    assert "".join(backend.stream(request)) == "erage(samples, weights=normalise(raw_weights))"
    assert backend.info()["context_copy"] == 1.0
    # PSM: the prompt does not end at the cursor; cursor_prefix says where it is.
    psm = (f"<|rc:file|>stats/core.py\n{CONTEXT_LINE}<|rc:file|>stats/api.py\n"
           f"<|rc:prefix|>{prefix}<|rc:suffix|>\n\nprint(report)\n<|rc:middle|>")
    psm_request = GenerationRequest(prompt=psm, max_tokens=40, stop=["\n"], cursor_prefix=prefix)
    assert backend.generate(psm_request).texts == ["erage(samples, weights=normalise(raw_weights))"]


def test_no_copy_weight_leaves_decoding_to_the_model(tiny_model_dir, tiny_backend):
    prefix = "def report(samples, raw_weights):\n    return weighted_av"
    request = GenerationRequest(prompt=spm_prompt(prefix), max_tokens=12, cursor_prefix=prefix)
    assert tiny_backend.info()["context_copy"] == 0.0             # the tiny model's config declares none
    plain = TransformersBackend(tiny_model_dir, context_copy=0.0).generate(request).texts
    assert tiny_backend.generate(request).texts == plain
    assert plain != TransformersBackend(tiny_model_dir, context_copy=1.0).generate(request).texts


def test_the_weight_comes_from_the_models_config_unless_configured(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    config_file = copy / "config.json"
    import json

    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps(config | {"repocomplete_context_copy": 0.7}))
    assert TransformersBackend(copy).copy.weight == 0.7
    assert TransformersBackend(copy, context_copy=0.2).copy.weight == 0.2
    with pytest.raises(ConfigError, match="within"):
        TransformersBackend(copy, context_copy=2.0)


@pytest.mark.parametrize(("declared", "expected"), [(0.6, 0.6), (None, 0.0), ("high", 0.0), (3, 0.0), (True, 0.0)])
def test_declared_context_copy(declared, expected):
    class Config:
        repocomplete_context_copy = declared

    assert declared_context_copy(Config()) == expected
