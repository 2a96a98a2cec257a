"""Benchmark: does a LoRA or in-context examples help the real model most on R and Racket?

    python bench/lowres_lora.py --base /work/dl/qwen-0.5b-hf [--steps 100] [--limit 20] [--work runs/lowres-lora]

"No Silver Bullet" (Cassano et al.) asked whether parameter-efficient fine-tuning or in-context
examples help code models most on low-resource languages. This reproduces the question on this
machine, end to end, with the real CLIs:

1. Training corpora from sources installed here (licences in ``--work/corpus/SOURCES.md``):
   R's base, stats and utils functions deparsed by Rscript into ``.R`` files (R keeps them in
   lazy-load databases, not as source files), and the ``racket`` collection of Racket's collects.
2. One LoRA on both folders (``repocomplete finetune``), without repository context because the
   ``lowres`` suite prompts without retrieval; hyperparameters are fixed in this file, not tuned
   on the test tasks.
3. The LoRA merged into a copy of the base weights (``W + BA``, fp32): served as a plain model it
   takes the engine's path the base takes (the bf16 prefill copy on CPUs with AMX), so the LoRA
   cells differ from the base cells in the weights only. (``--adapter`` applies it at run time, but
   adapted prompts are processed in fp32: about 3x slower prefill and other numerics.)
4. ``repocomplete eval lowres --variants baseline few_shot`` for the base model and for the
   merged LoRA, on the same ``--limit`` tasks per language (same ``--seed``), then the four cells
   (base, base + examples, LoRA, LoRA + examples) per language with 95% intervals.

Every step is resumable: rerunning the command continues the training from its last checkpoint
and the evals from their last finished sample; finished steps are skipped. Long: run it niced in
the background (``OMP_NUM_THREADS=1 nohup nice -n 19 python bench/lowres_lora.py ... &``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The training run, fixed before any test result was seen (one mixed R + Racket adapter).
TRAINING = ("--lora-r", "16", "--lora-alpha", "32", "--batch-size", "1", "--max-seq-len", "512",
            "--samples-per-file", "4", "--split", "files", "--no-context", "--eval-every", "50",
            "--eval-samples", "16", "--em-samples", "0", "--save-every", "20", "--seed", "0",
            "--allow-no-improvement")
VARIANTS = ("baseline", "few_shot")
R_PACKAGES = ("base", "stats", "utils")
RACKET_COLLECTION = Path("/usr/share/racket/collects/racket")

#: Writes every exported closure of the packages as ``name <- function ...`` (15 per file).
_DEPARSE = r"""
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
for (pkg in args[-1]) {
  ns <- asNamespace(pkg)
  chunks <- character(0)
  for (name in sort(getNamespaceExports(pkg))) {
    f <- get(name, envir = ns)
    if (!is.function(f) || is.primitive(f)) next
    lines <- sub("[ \t]+$", "", deparse(f, width.cutoff = 80L))
    target <- if (make.names(name) == name) name else paste0("`", name, "`")
    chunks <- c(chunks, paste0(target, " <- ", paste(lines, collapse = "\n"), "\n"))
  }
  dir.create(file.path(out, pkg), recursive = TRUE, showWarnings = FALSE)
  groups <- split(chunks, ceiling(seq_along(chunks) / 15))
  for (i in seq_along(groups)) {
    writeLines(paste(groups[[i]], collapse = "\n"), file.path(out, pkg, sprintf("%s_%03d.R", pkg, i)))
  }
  cat(pkg, length(chunks), "functions\n")
}
"""

SOURCES = """# Training corpora of bench/lowres_lora.py

| folder | what | licence |
|---|---|---|
| `r/` | R {r_version}: the exported functions of {r_packages}, deparsed by `Rscript` (R keeps them in lazy-load databases; deparsing drops comments) | GPL-2 \\| GPL-3 (R's base packages: `License: Part of R`; R is GPL-2 \\| GPL-3, `/usr/share/doc/r-base-core/copyright`) |
| `racket/` | Racket {racket_version}: the `racket` collection of `{racket}` ({racket_files} `.rkt` files) | MIT or Apache-2.0 at the user's choice (Racket's licence since v7.5, stated by the LICENSE files of the installed packages, e.g. `/usr/share/racket/pkgs/net/LICENSE`; Debian's `/usr/share/doc/racket/copyright` still carries the older LGPL text) |
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def _version(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def build_corpora(corpus: Path, r_packages: tuple[str, ...] = R_PACKAGES,
                  racket_collection: Path = RACKET_COLLECTION) -> tuple[Path, Path]:
    """``corpus/r`` and ``corpus/racket`` (built once, atomically) and ``corpus/SOURCES.md``."""
    for tool in ("Rscript", "racket"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not installed: apt-get install r-base-core racket")
    r_dir, racket_dir = corpus / "r", corpus / "racket"
    corpus.mkdir(parents=True, exist_ok=True)
    if not r_dir.exists():
        with tempfile.TemporaryDirectory(dir=corpus) as tmp:
            script = Path(tmp) / "deparse.R"
            script.write_text(_DEPARSE, encoding="utf-8")
            _run(["Rscript", str(script), str(Path(tmp) / "r"), *r_packages])
            os.replace(Path(tmp) / "r", r_dir)
    if not racket_dir.exists():
        tmp = corpus / "racket.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(racket_collection, tmp, ignore=lambda d, names: [
            n for n in names if not (n.endswith(".rkt") or (Path(d) / n).is_dir()) or n == "compiled"])
        os.replace(tmp, racket_dir)
    (corpus / "SOURCES.md").write_text(SOURCES.format(
        r_version=_version(["Rscript", "-e", "cat(format(getRversion()))"]), r_packages=", ".join(r_packages),
        racket_version=_version(["racket", "-e", "(display (version))"]), racket=racket_collection,
        racket_files=sum(1 for _ in racket_dir.rglob("*.rkt"))), encoding="utf-8")
    return r_dir, racket_dir


def train(args, corpora: tuple[Path, Path], adapter: Path, env: dict) -> None:
    """The LoRA, resumed from its last checkpoint when a run was interrupted; skipped when written."""
    if (adapter / "adapter_config.json").exists():
        print(f"adapter {adapter} already trained", flush=True)
        return
    partial = adapter.with_name(adapter.name + ".partial")   # training.finetune.run.work_dir
    resume = ["--resume"] if any((partial / "checkpoints").glob("*")) else []
    _run([sys.executable, "-m", "repocomplete", "finetune", *map(str, corpora), "--base", args.base,
          "--out", str(adapter), "--max-steps", str(args.steps), *TRAINING, *resume, "--json"], env=env, cwd=ROOT)


def merge(base: str, adapter: Path, out: Path) -> None:
    """``out``: the base's weights with the LoRA merged in, and its tokenizer (written once, atomically)."""
    if (out / "config.json").exists():
        return
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repocomplete.model_resolution import resolve_model

    resolved = resolve_model(base)
    folder = resolved.path
    print(f"merging {adapter} into {folder}", flush=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if resolved.fim_order:
        # The base's measured layout (its catalogue entry: SPM for the 0.5B) goes with the weights, so
        # the LoRA cells are served in the layout the base cells are.
        merged.config.repocomplete_fim_order = resolved.fim_order
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
    os.replace(tmp, out)


def evaluate(args, model: str, out: Path, env: dict) -> None:
    _run([sys.executable, "-m", "repocomplete", "eval", "lowres", "--model", model, "--backend", "transformers",
          "--variants", *VARIANTS, "--limit", str(args.limit), "--seed", str(args.seed),
          "--max-tokens", str(args.max_tokens), "--out", str(out), "--no-progress", "--json"],
         env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


CELLS = (("base", "eval-base", "{language}/baseline"), ("base + examples", "eval-base", "{language}/few_shot"),
         ("LoRA", "eval-lora", "{language}/baseline"), ("LoRA + examples", "eval-lora", "{language}/few_shot"))


def _passes(work: Path) -> dict[str, dict[str, float]]:
    """setting -> task id -> pass@1, from the runs' sample logs (finished or not)."""
    found: dict[str, dict[str, float]] = {}
    # eval-lora-r and eval-lora-racket count as eval-lora: one run per language picks the same tasks
    logs = [(run, log) for run in {folder for _, folder, _ in CELLS} for log in sorted(work.glob(f"{run}*/samples.jsonl"))]
    for run, log in logs:
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            found.setdefault(f"{run}:{record['setting']}", {})[record["id"]] = record["metrics"]["pass@1"]
    return found


def table(work: Path) -> str:
    """Per language: pass@1 of the four cells on the tasks all four have finished (passed/n, mean,
    95% bootstrap interval as in the suite's reports)."""
    from evals.report import bootstrap_ci

    passes = _passes(work)
    lines = ["| language | n | " + " | ".join(name for name, _, _ in CELLS) + " |", "|---|---|" + "---|" * len(CELLS)]
    for language, title in (("r", "R"), ("racket", "Racket")):
        cells = [passes.get(f"{run}:{setting.format(language=language)}", {}) for _, run, setting in CELLS]
        tasks = sorted(set.intersection(*(set(c) for c in cells)))
        values = [[cell[t] for t in tasks] for cell in cells]
        shown = []
        for v in values:
            low, high = bootstrap_ci(v) if v else (float("nan"), float("nan"))
            shown.append(f"{sum(v):.0f}/{len(v)} = {sum(v) / len(v):.2f} [{low:.2f}, {high:.2f}]" if v else "-")
        lines.append(f"| {title} | {len(tasks)} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="base model (HF folder, GGUF or catalogue name); not needed with --table-only")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "lowres-lora", help="corpora, adapter and runs")
    parser.add_argument("--steps", type=int, default=100, help="LoRA optimizer steps (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=20, help="tasks per language (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task sample (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generation limit (default: %(default)s)")
    parser.add_argument("--table-only", action="store_true",
                        help="only print the table from the runs so far (e.g. of a run stopped at a deadline)")
    args = parser.parse_args()
    if not (args.base or args.table_only):
        parser.error("--base is required (unless --table-only)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    work = args.work.resolve()
    adapter = work / "adapter"
    if not args.table_only:
        corpora = build_corpora(work / "corpus")
        train(args, corpora, adapter, env)
        evaluate(args, args.base, work / "eval-base", env)
        merge(args.base, adapter, work / "merged")
        evaluate(args, str(work / "merged"), work / "eval-lora", env)
    card = adapter / "README.md"   # the adapter's model card: losses before/after, data, command
    result = table(work)
    (work / "table.md").write_text(result + "\n", encoding="utf-8")
    print(result)
    if card.exists():
        print(f"adapter: {card}")
    print(f"runs: {work / 'eval-base'} {work / 'eval-lora'} (`repocomplete eval report` puts them side by side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
