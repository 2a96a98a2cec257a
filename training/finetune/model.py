"""The model being trained: the base loaded for the method, wrapped by peft for LoRA/QLoRA, and
the trainable weights as a plain dict (what checkpoints and early stopping keep)."""

from __future__ import annotations

import hashlib

from training.finetune.config import FinetuneConfig


#: LoRA targets when none are given: peft's own shorthand for every linear layer but the output
#: head, i.e. all attention and MLP projections whatever an architecture calls them. (peft's
#: per-architecture ``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`` names only the query and
#: value projections, the original LoRA setting; adapting every projection trains better, as the
#: QLoRA paper found, and is what this project's measurements use.)
ALL_LINEAR = "all-linear"


def short_module_names(names) -> list[str]:
    """``model.layers.0.self_attn.q_proj`` -> ``q_proj``: the kinds of module adapted, sorted."""
    return sorted({name.rsplit(".", 1)[-1] for name in names})


def load_model(model_path: str, config: FinetuneConfig, *, cuda: bool, bf16: bool):
    """(model, LoRA target kinds): the base prepared for ``config.method`` (peft-wrapped for LoRA/QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    elif config.method == "lora" and bf16:
        kwargs["dtype"] = torch.bfloat16   # frozen weights in bf16; LoRA weights stay fp32
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if config.method == "full":
        return model, []
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from repocomplete.backends.transformers import ignore_known_library_deprecations

    ignore_known_library_deprecations()

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules) if config.target_modules else ALL_LINEAR,
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    targets = short_module_names(model.peft_config["default"].target_modules)   # as peft resolved them
    if bf16:
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    return model, targets


def trainable_state(model) -> dict:
    """A CPU copy of the weights being trained (the LoRA matrices, or all of them for full)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict) -> None:
    """Copy :func:`trainable_state`'s weights back into ``model`` (on its device and dtype)."""
    params = dict(model.named_parameters())
    for name, tensor in state.items():
        params[name].data.copy_(tensor.to(params[name].device, params[name].dtype))


def parameter_digest(model) -> str:
    """sha256 of every parameter (trainable or not): equal digests mean identical models."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def lora_b_all_zero(model) -> bool | None:
    """True when every LoRA B matrix is zero, so the adapter is the identity; None without LoRA."""
    matrices = [p for name, p in model.named_parameters() if "lora_B" in name]
    return None if not matrices else not any(bool(p.detach().any()) for p in matrices)
