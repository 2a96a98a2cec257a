"""The default model: a small Llama-architecture causal LM built from config.

It is a plain ``transformers`` ``LlamaForCausalLM`` so the serving backend loads it with
``AutoModelForCausalLM`` like any other model; only the sizes are ours.
"""

from __future__ import annotations

from training.pretrain.config import ModelConfig


def llama_config(cfg: ModelConfig, vocab_size: int, *, eos_token_id: int, pad_token_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings,
        initializer_range=cfg.initializer_range,
        bos_token_id=None,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        attention_dropout=0.0,
        use_cache=True,
    )


def build_model(cfg: ModelConfig, vocab_size: int, *, eos_token_id: int, pad_token_id: int, seed: int = 0):
    """A freshly initialised model (deterministic for a given seed)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    config = llama_config(cfg, vocab_size, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    model = LlamaForCausalLM(config)
    return model


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
