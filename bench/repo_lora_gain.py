"""Benchmark: does a repository's own LoRA beat the base model with the same retrieved context on
the repository's future? One command, resumable:

    python bench/repo_lora_gain.py --base /work/dl/qwen-0.5b-hf --work runs/repo-lora-gain [--repos email httpx]

For each repository (real code nobody here wrote, turned into a two-commit git history):

1. history: the past commit holds the package with a few modules cut at a definition after 85% of
   their lines and one module missing; the future commit grows those modules back and
   adds the missing one (``REPOSITORIES``). ``peft``, ``transformers`` and ``huggingface_hub`` are
   histories of code written after the base model's training data: the past holds peft's older
   tuners (older transformers model families, the hub's first inference providers), the future
   adds the tuners (families, providers) released from 2025 on;
2. ``repocomplete finetune`` trains a LoRA on the past (the default time split holds out the lines
   of the future commit), continuing from its last checkpoint if interrupted;
3. ``repocomplete eval repo --after PAST`` completes holes on the future's lines only: the base and
   the adapter with the same fused retrieved context (paired, ``adapter_vs_base``), and the base
   with no repository context (``none``) on the same holes (seed and limit fixed), which gives the
   repository-context gain. An adapter with no context is not run: it is the costliest arm on a
   CPU (an adapted request runs in fp32) and answers no question asked here.

``--context-only`` skips the LoRA: the base with and without fused context on the same holes, which
is the repository row of docs/MODELS.md for any model (``--base default`` for the embedded one).

Every stage is skipped when its output exists, so a rerun continues where it stopped. Prints, and
writes to ``WORK/results.json``, one table per repository: exact match of base/none, base/fused,
adapter/fused, the adapter's paired difference with its 95% interval and the relative gain, and the
base's fused/none ratio with its paired interval. Figures go to docs/finetuning.md and
docs/BENCHMARKS.md with this command.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.report import bootstrap_ci, ratio_ci  # noqa: E402
from training.finetune.adapter import METRICS_FILE  # noqa: E402


@dataclass(frozen=True)
class Source:
    """A package turned into a history: ``grow`` modules lose their last definitions (about the
    last 15% of their lines, :func:`past_text`) in the past; ``arrives`` (files or folders) is
    missing from it. ``include`` copies only those paths of the package (all of it when empty),
    keeping the files whose names match ``patterns``."""

    package: str
    where: str            # "stdlib" or "site-packages"
    licence: str
    grow: tuple[str, ...]
    arrives: tuple[str, ...] | str
    include: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        if isinstance(self.arrives, str):
            object.__setattr__(self, "arrives", (self.arrives,))

    def path(self) -> Path:
        if self.where == "stdlib":
            return Path(sysconfig.get_paths()["stdlib"]) / self.package
        return Path(sysconfig.get_paths()["purelib"]) / self.package


#: peft's tuners added after Qwen2.5-Coder's training data was collected (2024): their code is
#: new to the base model, written in the patterns of the older tuners the past holds.
PEFT_NEW_TUNERS = ("adamss", "beft", "c3a", "cartridge", "deft", "delora", "frod", "glora", "gralora", "hira",
                   "lily", "miss", "osf", "peanut", "psoft", "pvera", "randlora", "road", "shadow", "shira",
                   "supertuning", "tinylora", "trainable_tokens", "unilora", "waveft")
#: huggingface_hub's inference providers: the past holds the provider helpers of its first
#: release with providers (0.28, January 2025) and the shared ``_common`` base classes; the
#: future adds the providers that came later in 2025 and the registry (``__init__``) that names
#: them all (left in the past, it would hand the training the future's class names).
HUB_NEW_PROVIDERS = ("baseten", "cerebras", "cohere", "deepinfra", "featherless_ai", "fireworks_ai", "groq",
                     "nscale", "openai", "ovhcloud", "publicai", "scaleway", "wavespeed", "zai_org", "__init__")
#: transformers model families: the past holds families of 2023-2024, the future adds ones
#: released from late 2024 on (each a model folder: configuration, modular and modeling files).
TRANSFORMERS_PAST = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "gemma", "gemma2", "phi3", "starcoder2",
                     "olmo", "cohere", "granite")
TRANSFORMERS_NEW = ("qwen3", "qwen3_moe", "olmo2", "olmo3", "cohere2", "glm4", "smollm3", "ernie4_5", "arcee",
                    "exaone4", "seed_oss", "apertus", "hunyuan_v1_dense")

REPOSITORIES = {
    "email": Source("email", "stdlib", "PSF-2.0 (CPython standard library)",
                    ("_header_value_parser.py", "message.py", "utils.py", "feedparser.py"), "contentmanager.py"),
    "httpx": Source("httpx", "site-packages", "BSD-3-Clause (httpx 0.28.1, encode)",
                    ("_client.py", "_models.py", "_urls.py", "_config.py"), "_auth.py"),
    # Code written after the base model's data: what the model cannot have memorised.
    "peft": Source("peft", "site-packages", "Apache-2.0 (peft 0.21.2, Hugging Face)", (),
                   tuple(f"tuners/{name}" for name in PEFT_NEW_TUNERS)),
    "transformers": Source("transformers", "site-packages", "Apache-2.0 (transformers 5.24.0, Hugging Face)", (),
                           tuple(f"models/{name}" for name in TRANSFORMERS_NEW),
                           include=tuple(f"models/{name}" for name in (*TRANSFORMERS_PAST, *TRANSFORMERS_NEW)),
                           patterns=("__init__.py", "configuration_*.py", "modular_*.py", "modeling_*.py")),
    "huggingface_hub": Source("huggingface_hub", "site-packages", "Apache-2.0 (huggingface_hub 2.4.0, Hugging Face)",
                              (), tuple(f"inference/_providers/{name}.py" for name in HUB_NEW_PROVIDERS)),
}
KINDS = ("line", "rest_of_line", "cross_file")
_GIT_ENV = {"GIT_AUTHOR_NAME": "history", "GIT_AUTHOR_EMAIL": "history@example.com",
            "GIT_COMMITTER_NAME": "history", "GIT_COMMITTER_EMAIL": "history@example.com",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, **_GIT_ENV}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def past_text(text: str, keep: float = 0.85) -> str:
    """``text`` cut at the first definition (top-level, or a method of a top-level class;
    decorators included) that starts after ``keep`` of its lines: what remains parses, and the
    future adds the rest (a few hundred lines for a large module, not whole classes)."""
    tree = ast.parse(text)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    defs = [n for n in tree.body if isinstance(n, kinds)]
    defs += [m for n in tree.body if isinstance(n, ast.ClassDef) for m in n.body[1:] if isinstance(m, kinds)]
    starts = sorted(min([d.lineno, *(x.lineno for x in d.decorator_list)]) for d in defs)
    limit = len(text.splitlines()) * keep
    cut = next((s for s in starts if s >= limit), starts[-1]) - 1
    return "\n".join(text.splitlines()[:cut]) + "\n"


def make_history(source: Source, dest: Path) -> str:
    """The two-commit repository at ``dest`` (built once; fixed dates, so the same commits every
    time); returns the past commit's id."""
    if not (dest / ".git").exists():
        tmp, stash = dest.with_name(dest.name + ".tmp"), dest.with_name(dest.name + ".arriving")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(stash, ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in source.include or ("",):
            origin, target = source.path() / part, tmp / part
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=ignore)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
        for path in [p for p in tmp.rglob("*") if p.is_file()]:
            if not any(fnmatch.fnmatch(path.name, pattern) for pattern in source.patterns):
                path.unlink()
        full = {name: (tmp / name).read_text(encoding="utf-8") for name in source.grow}
        for name in source.grow:
            (tmp / name).write_text(past_text(full[name]), encoding="utf-8")
        for name in source.arrives:
            (stash / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(tmp / name, stash / name)
        _git(tmp, "init", "-q")
        _git(tmp, "add", "-A")
        _git(tmp, "commit", "-q", "-m", "the past")
        for name in source.grow:
            (tmp / name).write_text(full[name], encoding="utf-8")
        for name in source.arrives:
            shutil.move(stash / name, tmp / name)
        shutil.rmtree(stash)
        _git(tmp, "add", "-A")
        what = "modules grow, " * bool(source.grow) + ("one arrives" if len(source.arrives) == 1 else "new ones arrive")
        _git(tmp, "commit", "-q", "-m", f"the future: {what}", date="2024-02-01T00:00:00Z")
        tmp.rename(dest)   # only a finished history is ever used
    return _git(dest, "rev-parse", "HEAD~1")


def _run(command: list[str], log: Path) -> None:
    """Run a stage with its output appended to ``log``; a failure stops the benchmark."""
    print("$", " ".join(command), flush=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code:
        sys.exit(f"failed ({code}): {' '.join(command)}; see {log}")


def train(args, repo: Path, adapter: Path, log: Path) -> None:
    if (adapter / "adapter_config.json").exists():
        return
    checkpoints = adapter.with_name(adapter.name + ".partial") / "checkpoints"
    resume = checkpoints.is_dir() and any(checkpoints.iterdir())
    _run([sys.executable, "-m", "repocomplete", "finetune", str(repo), "--base", args.base, "--out", str(adapter),
          "--lora-r", str(args.rank), "--lora-alpha", str(2 * args.rank), "--max-steps", str(args.steps),
          "--batch-size", "1", "--max-seq-len", str(args.seq_len), "--samples-per-file", str(args.samples_per_file),
          # held-out loss only at the end: the held-out set is the future the benchmark scores, so no
          # checkpoint is chosen by it (no early stopping); the adapter is published either way
          "--eval-every", str(args.steps), "--patience", "0", "--eval-samples", "16", "--em-samples", "4",
          "--save-every", "5", "--allow-no-improvement", "--json",
          *(["--resume"] if resume else [])], log)


def evaluate(args, name: str, repo: Path, past: str, adapter: Path | None, runs: Path, log: Path) -> tuple[Path, Path]:
    """The none and fused runs on the future's holes (the fused one with ``adapter`` beside the
    base unless it is None); each is skipped once finished at this limit."""
    common = [sys.executable, "-m", "repocomplete", "eval", "repo", str(repo), "--model", args.base,
              "--after", past, "--kinds", *KINDS, "--seed", "0", "--no-progress", "--json"]
    # A smaller --limit's seeded sample is part of a larger one's wherever random.sample draws both
    # the same way (it does for the pools here), so a none run with more holes holds the fused
    # run's; the table pairs only holes present in both runs either way (its n says how many).
    # A run folder continues with a larger --limit (finished holes are kept), so the folders are
    # per setting and a marker records the limit each finished with.
    none_limit = args.none_limit or args.limit
    fused, none = runs / "fused", runs / "none"
    with_adapter = [] if adapter is None else ["--adapter", f"{name}={adapter}", "--replay-commits", str(args.replay_commits)]
    for out, limit, extra in ((none, none_limit, ["--settings", "none"]),
                              (fused, args.limit, ["--settings", "fused", *with_adapter])):
        # a base-only fused run is marked apart: a later run with the adapter must not take it as its own
        done = out / (f"finished-limit-{limit}" + ("-base-only" if adapter is None and out == fused else ""))
        if not done.exists():
            _run([*common, *extra, "--limit", str(limit), "--out", str(out)], log)
            done.touch()
    return fused, none


def _records(run: Path) -> dict[str, dict]:
    records = {}
    for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        for record in json.loads(line).get("records", [json.loads(line)]):
            if "key" in record:
                records[record["key"]] = record
    return records


def table(name: str, fused: Path, none: Path, adapter: bool = True) -> dict:
    """The repository's figures: the adapter's paired gain from the fused run (unless ``adapter``
    is False: a context-only run has no adapter arm), the base's context gain from pairing the none
    run's holes with the fused run's."""
    summary = json.loads((fused / "summary.json").read_text(encoding="utf-8")) if (fused / "summary.json").exists() else {}
    with_context, without = _records(fused), _records(none)
    rows = {}
    for kind in (*KINDS, "all"):
        pairs = [(without[k.removesuffix(":fused") + ":none"], r) for k, r in with_context.items()
                 if k.endswith(":fused") and k.removesuffix(":fused") + ":none" in without
                 and (kind == "all" or r["setting"].startswith(kind + "/"))]
        adapted = [with_context.get(f"{r['key']}+{name}") for _, r in pairs] if adapter else []
        if not pairs or None in adapted:
            continue
        em = lambda rs: [r["metrics"]["exact_match"] for r in rs]  # noqa: E731
        base_none, base_fused = em(p[0] for p in pairs), em(p[1] for p in pairs)
        n = len(pairs)
        arms = [("base_none", [p[0] for p in pairs]), ("base_fused", [p[1] for p in pairs])]
        rows[kind] = {
            "n": n, "base_none": sum(base_none) / n, "base_fused": sum(base_fused) / n,
            "context_ratio": sum(base_fused) / sum(base_none) if sum(base_none) else None,
            "context_ratio_ci95": list(ratio_ci(base_fused, base_none)) if sum(base_none) else None,
        }
        if adapter:
            ours = em(adapted)
            arms.append(("adapter_fused", adapted))
            rows[kind].update({
                "adapter_fused": sum(ours) / n,
                "adapter_difference_ci95": list(bootstrap_ci([a - b for a, b in zip(ours, base_fused)])),
                "adapter_relative": (sum(ours) - sum(base_fused)) / sum(base_fused) if sum(base_fused) else None,
            })
        rows[kind]["edit_similarity"] = {arm: sum(r["metrics"]["edit_similarity"] for r in rs) / n for arm, rs in arms}
    return {"rows": rows, "adapter_vs_base": summary.get("adapter_vs_base", {})}


def print_table(results: dict, adapter: bool = True) -> None:
    """The markdown table of ``results`` (one row per repository and hole kind)."""
    if not adapter:
        print("| repository | kind | n | base, no context | base, fused | fused / none (95% CI) | edit similarity, none / fused |")
        print("|---|---|---|---|---|---|---|")
    else:
        print("| repository | kind | n | base, no context | base, fused | adapter, fused | adapter - base (95% CI) | relative | fused / none |")
        print("|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        for kind, row in result["rows"].items():
            ratio = "n/a" if row["context_ratio"] is None else f"{row['context_ratio']:.2f}x"
            if not adapter:
                low_high = "" if row["context_ratio_ci95"] is None else " [{:.2f}, {:.2f}]".format(*row["context_ratio_ci95"])
                similarity = row["edit_similarity"]
                print(f"| {name} | {kind} | {row['n']} | {row['base_none']:.3f} | {row['base_fused']:.3f} | {ratio}{low_high} | "
                      f"{similarity['base_none']:.3f} / {similarity['base_fused']:.3f} |")
                continue
            low, high = row["adapter_difference_ci95"]
            relative = "n/a" if row["adapter_relative"] is None else f"{row['adapter_relative']:+.0%}"
            print(f"| {name} | {kind} | {row['n']} | {row['base_none']:.3f} | {row['base_fused']:.3f} | "
                  f"{row['adapter_fused']:.3f} | {row['adapter_fused'] - row['base_fused']:+.3f} "
                  f"[{low:+.3f}, {high:+.3f}] | {relative} | {ratio} |")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="base model (a transformers folder, GGUF file or catalogue name)")
    parser.add_argument("--work", type=Path, required=True, help="folder of the histories, adapters and eval runs")
    parser.add_argument("--repos", nargs="+", default=list(REPOSITORIES), choices=list(REPOSITORIES))
    parser.add_argument("--steps", type=int, default=50, help="LoRA optimizer steps (batch 1)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--samples-per-file", type=int, default=8)
    parser.add_argument("--limit", type=int, default=34, help="holes per kind (line, rest_of_line, cross_file)")
    parser.add_argument("--none-limit", type=int, help="holes per kind of the base-without-context run "
                        "(default: --limit; more only adds holes the fused run does not have)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the holes the eval runs finished so far; start nothing")
    parser.add_argument("--replay-commits", type=int, default=0, help="acceptance replay of the future commit (1) or not (0)")
    parser.add_argument("--context-only", action="store_true",
                        help="no LoRA: the base with and without fused context only (any model, 'default' included)")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    results = {}
    for name in args.repos:
        where = args.work / name
        where.mkdir(parents=True, exist_ok=True)
        log = where / "log.txt"
        repo = where / name   # the folder name is the repository's (and the adapter's) name
        adapter = where / "adapters" / name
        if args.table_only:   # what the runs hold so far, nothing started
            past, fused, none = _git(repo, "rev-parse", "HEAD~1"), where / "eval" / "fused", where / "eval" / "none"
            if not (fused / "samples.jsonl").exists() or not (none / "samples.jsonl").exists():
                continue
        else:
            past = make_history(REPOSITORIES[name], repo)
            if not args.context_only:
                train(args, repo, adapter, log)
            fused, none = evaluate(args, name, repo, past, None if args.context_only else adapter, where / "eval", log)
        results[name] = {"past": past, "licence": REPOSITORIES[name].licence,
                         **table(name, fused, none, adapter=not args.context_only)}
        if not args.context_only:
            metrics = json.loads((adapter / METRICS_FILE).read_text(encoding="utf-8")) if (adapter / METRICS_FILE).exists() else {}
            results[name]["finetune"] = {k: metrics.get(k) for k in ("before", "after", "steps", "train_tokens", "tokens_per_s")}
    if not args.table_only:
        tmp = args.work / "results.json.tmp"
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        tmp.replace(args.work / "results.json")
    print_table(results, adapter=not args.context_only)
    if not args.table_only:
        print(f"results: {args.work / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
