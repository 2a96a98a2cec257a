"""Tiny Llama-style models built from config in seconds, for tests and benchmarks.

Nothing is downloaded: the byte-level BPE tokenizer is trained on a few Python stdlib
files (deterministically), the weights are random (seeded). The tokenizer carries the
special tokens of one FIM template family as single added tokens, so template
auto-detection, prompt budgeting and special-token handling can be tested against a
real ``transformers`` model exactly as against a real code model.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from repocomplete.fim import TEMPLATES

#: Special tokens of each template family's tokenizer (end-of-text first), from the FIM
#: template registry, which mirrors the real tokenizers.
FAMILY_TOKENS: dict[str, tuple[str, ...]] = {
    name: template.tokenizer_tokens for name, template in TEMPLATES.items() if template.vocabulary
}

#: Stdlib modules the tokenizer is trained on: ordinary Python, read in this fixed order.
_TRAINING_MODULES = ("textwrap.py", "string.py", "shlex.py", "fnmatch.py", "bisect.py", "heapq.py", "glob.py")


def family_tokens(template: str) -> tuple[str, ...]:
    """Special tokens for ``template`` (end token first)."""
    if template not in FAMILY_TOKENS:
        raise ValueError(f"unknown template family {template!r}; choose from: {', '.join(FAMILY_TOKENS)}")
    return FAMILY_TOKENS[template]


def training_texts() -> list[str]:
    """The fixed corpus the tokenizer is trained on."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [(stdlib / name).read_text(encoding="utf-8") for name in _TRAINING_MODULES if (stdlib / name).exists()]


def build_tokenizer(template: str = "repocomplete", vocab_size: int = 2048):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ``template``'s special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = family_tokens(template)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=specials[0],
        pad_token=specials[0],
        additional_special_tokens=list(specials[1:]),
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    template: str = "repocomplete",
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
    vocab_size: int = 2048,
    max_positions: int = 4096,
) -> Path:
    """Build and save a random Llama-style model + tokenizer into ``out_dir``; return the path.

    Widths are multiples of 32 so bitsandbytes 4/8-bit quantization works on CPU too.
    Load it back with ``AutoModelForCausalLM`` / ``AutoTokenizer``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % 32:
        raise ValueError("hidden_size must be a multiple of 32 (bitsandbytes needs it)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(template, vocab_size)
    heads = max(1, hidden_size // 16)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        # untied: a random tied model mostly echoes its last input token; untied ones vary
        tie_word_embeddings=False,
    )
    # Marks the model as untrained so front-ends can label it honestly (see repocomplete.model_resolution).
    config.repocomplete_tiny = True
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    _save_quietly(model, tokenizer, out)
    return out


def _save_quietly(model, tokenizer, out: Path) -> None:
    from repocomplete.backends.transformers import quiet_progress_bars

    with quiet_progress_bars():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
