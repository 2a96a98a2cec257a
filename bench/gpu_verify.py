"""Helpers of ``bench/gpu_verify.sh`` (run on a lent GPU machine; see that script).

``make-model CONFIG_DIR DST``: a model of the real architecture (Qwen2.5-Coder's config and tokenizer)
with random bf16 weights. Throughput and memory depend on the shapes, not the values, and the real
weights (1-3 GB) cannot travel to the device machine (64 MiB per call).

``latency MODEL_DIR [ADAPTER_DIR]``: cold completion latency of the in-process engine on CUDA:
a ~1,000-token prompt, 32 new tokens, bf16 and 4-bit, with and without a per-request LoRA adapter.
Prints one JSON line per setting with the median of 7 timed runs after 2 warm-ups.
"""

from __future__ import annotations

import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path


def make_model(config_dir: str, dst: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src, out = Path(config_dir), Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(src)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    for name in ("tokenizer_config.json", "generation_config.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    tokenizer = src / "tokenizer.json.gz"
    (out / "tokenizer.json").write_bytes(gzip.decompress(tokenizer.read_bytes()))
    print(json.dumps({"model": str(out), "parameters": sum(p.numel() for p in model.parameters())}))


def latency(model_dir: str, adapter: str | None = None) -> None:
    import torch

    from repocomplete.backends.base import GenerationRequest
    from repocomplete.backends.transformers import TransformersBackend

    source = Path(json.__file__).with_name("decoder.py").read_text()
    settings = [("bf16", {"dtype": "bfloat16"}), ("4bit", {"load_in_4bit": True})]
    for label, kwargs in settings:
        backend = TransformersBackend(model_dir, kv_cache=False, **kwargs)
        prompt_ids = backend.tokenizer(source)["input_ids"][:1000]
        prompt = backend.tokenizer.decode(prompt_ids)
        names = [None]
        if adapter:
            backend.load_adapter("repo", adapter)
            names.append("repo")
        for name in names:
            times = []
            for i in range(9):
                torch.cuda.synchronize()
                start = time.perf_counter()
                result = backend.generate(GenerationRequest(prompt=prompt + f"\n# {i}\n", max_tokens=32, adapter=name))
                torch.cuda.synchronize()
                if i >= 2:
                    times.append(time.perf_counter() - start)
            print(json.dumps({"setting": label, "adapter": name, "prompt_tokens": len(prompt_ids),
                              "completion_tokens": result.completion_tokens,
                              "median_ms": round(1000 * statistics.median(times), 1),
                              "min_ms": round(1000 * min(times), 1), "info": backend.info()}), flush=True)
        del backend
        torch.cuda.empty_cache()


if __name__ == "__main__":
    {"make-model": make_model, "latency": latency}[sys.argv[1]](*sys.argv[2:])
