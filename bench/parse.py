"""Symbol extraction vs a bare tree-sitter parse, on the Python standard library.

For every stdlib ``.py`` file, in the same run and interleaved file by file:

- ``bare``: ``parser.parse(source_bytes)`` and nothing else (the baseline);
- ``default``: ``parse_source(text, "python")`` (definitions, imports, parents, references,
  context items);
- ``no-refs``: ``parse_source(text, "python", references=False)`` (what the index stores);
- ``redact``: ``secrets.redact(text)`` (every stored file goes through it first).

Each figure is the CPU time (``time.process_time``, so other load on a shared machine
counts less) of the best of ``--repeat`` runs per file. Printed: totals, per-file medians,
and the ratio of each to the bare parse (total and median of per-file ratios).

Run:  python bench/parse.py [--limit N] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.parse import parse_source  # noqa: E402
from indexer.secrets import redact  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
MODES = ("bare", "default", "no-refs", "redact")


def stdlib_sources(limit: int | None) -> list[tuple[Path, str]]:
    out = []
    for path in sorted(STDLIB.rglob("*.py")):
        if "site-packages" in path.parts or "__pycache__" in path.parts:
            continue
        try:
            out.append((path, path.read_text("utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
        if limit and len(out) >= limit:
            break
    return out


def cpu_best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def measure(sources: list[tuple[Path, str]], repeat: int) -> dict[str, list[float]]:
    from tree_sitter_language_pack import get_parser

    parser = get_parser("python")
    parse_source("x = 1\n", "python")                       # load grammar and queries
    parse_source("x = 1\n", "python", references=False)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _, text in sources:
        data = text.encode("utf-8", "surrogatepass")
        times["bare"].append(cpu_best(lambda: parser.parse(data), repeat))
        times["default"].append(cpu_best(lambda: parse_source(text, "python"), repeat))
        times["no-refs"].append(
            cpu_best(lambda: parse_source(text, "python", references=False), repeat))
        times["redact"].append(cpu_best(lambda: redact(text), repeat))
    return times


def summarize(sources: list[tuple[Path, str]], times: dict[str, list[float]]) -> dict:
    nbytes = sum(len(text.encode("utf-8", "surrogatepass")) for _, text in sources)
    bare = times["bare"]
    summary: dict = {"files": len(sources), "mb": nbytes / 1e6,
                     "lines": sum(text.count("\n") for _, text in sources)}
    for mode in MODES:
        total = sum(times[mode])
        per_file_ratio = [t / b for t, b in zip(times[mode], bare) if b > 0]
        summary[mode] = {
            "total_s": total,
            "median_ms": statistics.median(times[mode]) * 1000,
            "mb_per_s": nbytes / 1e6 / total if total else float("inf"),
            "ratio_total": total / sum(bare),
            "ratio_median": statistics.median(per_file_ratio) if per_file_ratio else 0.0,
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N files")
    ap.add_argument("--repeat", type=int, default=3, help="runs per file and mode (best kept)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    sources = stdlib_sources(args.limit)
    summary = summarize(sources, measure(sources, args.repeat))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['files']} files, {summary['lines']} lines, {summary['mb']:.1f} MB "
          f"({STDLIB}), CPU time, best of {args.repeat} per file")
    print(f"{'mode':<9} {'total s':>8} {'median ms':>10} {'MB/s':>7} {'x bare':>7} {'median x':>9}")
    for mode in MODES:
        row = summary[mode]
        print(f"{mode:<9} {row['total_s']:8.2f} {row['median_ms']:10.2f} {row['mb_per_s']:7.1f} "
              f"{row['ratio_total']:7.2f} {row['ratio_median']:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
