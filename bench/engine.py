"""Engine latency against bare ``model.generate``, and the keystroke case against a cold request.

    python bench/engine.py [--reps 7] [--prompt-tokens 1024] [--max-tokens 16] [--threads N]

1. overhead: Engine.complete end to end (retrieval off, prompt assembly, our decoding
   loop, post-processing) ÷ ``model.generate`` on the same prompt ids for the same number
   of new tokens, KV reuse off so both start cold. Target: ≤ 1.10 at p50.
2. keystroke: a request whose prompt extends the previous one by one character ÷ a cold
   request (KV cache of the unchanged prompt prefix reused). Target: ≤ 0.35 at p50.
   Measured with the cursor at the end of the file (the prompt really only grows by one
   character) and, more realistically, with 240 characters of suffix after the cursor
   (the suffix and FIM sentinels after the cursor are recomputed).

The model is a few-M-parameter Llama built from config (random weights: speed only).
Both sides of each ratio are measured in this run, interleaved, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from repocomplete.backends.transformers import TransformersBackend  # noqa: E402
from repocomplete.config import EngineConfig  # noqa: E402
from repocomplete.engine import Engine  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402
from repocomplete.types import CompletionRequest, DebugOptions, Segments  # noqa: E402


def source_text() -> str:
    return (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text()


def split_for_prompt(backend: TransformersBackend, prompt_tokens: int) -> tuple[str, str]:
    """A prefix of about ``prompt_tokens`` tokens (ending mid-line) and the 240 characters after it."""
    text = source_text()
    lines = text.split("\n")
    prefix_lines: list[str] = []
    while backend.count_tokens("\n".join(prefix_lines)) < prompt_tokens - 80:
        prefix_lines.append(lines[len(prefix_lines)])
    cut = len("\n".join(prefix_lines)) + 1
    line_end = text.index("\n", cut)
    middle = cut + (line_end - cut) // 2
    return text[:middle], text[middle : middle + 240]


def request(prefix: str, suffix: str, max_tokens: int) -> CompletionRequest:
    return CompletionRequest(
        segments=Segments(prefix=prefix, suffix=suffix, filepath="argparse.py"),
        max_tokens=max_tokens, mode="multiline",
        debug_options=DebugOptions(return_prompt=True, disable_retrieval=True),
    )


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000.0, value


def bench_overhead(engine: Engine, prefix: str, suffix: str, max_tokens: int, reps: int) -> dict:
    import torch

    backend = engine.backend
    model, tokenizer = backend.base_model, backend.tokenizer
    req = request(prefix, suffix, max_tokens)
    result = engine.complete(req)
    ids = torch.tensor([tokenizer.encode(result.prompt, add_special_tokens=False)])
    new_tokens = max(result.usage.completion_tokens, 1)

    def bare():
        with torch.inference_mode():
            return model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                  pad_token_id=tokenizer.eos_token_id)

    bare()
    engine_ms, bare_ms = [], []
    for _ in range(reps):
        engine_ms.append(timed(lambda: engine.complete(req))[0])
        bare_ms.append(timed(bare)[0])
    e, b = statistics.median(engine_ms), statistics.median(bare_ms)
    return {"prompt_tokens": ids.shape[1], "new_tokens": new_tokens, "engine_p50_ms": round(e, 1),
            "generate_p50_ms": round(b, 1), "ratio": round(e / b, 3)}


def bench_keystroke(engine: Engine, prefix: str, suffix: str, max_tokens: int, reps: int) -> dict:
    cold_ms, warm_ms, cached = [], [], []
    for i in range(reps + 1):
        # A different first line invalidates the whole cache: a cold request.
        cold_prefix = f"# revision {i}\n" + prefix
        cold = timed(lambda: engine.complete(request(cold_prefix, suffix, max_tokens)))
        warm = timed(lambda: engine.complete(request(cold_prefix + "s", suffix, max_tokens)))
        if i:  # the first pair warms up
            cold_ms.append(cold[0])
            warm_ms.append(warm[0])
            cached.append(warm[1].usage.cached_tokens / max(warm[1].usage.prompt_tokens, 1))
    c, w = statistics.median(cold_ms), statistics.median(warm_ms)
    return {"cold_p50_ms": round(c, 1), "extended_p50_ms": round(w, 1), "ratio": round(w / c, 3),
            "cached_share": round(statistics.median(cached), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "bench-model", hidden_size=args.hidden, layers=args.layers)
        cold_backend = TransformersBackend(path, kv_cache=False, device="cpu", threads=args.threads)
        warm_backend = TransformersBackend(path, kv_cache=True, device="cpu", threads=args.threads)
    config = EngineConfig(context_tokens=args.prompt_tokens + 200)
    prefix, suffix = split_for_prompt(cold_backend, args.prompt_tokens)
    overhead = bench_overhead(Engine(cold_backend, config=config), prefix, suffix, args.max_tokens, args.reps)
    warm_engine = Engine(warm_backend, config=config)
    keystroke = bench_keystroke(warm_engine, prefix, "", args.max_tokens, args.reps)
    keystroke_suffix = bench_keystroke(warm_engine, prefix, suffix, args.max_tokens, args.reps)
    report = {
        "model_parameters": cold_backend.info()["parameters"], "threads": torch.get_num_threads(),
        "max_tokens": args.max_tokens, "reps": args.reps, "overhead": overhead,
        "keystroke": keystroke, "keystroke_with_suffix": keystroke_suffix,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"model: {report['model_parameters'] / 1e6:.1f}M params, CPU, {report['threads']} threads, "
          f"prompt {overhead['prompt_tokens']} tokens, {overhead['new_tokens']} new tokens, {args.reps} reps")
    print(f"engine.complete ÷ model.generate (cold, p50): {overhead['ratio']:.3f}  "
          f"[{overhead['engine_p50_ms']} ms vs {overhead['generate_p50_ms']} ms]  target ≤ 1.10")
    for name, row in (("end of file", keystroke), ("240-char suffix", keystroke_suffix)):
        print(f"one-char-extended ÷ cold request (p50, {name}): {row['ratio']:.3f}  "
              f"[{row['extended_p50_ms']} ms vs {row['cold_p50_ms']} ms; "
              f"{row['cached_share']:.0%} of the prompt reused]  target ≤ 0.35")
    return 0


if __name__ == "__main__":
    sys.exit(main())
