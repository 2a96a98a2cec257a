"""Benchmark: what `repocomplete finetune` costs on this machine for a real base model.

    python bench/finetune_cost.py --base /work/dl/qwen-0.5b-hf [--steps 6] [--threads 2] [--ranks 8,16]

Runs the real CLI (a subprocess per configuration, so peak RSS is its own) on a stdlib package
turned into a git repository: LoRA at each rank with bf16 autocast (the default where the CPU
has AMX / AVX512-BF16), and the first rank again in fp32 as the baseline measured in the same
run. Prints tokens/s and tokens per CPU-second (training steps only), seconds per step, peak RSS and the ratios
bf16/fp32 and rank/rank. Figures go to docs/BENCHMARKS.md with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def make_repo(dest: Path, package: str) -> Path:
    """A stdlib package as a git repository with two commits (the newest file held out)."""
    shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / package, dest, ignore=shutil.ignore_patterns("__pycache__"))
    files = sorted(p.name for p in dest.iterdir() if p.is_file())
    _git(dest, "init", "-q")
    _git(dest, "add", *files[:-1])
    _git(dest, "commit", "-q", "-m", "older")
    _git(dest, "add", ".")
    _git(dest, "commit", "-q", "-m", "newest")
    return dest


_PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run(args, repo: Path, out: Path, rank: int, precision: str) -> dict:
    command = [sys.executable, "-m", "repocomplete", "finetune", str(repo), "--base", args.base, "--out", str(out),
               "--lora-r", str(rank), "--lora-alpha", str(2 * rank), "--precision", precision,
               "--max-steps", str(args.steps), "--batch-size", "1", "--max-seq-len", str(args.seq_len),
               "--eval-every", "0", "--save-every", "0", "--eval-samples", "2", "--em-samples", "0",
               "--samples-per-file", "4", "--allow-no-improvement", "--force", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    # a fresh launcher per run: its children's peak RSS is this run's alone
    launcher = [sys.executable, "-c", _PEAK_RSS, *command]
    started = time.perf_counter()
    done = subprocess.run(launcher, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"r={rank} {precision} failed:\n{done.stderr[-3000:]}")
    peak = int(done.stderr.strip().splitlines()[-1].removeprefix("peak_rss_kb "))
    metrics = json.loads((out / "metrics.json").read_text())
    tokens, tps = metrics["train_tokens"], metrics["tokens_per_s"]
    return {"rank": rank, "precision": precision, "steps": metrics["steps"], "tokens": tokens,
            "tokens_per_s": round(tps, 1), "s_per_step": round(tokens / tps / metrics["steps"], 2),
            "tokens_per_cpu_s": round(metrics["tokens_per_cpu_s"], 1),
            "peak_rss_gb": round(peak / 2**20, 2), "wall_s": round(wall)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="base model (catalogue name, .gguf or transformers folder)")
    parser.add_argument("--package", default="json", help="stdlib package used as the repository")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ranks", default="8,16")
    args = parser.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-finetune-cost-"))
    try:
        repo = make_repo(scratch / args.package, args.package)
        rows = [run(args, repo, scratch / f"fp32-r{ranks[0]}", ranks[0], "fp32")]
        rows += [run(args, repo, scratch / f"bf16-r{rank}", rank, "auto") for rank in ranks]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'rank':>4} {'precision':>9} {'steps':>5} {'tokens/s':>9} {'tok/CPU-s':>9} {'s/step':>7} "
          f"{'peak RSS GB':>11} {'wall s':>6}")
    for row in rows:
        print(f"{row['rank']:>4} {row['precision']:>9} {row['steps']:>5} {row['tokens_per_s']:>9} "
              f"{row['tokens_per_cpu_s']:>9} {row['s_per_step']:>7} {row['peak_rss_gb']:>11} {row['wall_s']:>6}")
    # tokens per CPU-second: the ratio a loaded machine distorts least
    for key, what in (("tokens_per_cpu_s", "tokens/CPU-s"), ("tokens_per_s", "tokens/s")):
        base = rows[0][key]
        print(f"bf16 autocast / fp32 {what} at r={ranks[0]}: {rows[1][key] / base:.2f}x")
        for row in rows[2:]:
            print(f"r={row['rank']} / r={ranks[0]} {what} (bf16): {row[key] / rows[1][key]:.2f}x")
    print(json.dumps({"rows": rows, "load_avg": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
