"""``repocomplete finetune REPO ...``: the repository fine-tuning command."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from indexer.fim_data import SpanConfig
from training.data import DataConfig
from training.finetune.config import METHODS, FinetuneConfig
from training.finetune.evaluation import metrics_table
from training.finetune.run import finetune


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete finetune",
        description="Fine-tune a code model on a repository (LoRA, QLoRA or full) with FIM samples whose "
                    "repository context comes from the serving retrieval; prints held-out loss and next-line "
                    "exact match before and after, and writes an adapter the server loads by name.",
        epilog="Several processes: `accelerate launch -m training.finetune REPO ...` (or torchrun).")
    parser.add_argument("repos", nargs="+", metavar="REPO", help="repository folder(s) to train on")
    parser.add_argument("--base", default="default", metavar="MODEL",
                        help="base model: 'default' (the embedded model), a local path or a cached hub id")
    parser.add_argument("--method", choices=METHODS, default="lora", help="lora (default), qlora (CUDA) or full")
    parser.add_argument("--out", metavar="DIR", help="adapter folder (default: adapters/<repo name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=200, help="optimizer steps (default 200)")
    length.add_argument("--epochs", type=float,
                        help="passes over the training samples instead of --max-steps (the step count is derived "
                             "from the dataset once it is built; early stopping still applies)")
    parser.add_argument("--batch-size", type=int, default=4, help="samples per micro-batch per process")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, help="learning rate (default 2e-4 LoRA, 5e-5 full)")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha")
    parser.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout")
    parser.add_argument("--target-modules", help="comma-separated LoRA targets (default: per architecture)")
    parser.add_argument("--max-seq-len", type=int, default=1024, help="tokens per sample (prompt + middle)")
    parser.add_argument("--loss-on", choices=("middle", "all"), default="middle", help="tokens that carry loss")
    parser.add_argument("--no-token-healing", dest="token_healing", action="store_false",
                        help="train on prompts cut at the cursor as they are, for serving with token_healing off "
                             "(default: the prompt's last token moves into the target where serving would heal it)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto = bf16 where the GPU or CPU (AMX, AVX512-BF16) computes it natively, else fp32")
    parser.add_argument("--eval-every", type=int, default=50, help="held-out evaluation every N steps (0 = off)")
    parser.add_argument("--save-every", type=int, default=50, help="checkpoint every N steps (0 = off)")
    parser.add_argument("--patience", type=int, default=3, help="early stopping patience in evaluations (0 = off)")
    parser.add_argument("--eval-samples", type=int, default=64, help="held-out samples for the loss")
    parser.add_argument("--em-samples", type=int, default=32, help="held-out samples for next-line exact match")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, order and initialisation")
    parser.add_argument("--template", help="FIM template (default: detected from the tokenizer)")
    parser.add_argument("--samples-per-file", type=int, default=8, help="FIM samples per source file")
    parser.add_argument("--curriculum-share", type=float, default=0.5, help="share of hard-pattern samples")
    parser.add_argument("--split", choices=("time", "files"), default="time",
                        help="time (default): train on the repository at a cut-off commit, evaluate on the lines "
                             "changed after it; files: hold out whole files (those of the latest commits)")
    parser.add_argument("--holdout-commits", type=int, default=1,
                        help="the cut-off comes before this many most recent commits touching code (default 1)")
    parser.add_argument("--max-files", type=int, help="files per repository (default: all)")
    parser.add_argument("--no-context", action="store_true", help="no repository context in prompts (ablation)")
    parser.add_argument("--allow-no-improvement", action="store_true",
                        help="publish the adapter even if it does not beat the base on held-out loss "
                             "(marked \"improved\": false); by default such a run fails and writes nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    debug = parser.add_argument_group("debugging")
    debug.add_argument("--param-digest-dir", metavar="DIR",
                       help="write each process's parameter digest to DIR/rank-N.txt at the end "
                            "(distributed runs: every rank must hold the same weights)")
    return parser


def _data_config(args) -> DataConfig:
    """DataConfig from the flags; template None = detected from the base model's tokenizer."""
    spans = SpanConfig(samples_per_file=args.samples_per_file, curriculum_share=args.curriculum_share)
    return DataConfig(template=args.template, seed=args.seed, spans=spans, split=args.split,
                      holdout_commits=args.holdout_commits,
                      max_files=args.max_files, context=not args.no_context,
                      prompt_tokens=max(64, args.max_seq_len * 3 // 4))


def main(argv: list[str]) -> int:
    """Entry point of ``repocomplete finetune``."""
    args = build_parser().parse_args(argv)
    config = FinetuneConfig(
        method=args.method, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=tuple(t.strip() for t in args.target_modules.split(",")) if args.target_modules else None,
        learning_rate=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum, max_steps=args.max_steps,
        epochs=args.epochs,
        max_seq_len=args.max_seq_len, loss_on=args.loss_on, token_healing=args.token_healing, precision=args.precision, eval_every=args.eval_every,
        save_every=args.save_every, patience=args.patience, eval_samples=args.eval_samples,
        em_samples=args.em_samples, seed=args.seed, allow_no_improvement=args.allow_no_improvement,
        param_digest_dir=args.param_digest_dir)
    data = _data_config(args)
    log = (lambda *a: print(*a, file=sys.stderr))
    result = finetune(args.repos, args.base, args.out, config, data, resume=args.resume, force=args.force,
                      show_progress=not args.json, log=log, command=shlex.join(["repocomplete", "finetune", *argv]))
    if not result.is_main:
        return 0
    if args.json:
        print(json.dumps({"out_dir": result.out_dir, "steps": result.steps, "stopped_early": result.stopped_early,
                          "improved": result.improved,
                          "metrics": {k: v for k, v in result.metrics.items() if k != "history"},
                          "counts": result.data_manifest.get("counts")}, indent=2))
        return 0
    _print_table(result)
    return 0


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"held-out evaluation ({result.steps} steps{', stopped early' if result.stopped_early else ''})")
    for column in ("metric", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in metrics_table(result.metrics):
        table.add_row(*row)
    console = Console()
    counts = result.data_manifest.get("counts", {})
    console.print(f"data: {counts.get('train', {}).get('total', 0)} training and "
                  f"{counts.get('heldout', {}).get('total', 0)} held-out FIM samples "
                  f"({_split_text(result.data_manifest)})")
    console.print(table)
    if result.improved is False:
        console.print("[bold red]NOT IMPROVED[/]: this adapter does not beat the base model on the held-out samples")
    console.print(f"adapter written to {result.out_dir} (metrics in metrics.json)")



def _split_text(manifest: dict) -> str:
    """How the held-out samples were chosen, in words."""
    splits = [repo.get("split", {}) for repo in manifest.get("repos", [])]
    if splits and all(s.get("cutoff") for s in splits):
        cutoffs = ", ".join(s["cutoff"][:10] for s in splits)
        return f"held out: lines changed after commit {cutoffs}; trained on the repository as it was then"
    return "held out: whole files, those changed in the most recent commits"
