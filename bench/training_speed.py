"""Benchmark: our fine-tuning loop vs. a bare PEFT loop on the same batches, plus data-builder speed.

    python bench/training_speed.py [--steps 30] [--repeats 2] [--package json] [--hidden 256 --layers 4]

Builds a tiny Llama-style model from config and a FIM dataset (with repository context) from a
stdlib package, then trains LoRA for ``--steps`` steps on identical batches, alternately with
``training.finetune`` (accelerate, grad clipping, scheduler, checkpoint/eval hooks off) and with
a bare ``peft`` + ``torch.optim.AdamW`` loop, each in a fresh process so peak RSS is its own.
Prints medians and the ratios ours/bare (tokens/s: higher is better, target >= 0.9; peak RSS:
bare/ours, >= 0.9 means we use at most ~11 % more memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_ours(args) -> dict:
    from training.data import DataConfig, load_manifest
    from training.finetune import FinetuneConfig, finetune

    out = Path(args.scratch) / "ours-adapter"
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(args.data, work / "data")   # the finetune run reuses a prepared dataset
    template = load_manifest(args.data)["template"]
    config = FinetuneConfig(max_steps=args.steps, batch_size=args.batch_size, max_seq_len=args.seq_len,
                            evaluate=False, eval_every=0, save_every=0, seed=0, warmup_steps=0,
                            precision="fp32")   # the bare loop runs fp32: compare like with like
    result = finetune([args.repo], args.model, out, config, DataConfig(template=template),
                      show_progress=False, log=lambda *a: None)
    metrics = result.metrics
    return {"tokens": metrics["train_tokens"], "tokens_per_s": metrics["tokens_per_s"],
            "final_loss": metrics["final_train_loss"], "peak_rss_mb": _peak_rss_mb()}


def worker_bare(args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repocomplete.fim import get_template
    from training.data import load_manifest, read_samples
    from training.finetune import ALL_LINEAR, BatchStream, collate, tokenize_samples

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    template = get_template(load_manifest(args.data)["template"])
    samples = tokenize_samples(list(read_samples(args.data, "train")), tokenizer, template.end_tokens[0], args.seq_len)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=ALL_LINEAR, task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    stream = BatchStream(len(samples), args.batch_size, seed=0)
    pad = tokenizer.pad_token_id
    tokens, started, loss = 0, time.perf_counter(), None
    for step in range(args.steps):
        batch = collate([samples[i] for i in stream.micro_batch(step)], pad)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    elapsed = time.perf_counter() - started
    return {"tokens": tokens, "tokens_per_s": tokens / elapsed, "final_loss": float(loss),
            "peak_rss_mb": _peak_rss_mb()}


def _run_worker(kind: str, args, scratch: Path, data: Path, model: Path, repo: Path) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--scratch", str(scratch), "--data", str(data),
               "--model", str(model), "--repo", str(repo), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--package", default="json", help="stdlib package used as the repository")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each worker")
    parser.add_argument("--worker", choices=("ours", "bare"), help=argparse.SUPPRESS)
    for hidden in ("--scratch", "--data", "--model", "--repo"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_ours(args) if args.worker == "ours" else worker_bare(args)
        print(json.dumps(result))
        return 0

    from transformers import AutoTokenizer

    from tests.tiny_model import build_tiny_model
    from training.data import DataConfig, build_dataset
    from training.finetune import quiet_libraries

    quiet_libraries()
    scratch = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        repo = scratch / args.package
        shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / args.package, repo,
                        ignore=shutil.ignore_patterns("__pycache__"))
        model = build_tiny_model(scratch / "model", hidden_size=args.hidden, layers=args.layers)
        tokenizer = AutoTokenizer.from_pretrained(model)
        data = scratch / "data"
        config = DataConfig(prompt_tokens=args.seq_len * 3 // 4)
        started = time.perf_counter()
        manifest = build_dataset([repo], data, config, tokenizer=tokenizer)
        build_s = time.perf_counter() - started
        n_samples = manifest["counts"]["train"]["total"] + manifest["counts"]["heldout"]["total"]
        runs: dict[str, list[dict]] = {"ours": [], "bare": []}
        for _ in range(args.repeats):
            for kind in ("ours", "bare"):   # alternate, so drifting machine load hits both alike
                runs[kind].append(_run_worker(kind, args, scratch, data, model, repo))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    params = f"hidden {args.hidden}, {args.layers} layers"
    print(f"training bench: LoRA on a tiny Llama ({params}), {args.steps} steps x batch {args.batch_size}, "
          f"seq <= {args.seq_len}, OMP_NUM_THREADS={args.threads}, {args.repeats} alternating repeats (medians)")
    print(f"  data builder: {n_samples} samples from stdlib {args.package} in {build_s:.1f} s = "
          f"{n_samples / build_s:.1f} samples/s (with repository context)")
    for kind in ("ours", "bare"):
        print(f"  {kind:>4}: {median(kind, 'tokens_per_s'):8.0f} tokens/s   peak RSS {median(kind, 'peak_rss_mb'):7.0f} MB"
              f"   final loss {median(kind, 'final_loss'):.4f}   runs: "
              + ", ".join(f"{r['tokens_per_s']:.0f}" for r in runs[kind]))
    speed = median("ours", "tokens_per_s") / median("bare", "tokens_per_s")
    memory = median("bare", "peak_rss_mb") / median("ours", "peak_rss_mb")
    print(f"  ratio tokens/s ours/bare = {speed:.3f} (target >= 0.9)")
    print(f"  ratio peak RSS bare/ours = {memory:.3f} (target >= 0.9; ours uses {1 / memory:.2f}x the memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
