"""The tiny test model: loadable, special tokens are single tokens, deterministic."""

from __future__ import annotations

import hashlib

import pytest

from tests.tiny_model import FAMILY_TOKENS, build_tiny_model


def _digest(path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def test_tiny_model_loads_and_generates(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = "<|rc:file|>a.py\n<|rc:prefix|>def add(a, b):\n    return<|rc:suffix|>\n<|rc:middle|>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text  # byte-level BPE round-trips exactly
    assert tok.eos_token == "<|rc:end|>"
    out = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)
    assert out.shape[1] == len(ids) + 4 or tok.eos_token_id in out[0].tolist()
    assert model.config.hidden_size % 32 == 0


@pytest.mark.parametrize("template", ["starcoder", "deepseek", "codellama"])
def test_family_special_tokens_are_single_tokens(tiny_model_for, template):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_for(template))
    for token in FAMILY_TOKENS[template]:
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token
    assert tok.eos_token == FAMILY_TOKENS[template][0]


def test_build_is_deterministic(tiny_model_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again")
    assert _digest(again) == _digest(tiny_model_dir)
