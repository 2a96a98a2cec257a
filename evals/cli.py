"""``repocomplete eval SUITE ...`` and ``repocomplete eval report DIR...``.

Each suite module (``evals/<suite>.py``) provides ``NAME``, ``DESCRIPTION``,
``PRIMARY_METRIC``, ``add_arguments(parser)``, ``load(args) -> samples`` and
``run(samples, args, completer, log) -> records``; optionally ``finalize(summary, records, args)``
to add suite-specific numbers, ``resolve_defaults(args)`` for defaults that depend on other
arguments (resolved before the run folder is claimed), ``self_check_ok(summary)`` for ``--self-check`` runs and
``needs_model(args)`` when some runs need no model (then none is loaded).
This module does the rest: the model, the run folder, resuming, the report.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path
from types import ModuleType

from evals.report import compare, summarize, write_run_report
from evals.runner import ModelSpec, ResultLog, build_completer
from repocomplete.config import EngineConfig, add_config_flags
from repocomplete.errors import RepocompleteError

#: suite name -> module; imported only when chosen (a suite may pull in git, the indexer, ...).
SUITES: dict[str, str] = {
    "fim": "evals.fim",
    "repo": "evals.repo",
    "coderag": "evals.coderag",
    "lowres": "evals.lowres",
    "acceptance": "evals.acceptance",
}

#: Arguments that do not change what a run measures (a rerun may change them and still resume).
_RESUMABLE = {"out", "json", "progress", "limit", "token", "server"}


def _suite(name: str) -> ModuleType:
    if name not in SUITES:
        raise RepocompleteError(f"unknown eval suite {name!r}; choose from: {', '.join(SUITES)}, report")
    return importlib.import_module(SUITES[name])


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    add_config_flags(model, EngineConfig, {"model": "--model", "backend": "--backend"})
    model.add_argument("--adapter", help="LoRA adapter as PATH or NAME=PATH")
    model.add_argument("--server", metavar="URL", help="use a running `repocomplete serve` instead of an in-process engine")
    model.add_argument("--token", help="bearer token for --server")
    run = parser.add_argument_group("run")
    run.add_argument("--limit", type=int, metavar="N", help="at most N samples (per subset/setting where the suite says so)")
    run.add_argument("--seed", type=int, default=0, help="seed of the sample selection (default: %(default)s)")
    run.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: runs/SUITE/LABEL); a rerun continues it")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")[:80] or "run"


def _fingerprint(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k not in _RESUMABLE}


def _claim_run_folder(out: Path, fingerprint: dict) -> None:
    """Refuse to mix two different configurations in one folder (their samples would merge)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != fingerprint:
            changed = sorted(k for k in fingerprint.keys() | previous.keys() if fingerprint.get(k) != previous.get(k))
            raise RepocompleteError(f"{out} holds a run with other settings ({', '.join(changed)}); pass another --out")
    path.write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")


def run_suite(suite: ModuleType, args: argparse.Namespace) -> tuple[dict, Path]:
    """Load, run (resuming), score and report one suite; returns the summary and the run folder."""
    spec = ModelSpec(args.model, args.backend, args.adapter, args.server, args.token)
    args.adapter_name = spec.adapter_name
    self_check = bool(getattr(args, "self_check", False))
    model_free = self_check or (hasattr(suite, "needs_model") and not suite.needs_model(args))
    label = spec.label()
    if model_free:
        label = suite.model_free_label(args) if hasattr(suite, "model_free_label") else "self-check"
    out = args.out or Path("runs") / suite.NAME / _slug(label)
    if hasattr(suite, "resolve_defaults"):   # before the fingerprint: a resumed run compares the resolved values
        suite.resolve_defaults(args)
    fingerprint = _fingerprint(args)
    args.run_dir = out  # suites keep their indexes and scratch files in the run folder
    samples = suite.load(args)
    if not samples:
        raise RepocompleteError(f"suite {suite.NAME}: no samples to run (check the data or the repository)")
    _claim_run_folder(out, fingerprint)
    completer = None if model_free else build_completer(spec)
    log = ResultLog(out / "samples.jsonl")
    started = time.perf_counter()
    records = suite.run(samples, args, completer, log)
    summary = {
        "suite": suite.NAME,
        "label": label,
        "primary_metric": suite.PRIMARY_METRIC,
        "settings": summarize(records),
        "meta": {"samples": len(samples), "records": len(records), "seconds": round(time.perf_counter() - started, 1)},
    }
    if hasattr(completer, "describe"):
        summary["meta"]["engine"] = completer.describe()
    if hasattr(suite, "finalize"):
        suite.finalize(summary, records, args)
    if self_check and hasattr(suite, "self_check_ok"):
        summary["self_check_ok"] = suite.self_check_ok(summary)
    write_run_report(out, summary)
    return summary, out


def _print_summary(summary: dict, out: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary | {"out": str(out)}, indent=2))
        return
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"report: {out}/summary.md, summary.json, summary.png")


def report_main(argv: list[str]) -> int:
    """``repocomplete eval report DIR...``: compare finished runs side by side."""
    parser = argparse.ArgumentParser(prog="repocomplete eval report", description="Compare eval runs side by side.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="DIR", help="run folders (each with summary.json)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="also write compare.json, compare.md, compare.png here")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(argv)
    result, markdown = compare(args.runs, args.out)
    print(json.dumps(result, indent=2) if args.json else markdown)
    return 0


def _usage() -> str:
    width = max(map(len, SUITES))
    lines = ["usage: repocomplete eval SUITE [options]   |   repocomplete eval report DIR...", "", "Suites:"]
    for name, module in SUITES.items():
        lines.append(f"  {name:<{width}}  {_describe(module)}")
    lines += ["", "Run `repocomplete eval SUITE --help` for a suite's options."]
    return "\n".join(lines)


def _describe(module: str) -> str:
    try:
        return importlib.import_module(module).DESCRIPTION
    except ImportError:
        return "(unavailable)"


def main(argv: list[str]) -> int:
    """Entry point of ``repocomplete eval``."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "report":
        return report_main(argv[1:])
    suite = _suite(argv[0])
    parser = argparse.ArgumentParser(prog=f"repocomplete eval {suite.NAME}", description=suite.DESCRIPTION)
    _common_arguments(parser)
    suite.add_arguments(parser.add_argument_group(suite.NAME))
    args = parser.parse_args(argv[1:])
    if args.limit is not None and args.limit < 1:
        raise RepocompleteError("--limit must be at least 1")
    summary, out = run_suite(suite, args)
    _print_summary(summary, out, args.json)
    if summary.get("self_check_ok") is False:
        print("self-check FAILED: the harness does not separate correct from wrong solutions", file=sys.stderr)
        return 1
    return 0
