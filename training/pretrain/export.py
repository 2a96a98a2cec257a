"""Export a checkpoint as the embedded default model (``repocomplete/assets/default-model``).

``save_pretrained`` in safetensors shards of at most 16 MB plus the tokenizer and a
``MODEL_CARD.md``, written to a staging folder, verified (size, loads with
``AutoModelForCausalLM``/``AutoTokenizer``, one forward pass), then swapped into place
(:mod:`training.publish`).
"""

from __future__ import annotations

import json
from pathlib import Path

from repocomplete.errors import RepocompleteError
from training import publish
from training.pretrain.config import PretrainConfig, load_pretrain_config
from training.pretrain.tokenizer import TEMPLATE
from training.pretrain.model import build_model, count_parameters


class ExportError(RepocompleteError):
    """The checkpoint cannot be exported (missing, too large, does not load)."""


def load_checkpoint_model(cfg: PretrainConfig, run_dir: Path, which: str = "best"):
    """(model, tokenizer, checkpoint state) from ``best.pt`` (or ``last.pt`` when there is no best)."""
    from training import checkpoint
    from training.pretrain.tokenizer import load_tokenizer

    ckpt_dir = run_dir / "checkpoints"
    path = ckpt_dir / f"{which}.pt"
    if not path.exists() and which == "best":
        path = ckpt_dir / "last.pt"
    if not path.exists():
        raise ExportError(f"no checkpoint in {ckpt_dir}: train first")
    ckpt = checkpoint.load(path)
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    model = build_model(cfg.model, len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, tokenizer, {**ckpt["state"], "checkpoint": path.name, "config": ckpt.get("config")}


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def verify(model_dir: Path) -> int:
    """Load with the Auto classes (as serving does) and run one forward pass; returns parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    for token in TEMPLATE.special_tokens:
        if len(tokenizer(token, add_special_tokens=False)["input_ids"]) != 1:
            raise ExportError(f"exported tokenizer splits {token}")
    ids = tokenizer(TEMPLATE.render("def add(a, b):\n    return", "\n"), return_tensors="pt")
    with torch.no_grad():
        model(**ids)
    return count_parameters(model)


def export_model(cfg: PretrainConfig, run_dir: Path, out_dir: Path, *, which: str = "best",
                 measurements: dict | None = None, log=print) -> dict:
    """Write the model directory atomically; returns what was exported."""
    from training.pretrain.card import write_model_card

    model, tokenizer, state = load_checkpoint_model(cfg, run_dir, which)
    out_dir = out_dir.resolve()
    # mode: the shipped model must be readable by every user
    with publish.publishing(out_dir, mode=0o755) as tmp:
        # The context the model was trained on, not the width of its position table: RoPE
        # positions past the training windows were never seen, and a prompt reaching them
        # comes out as noise. Serving budgets prompts from these two values.
        model.config.max_position_embeddings = cfg.data.block_size
        tokenizer.model_max_length = cfg.data.block_size
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        # The engine renders prompts in the order the model prefers (EngineConfig.fim_order auto).
        model.config.repocomplete_fim_order = cfg.export.fim_order
        if cfg.export.context_copy:
            model.config.repocomplete_context_copy = cfg.export.context_copy
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if cfg.export.dtype == "bfloat16":
            import torch

            model = model.to(torch.bfloat16)
        model.save_pretrained(str(tmp), max_shard_size=cfg.export.max_shard_size)
        tokenizer.save_pretrained(str(tmp))
        params = verify(tmp)
        info = {"parameters": params, "step": state["step"], "tokens_seen": state["tokens_seen"],
                "train_seconds": round(state["train_seconds"]), "best_val_loss": state["best_val_loss"],
                "checkpoint": state["checkpoint"], "best_weights": state.get("best_weights", "raw"),
                "history": state["history"], "config": state.get("config"),
                "context_copy": cfg.export.context_copy}
        (tmp / "training_state.json").write_text(json.dumps(info, indent=1))
        measured = measurements
        if measured is None and (run_dir / "measurements.json").exists():
            measured = json.loads((run_dir / "measurements.json").read_text())
        # the card describes how these weights were trained, even if the config has moved on since
        trained = load_pretrain_config(None, overrides=state["config"]) if state.get("config") else cfg
        write_model_card(tmp / "MODEL_CARD.md", trained, run_dir, info, measured or {})
        size = _dir_mb(tmp)
        if size > cfg.export.max_total_mb:
            raise ExportError(f"exported model is {size:.1f} MB > {cfg.export.max_total_mb} MB")
    log(f"exported step {info['step']} ({params:,} parameters, {size:.1f} MB) to {out_dir}")
    return {**info, "out_dir": str(out_dir), "size_mb": round(size, 2)}
