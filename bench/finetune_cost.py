"""Benchmark: what `repocomplete finetune` costs on this machine for a real base model.

    python bench/finetune_cost.py --base /work/dl/qwen-0.5b-hf [--steps 17] [--warmup 2] [--threads 2]
                                  [--ranks 8,16] [--precisions fp32,bf16] [--epoch-tokens 200000]

Runs the real CLI, one subprocess per configuration under ``/usr/bin/time -v`` (peak RSS is
that process's own), on a stdlib package turned into a two-commit git repository: LoRA on every
projection at each rank, fp32 first (the baseline measured in the same run) then bf16 autocast
(skipped where the CPU has no AMX / AVX512-BF16). From the per-step costs the trainer records
in ``metrics.json`` (the first ``--warmup`` steps left out: allocator growth, first-call kernels)
it prints, per row: tokens/s, CPU-seconds per 512 trained tokens, seconds per step, peak RSS,
the load average before and after the run, and the wall time of one epoch over
``--epoch-tokens`` tokens *derived* from the measured rate (training steps only). Then the
ratios bf16/fp32 at each rank and rank/first rank at each precision. Figures go to
docs/BENCHMARKS.md and docs/finetuning.md with this command.

    python bench/finetune_cost.py --base qwen2.5-coder-0.5b --epoch-run fastapi [--rank 8]

instead *measures* one epoch end to end: an installed (or stdlib) package as the repository
(every file but the last in path order is the past, that last file the held-out future), its
size in the base model's tokens, then ``repocomplete finetune --epochs 1`` with the product's
defaults except batch 1, samples of up to ``--seq-len`` tokens, no early stopping (so the epoch
is whole) and a held-out evaluation and checkpoint every ``--eval-every`` steps (default 50, as
``finetune``'s), under ``/usr/bin/time -v``. It reports the wall time of the whole command and
of its training steps (the rest: data, held-out evaluations, checkpoints, publishing), tokens
trained, tokens/s, peak RSS and the held-out metrics before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the project packages first, ahead of bench/


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def package_dir(package: str) -> Path:
    """The source folder of a stdlib package, else of an installed one."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / package
    if stdlib.is_dir():
        return stdlib
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"no package {package!r} in the standard library or the environment")
    return Path(list(spec.submodule_search_locations)[0])


def make_repo(dest: Path, package: str) -> Path:
    """A package as a git repository with two commits: every file but the last in path order,
    then that last file (the held-out future)."""
    shutil.copytree(package_dir(package), dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    _git(dest, "init", "-q")
    _git(dest, "add", *files[:-1])
    _git(dest, "commit", "-q", "-m", "older")
    _git(dest, "add", ".")
    _git(dest, "commit", "-q", "-m", "newest")
    return dest


def peak_rss_gb(time_v: str) -> float:
    """Peak RSS from ``/usr/bin/time -v``'s report, in GB (10^9 bytes)."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_v)
    if not found:
        raise SystemExit(f"no peak RSS in /usr/bin/time's report:\n{time_v[-2000:]}")
    return int(found.group(1)) * 1024 / 1e9


def steady_state(history: list[dict], warmup: int) -> dict:
    """Per-step cost over the steps after the first ``warmup`` ones (the trainer's history)."""
    steps = [h for h in history if h["step"] > warmup]
    if not steps:
        raise SystemExit(f"no steps after the {warmup} warm-up steps: raise --steps")
    tokens = sum(h["tokens"] for h in steps)
    seconds = sum(h["seconds"] for h in steps)
    cpu = sum(h["cpu_seconds"] for h in steps)
    rates = sorted(h["tokens"] / h["seconds"] for h in steps)
    return {"measured_steps": len(steps), "tokens": tokens, "tokens_per_s": tokens / seconds,
            "median_step_tokens_per_s": rates[len(rates) // 2],
            "s_per_step": seconds / len(steps), "tokens_per_step": tokens / len(steps),
            "cpu_s_per_512_tokens": cpu * 512 / tokens, "cpu_per_wall": cpu / seconds}


def wait_for_room(gb: float, load: float, max_wait_s: float) -> float:
    """On a shared machine: start a run once the 1-minute load average is at most ``load`` (given up
    after ``max_wait_s``: the run then records the load it had) and then ``gb`` GB of memory are
    available (0: not waited for), polled. Returns the seconds waited."""
    import psutil

    started, in_a_row = time.monotonic(), 0
    while load and os.getloadavg()[0] > load and time.monotonic() - started < max_wait_s:
        time.sleep(10)
    while gb and in_a_row < 3:   # three checks in a row: other jobs' memory comes and goes
        in_a_row = in_a_row + 1 if psutil.virtual_memory().available >= gb * 1e9 else 0
        if not in_a_row:
            print(f"waiting for {gb} GB of available memory ({psutil.virtual_memory().available / 1e9:.1f} GB now)",
                  file=sys.stderr, flush=True)
        if in_a_row < 3:
            time.sleep(10)
    return time.monotonic() - started


def run(args, repo: Path, out: Path, rank: int, precision: str) -> dict:
    command = [sys.executable, "-m", "repocomplete", "finetune", str(repo), "--base", args.base, "--out", str(out),
               "--lora-r", str(rank), "--lora-alpha", str(2 * rank), "--precision", precision,
               "--max-steps", str(args.steps), "--batch-size", "1", "--max-seq-len", str(args.seq_len),
               "--eval-every", "0", "--save-every", "0", "--eval-samples", "2", "--em-samples", "0",
               "--samples-per-file", "6", "--allow-no-improvement", "--force", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT)}
    waited = wait_for_room(args.wait_for_memory_gb, args.wait_for_load, args.max_wait_s)
    load_before = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    if done.returncode != 0:
        raise SystemExit(f"r={rank} {precision} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    steady = steady_state(metrics["history"], args.warmup)
    return {"rank": rank, "precision": precision, "steps": metrics["steps"], **steady,
            "peak_rss_gb": peak_rss_gb(done.stderr), "process_wall_s": wall,
            "epoch_hours_derived": args.epoch_tokens / steady["tokens_per_s"] / 3600,
            "load_before": load_before, "load_after": load_after, "waited_s": waited}


def repo_tokens(repo: Path, base: str) -> tuple[int, int]:
    """(Python files, their tokens in the base model's tokenizer): the repository's size."""
    from transformers import AutoTokenizer

    from repocomplete.model_resolution import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(base).path)
    tokenizer.model_max_length = 10**9   # whole files are counted, not fed to the model
    files = sorted(repo.rglob("*.py"))
    return len(files), sum(len(tokenizer(f.read_text(errors="replace"))["input_ids"]) for f in files)


def epoch_run(args) -> dict:
    """One whole epoch of ``repocomplete finetune`` on a real package, measured end to end."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-finetune-epoch-"))
    try:
        repo = make_repo(scratch / args.epoch_run, args.epoch_run)
        n_files, n_tokens = repo_tokens(repo, args.base)
        out = scratch / "adapter"
        command = [sys.executable, "-m", "repocomplete", "finetune", str(repo), "--base", args.base, "--out", str(out),
                   "--epochs", "1", "--lora-r", str(args.rank), "--lora-alpha", str(2 * args.rank),
                   "--batch-size", "1", "--max-seq-len", str(args.seq_len), "--patience", "0",
                   "--eval-every", str(args.eval_every), "--save-every", str(args.eval_every),
                   "--allow-no-improvement", "--json"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
               "PYTHONPATH": str(ROOT)}
        load_before = os.getloadavg()
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=6 * 3600)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the epoch run failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout)
        metrics = json.loads((out / "metrics.json").read_text())
        train_seconds = sum(h["seconds"] for h in metrics["history"])
        return {"package": args.epoch_run, "files": n_files, "repo_tokens": n_tokens, "rank": args.rank,
                "seq_len": args.seq_len, "eval_every": args.eval_every,
                "train_samples": report["counts"]["train"]["total"],
                "steps": metrics["steps"], "trained_tokens": metrics["train_tokens"],
                "tokens_per_s": metrics["tokens_per_s"], "train_steps_s": train_seconds, "wall_s": wall,
                "peak_rss_gb": peak_rss_gb(done.stderr), "before": metrics["before"], "after": metrics["after"],
                "load_before": load_before, "load_after": os.getloadavg(), "command": command[2:]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def print_epoch(row: dict) -> None:
    wall, train = row["wall_s"], row["train_steps_s"]
    print(f"{row['package']}: {row['files']} files, {row['repo_tokens']:,} tokens; one epoch = {row['train_samples']} "
          f"samples, {row['steps']} steps, {row['trained_tokens']:,} tokens trained (r={row['rank']}, "
          f"samples <= {row['seq_len']} tokens, held-out evaluation every {row['eval_every']} steps)")
    print(f"wall: {wall / 3600:.2f} h for the whole command; training steps {train / 3600:.2f} h "
          f"({train / wall:.0%}), the rest (data, base preparation, held-out evaluations, checkpoints, "
          f"publishing) {(wall - train) / 60:.1f} min")
    print(f"{row['tokens_per_s']:.1f} tokens/s in training; peak RSS {row['peak_rss_gb']:.2f} GB; "
          f"load {row['load_before'][0]:.2f} -> {row['load_after'][0]:.2f}")
    for key in ("heldout_loss", "heldout_next_line_em"):
        print(f"{key}: {row['before'].get(key)} -> {row['after'].get(key)}")
    print(f"scaled to 200,000 tokens trained: {wall * 200_000 / row['trained_tokens'] / 3600:.2f} h")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="base model (catalogue name, .gguf or transformers folder)")
    parser.add_argument("--package", default="json", help="stdlib package used as the repository")
    parser.add_argument("--steps", type=int, default=17, help="optimizer steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the figures")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ranks", default="8,16")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 first: it is the baseline")
    parser.add_argument("--epoch-tokens", type=int, default=200_000, help="repository size of the derived epoch")
    parser.add_argument("--wait-for-memory-gb", type=float, default=0.0, metavar="GB",
                        help="before each run, wait until this much memory is available (a shared machine)")
    parser.add_argument("--wait-for-load", type=float, default=0.0, metavar="L",
                        help="before each run, wait (at most --max-wait-s) until the 1-minute load average is <= L")
    parser.add_argument("--max-wait-s", type=float, default=900.0)
    parser.add_argument("--json-out", type=Path, help="also write the rows here")
    parser.add_argument("--epoch-run", metavar="PACKAGE",
                        help="instead of the rows: measure one whole epoch on this package (stdlib or installed)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of --epoch-run")
    parser.add_argument("--eval-every", type=int, default=50,
                        help="--epoch-run: held-out evaluation and checkpoint every N steps (finetune's default: 50)")
    args = parser.parse_args()
    if args.epoch_run:
        row = epoch_run(args)
        print_epoch(row)
        if args.json_out:
            args.json_out.write_text(json.dumps(row, indent=2) + "\n")
        return 0
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    from repocomplete.backends.transformers import cpu_has_native_bf16

    precisions = args.precisions.split(",")
    if "bf16" in precisions and not cpu_has_native_bf16():
        print("bf16 rows skipped: this CPU has neither AMX nor AVX512-BF16", file=sys.stderr)
        precisions.remove("bf16")
    ranks = [int(r) for r in args.ranks.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-finetune-cost-"))
    rows = []
    try:
        repo = make_repo(scratch / args.package, args.package)
        for rank in ranks:
            for precision in precisions:
                rows.append(run(args, repo, scratch / f"{precision}-r{rank}", rank, precision))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)   # a partial result survives a crash
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"steps {args.warmup + 1}-{args.steps} of each run (the first {args.warmup} are warm-up), "
          f"{args.threads} threads, batch 1, samples <= {args.seq_len} tokens")
    print(f"{'rank':>4} {'precision':>9} {'tokens/s':>8} {'median':>6} {'CPU-s/512 tok':>13} {'s/step':>6} {'tok/step':>8} "
          f"{'CPU/wall':>8} {'peak RSS GB':>11} {'epoch h*':>8}  load before -> after")
    for r in rows:
        print(f"{r['rank']:>4} {r['precision']:>9} {r['tokens_per_s']:>8.1f} {r['median_step_tokens_per_s']:>6.1f} "
              f"{r['cpu_s_per_512_tokens']:>13.2f} "
              f"{r['s_per_step']:>6.2f} {r['tokens_per_step']:>8.0f} {r['cpu_per_wall']:>8.2f} {r['peak_rss_gb']:>11.2f} "
              f"{r['epoch_hours_derived']:>8.2f}  {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}")
    print(f"median: of the steps' own tokens/s; CPU/wall: cores the process had (of {args.threads}); "
          f"* derived: {args.epoch_tokens:,} tokens / the measured tokens/s (training steps only)")
    by = {(r["rank"], r["precision"]): r for r in rows}
    for rank in ranks:
        if (rank, "fp32") in by and (rank, "bf16") in by:
            fp32, bf16 = by[rank, "fp32"], by[rank, "bf16"]
            print(f"r={rank}: bf16 / fp32 tokens/s {bf16['tokens_per_s'] / fp32['tokens_per_s']:.2f}x, "
                  f"CPU-s per 512 tokens {bf16['cpu_s_per_512_tokens'] / fp32['cpu_s_per_512_tokens']:.2f}x")
    for precision in precisions:
        for rank in ranks[1:]:
            if (rank, precision) in by and (ranks[0], precision) in by:
                print(f"{precision}: r={rank} / r={ranks[0]} tokens/s "
                      f"{by[rank, precision]['tokens_per_s'] / by[ranks[0], precision]['tokens_per_s']:.2f}x")
    if args.json_out:
        args.json_out.write_text(json.dumps({"rows": rows, "argv": sys.argv}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
