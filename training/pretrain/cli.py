"""``repocomplete pretrain``: build corpus, tokenizer and data, then train (resumably) and export.

Every stage writes into the run directory (outside the repository) and is skipped when its
output exists for the same config, so the one command is both the reproduction recipe and
the way to continue a run: ``repocomplete pretrain --config training/configs/default-model.toml
--resume``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.pretrain.config import PretrainConfig, PretrainError, load_pretrain_config

STAGES = ("corpus", "tokenizer", "data", "train", "export")


def _log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _stage_done(directory: Path, key: str) -> bool:
    stamp = directory / "stage.json"
    return stamp.exists() and json.loads(stamp.read_text()).get("key") == key


def _stamp(directory: Path, key: str, **extra) -> None:
    (directory / "stage.json").write_text(json.dumps({"key": key, **extra}, indent=1))


def prepare(cfg: PretrainConfig, run_dir: Path, *, upto: str = "data") -> dict:
    """Run the corpus, tokenizer and data stages that are not already done; return their summaries."""
    from training.pretrain.corpus import build_corpus, read_corpus
    from training.pretrain.data import DATA_FORMAT, build_data
    from training.pretrain.tokenizer import load_tokenizer, sample_texts, train_tokenizer

    summary: dict = {}
    corpus_dir, tok_dir, data_dir = run_dir / "corpus", run_dir / "tokenizer", run_dir / "data"
    key = cfg.stage_hash("corpus")
    if not _stage_done(corpus_dir, key):
        _log(f"[corpus] building into {corpus_dir}")
        build_corpus(cfg.corpus, corpus_dir, log=_log)
        _stamp(corpus_dir, key)
    summary["corpus"] = json.loads((corpus_dir / "manifest.json").read_text())["sources"]
    if upto == "corpus":
        return summary
    key = cfg.stage_hash("corpus", "tokenizer")
    if not _stage_done(tok_dir, key):
        _log(f"[tokenizer] training byte-level BPE ({cfg.tokenizer.vocab_size} tokens)")
        pairs = ((f"{f.source}:{f.path}", f.text) for f in read_corpus(corpus_dir / "corpus.jsonl") if f.split == "train")
        tokenizer = train_tokenizer(sample_texts(pairs, cfg.tokenizer.train_bytes, cfg.corpus.seed),
                                    cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency)
        tokenizer.save_pretrained(str(tok_dir))
        _stamp(tok_dir, key)
    if upto == "tokenizer":
        return summary
    tokenizer = load_tokenizer(tok_dir)
    key = f"{cfg.stage_hash('corpus', 'tokenizer', 'data')}-format{DATA_FORMAT}"
    if not _stage_done(data_dir, key):
        _log(f"[data] building samples into {data_dir}")
        build_data(corpus_dir / "corpus.jsonl", tokenizer, cfg.data, data_dir, log=_log)
        _stamp(data_dir, key)
    summary["data"] = json.loads((data_dir / "data.json").read_text())
    return summary


def run_training(cfg: PretrainConfig, run_dir: Path, *, resume: bool, fresh: bool, max_minutes: float | None,
                 stop_after_steps: int | None = None):
    from training.pretrain.tokenizer import TEMPLATE, load_tokenizer
    from training.pretrain.train import train

    last = run_dir / "checkpoints" / "last.pt"
    if last.exists() and not (resume or fresh):
        raise PretrainError(f"{last} exists: pass --resume to continue that run or --fresh to start over")
    if resume and last.exists():
        _check_same_run(cfg, last)
    if fresh:
        for name in ("last.pt", "best.pt"):
            (run_dir / "checkpoints" / name).unlink(missing_ok=True)
        (run_dir / "train_log.jsonl").unlink(missing_ok=True)
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    return train(cfg, run_dir, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, resume=resume, max_minutes=max_minutes,
                 stop_after_steps=stop_after_steps, middle_token_id=tokenizer.convert_tokens_to_ids(TEMPLATE.middle_token),
                 log=_log)


def _check_same_run(cfg: PretrainConfig, checkpoint: Path) -> None:
    """A resumed run keeps its model, tokenizer and corpus; the samples may change (the data
    stage rebuilds them and training continues the weights on them), the window may not."""
    from training import checkpoint as checkpoints

    saved = checkpoints.load(checkpoint)["config"]
    for section in ("model", "tokenizer", "corpus"):
        if saved[section] != cfg.to_dict()[section]:
            raise PretrainError(f"--resume: [{section}] differs from the checkpoint's; use the same config or --fresh")
    if saved["data"].get("block_size") != cfg.data.block_size:
        raise PretrainError("--resume: [data] block_size differs from the checkpoint's; use the same config or --fresh")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete pretrain",
        description="Train the embedded default model from scratch: corpus -> tokenizer -> data -> "
                    "train (resumable) -> export to repocomplete/assets/default-model.",
    )
    parser.add_argument("--config", default="training/configs/default-model.toml", help="TOML config (default: %(default)s)")
    parser.add_argument("--out", help="run directory for corpus, data and checkpoints (default: the config's run_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    parser.add_argument("--fresh", action="store_true", help="discard existing checkpoints and start over")
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes of training")
    parser.add_argument("--only", choices=STAGES, help="run only up to/this stage (export: just export the best checkpoint)")
    parser.add_argument("--export", action="store_true", help="export the best checkpoint after training")
    parser.add_argument("--checkpoint", default="best",
                        help="checkpoint NAME (RUN_DIR/checkpoints/NAME.pt) to export (default: %(default)s)")
    parser.add_argument("--export-dir", help="where to export (default: the config's [export] out_dir)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the [gpu] overrides apply when CUDA is available")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gpu = args.device == "cuda"
    if args.device == "auto":
        import torch

        gpu = torch.cuda.is_available()
    cfg = load_pretrain_config(args.config, gpu=gpu)
    run_dir = Path(args.out) if args.out else cfg.resolved_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"run_dir": str(run_dir), "variant": "gpu" if gpu else "cpu"}
    if args.only != "export":
        summary.update(prepare(cfg, run_dir, upto=args.only if args.only in ("corpus", "tokenizer") else "data"))
    if args.only in (None, "train"):
        state = run_training(cfg, run_dir, resume=args.resume, fresh=args.fresh, max_minutes=args.max_minutes)
        summary["train"] = {"step": state.step, "tokens_seen": state.tokens_seen,
                            "train_seconds": round(state.train_seconds), "best_val_loss": state.best_val_loss,
                            "best_step": state.best_step, "history": state.history[-5:]}
    if args.only == "export" or args.export:
        from training.pretrain.export import export_model

        summary["export"] = export_model(cfg, run_dir, Path(args.export_dir or cfg.export.out_dir),
                                         which=args.checkpoint, log=_log)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        _log(f"done: run directory {run_dir}")
    return 0
