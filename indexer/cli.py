"""``repocomplete index`` and ``repocomplete context``: build an index, inspect retrieval.

``context`` is what a user runs when a completion looks wrong: it prints exactly the
snippets retrieval hands to the prompt at a position, with their source and score.
Positions are 1-based (line and column as editors print them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from indexer.errors import IndexerError
from indexer.retrieve.sources import SOURCES, check_sources
from indexer.types import IndexProgress, IndexSummary, RetrievalQuery, Snippet


class PositionError(IndexerError):
    """A line/column outside the file."""


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _run_index(ws, *, quiet: bool, rebuild: bool = False) -> IndexSummary:
    """Index with a progress bar (files, MB, elapsed) on stderr.

    On a terminal the bar is live and disappears; in a log it is printed once, when done.
    """
    if quiet:
        return ws.index(rebuild=rebuild)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
               TextColumn("{task.fields[mb]:.1f} MB"), TimeElapsedColumn()]
    console = _console()
    with Progress(*columns, console=console, transient=console.is_terminal) as bar:
        task = bar.add_task("index", total=None, mb=0.0)

        def report(p: IndexProgress) -> None:
            bar.update(task, completed=p.files_done, total=p.files_total, mb=p.bytes_done / 1e6)

        return ws.index(progress=report, rebuild=rebuild)


def _summary_dict(ws, summary: IndexSummary) -> dict:
    data = dataclasses.asdict(summary)
    data.update(root=str(ws.root), database=str(ws.db_path))
    return data


def print_summary(ws, summary: IndexSummary) -> None:
    """The summary table: files per language, skipped files by reason, symbols, chunks, time."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"index of {ws.root}", show_header=True)
    table.add_column("")
    table.add_column("count", justify="right")
    for language, count in summary.files_by_language.items():
        table.add_row(f"files: {language}", str(count))
    for reason, count in sorted(summary.skipped_by_reason.items()):
        table.add_row(f"skipped: {reason}", str(count))
    table.add_row("parsed this run", str(summary.files_indexed))
    table.add_row("unchanged", str(summary.files_unchanged))
    table.add_row("removed", str(summary.files_removed))
    table.add_row("symbols", str(summary.symbols))
    table.add_row("chunks", str(summary.chunks))
    table.add_row("MB parsed", f"{summary.bytes / 1e6:.2f}")
    table.add_row("time", f"{summary.elapsed_s:.2f} s")
    console = Console()
    console.print(table)
    for error in summary.errors[:20]:
        console.print(f"[yellow]skipped[/yellow] {error}", highlight=False)
    if len(summary.errors) > 20:
        console.print(f"... and {len(summary.errors) - 20} more")
    console.print(f"database: {ws.db_path}", highlight=False)


def index_main(argv: list[str]) -> int:
    """``repocomplete index [DIR] [--watch] [--cache-dir D] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="repocomplete index",
        description="Index a repository for retrieval (incremental: only changed files are parsed). "
                    "The index lives in a cache folder, never inside the repository.")
    parser.add_argument("dir", nargs="?", default=".", help="repository root (default: the current folder)")
    parser.add_argument("--watch", action="store_true", help="keep the index fresh: re-index when files change")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks with --watch")
    parser.add_argument("--cache-dir", help="folder of index databases (default: $REPOCOMPLETE_CACHE_DIR "
                                            "or ~/.cache/repocomplete/index)")
    parser.add_argument("--rebuild", action="store_true", help="re-parse every file, not only changed ones")
    parser.add_argument("--dense", action="store_true", help="also embed chunks for dense retrieval (slow on CPU)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    args = parser.parse_args(argv)
    from indexer.config import IndexConfig
    from indexer.workspace import Workspace

    try:
        with Workspace(args.dir, cache_dir=args.cache_dir, config=IndexConfig(dense=args.dense)) as ws:
            summary = _run_index(ws, quiet=args.json, rebuild=args.rebuild)
            if args.json:
                print(json.dumps(_summary_dict(ws, summary)), flush=True)
            else:
                print_summary(ws, summary)
            if args.watch:
                from indexer.watch import watch

                def changed(s: IndexSummary) -> None:
                    if args.json:
                        print(json.dumps(_summary_dict(ws, s)), flush=True)
                    else:
                        print(f"{time.strftime('%H:%M:%S')} re-indexed: {s.files_indexed} parsed, "
                              f"{s.files_removed} removed ({s.elapsed_s:.2f} s)", flush=True)

                try:
                    watch(ws, interval=args.interval, on_index=changed)
                except KeyboardInterrupt:
                    return 0
    except IndexerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _find_root(path: Path, cache_dir: str | None) -> Path:
    """The workspace around ``path``: the nearest folder already indexed, else the nearest
    git work tree, else the current folder if it contains ``path``, else the file's folder."""
    from indexer.config import IndexConfig
    from indexer.workspace import database_name, git_root

    cache = IndexConfig(cache_dir=Path(cache_dir) if cache_dir else None).resolved_cache_dir()
    for folder in path.parents:
        if (cache / database_name(folder)).exists():
            return folder
    if (repository := git_root(path.parent)) is not None:
        return repository
    cwd = Path.cwd().resolve()
    return cwd if cwd in path.parents else path.parent


def split_at(text: str, line: int, col: int, path: str) -> tuple[str, str]:
    """Prefix and suffix of ``text`` at a 1-based line and column (a column may be one past the end)."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise PositionError(f"line {line} is outside {path} (1-{len(lines)})")
    current = lines[line - 1]
    if not 1 <= col <= len(current) + 1:
        raise PositionError(f"column {col} is outside line {line} of {path} (1-{len(current) + 1})")
    before = "\n".join(lines[:line - 1] + [current[:col - 1]])
    after = "\n".join([current[col - 1:]] + lines[line:])
    return before, after


def visible_window(prefix: str, suffix: str, lines_before: int, lines_after: int) -> str:
    """The text a prompt window around the cursor shows (what retrieval must not repeat)."""
    before = prefix.split("\n")[-lines_before:] if lines_before > 0 else [""]
    return "\n".join(before) + "\n".join(suffix.split("\n")[:lines_after + 1])


def _snippet_dict(s: Snippet) -> dict:
    return dataclasses.asdict(s)


def print_snippets(snippets: list[Snippet], *, timings: dict[str, float]) -> None:
    from rich.console import Console

    console = Console()
    if not snippets:
        console.print("no context retrieved (is the workspace indexed? are all sources off?)")
    for i, s in enumerate(snippets, 1):
        where = f"{s.filepath}:{s.start_line}-{s.end_line}" if s.start_line else s.filepath
        symbol = f"  ({s.symbol})" if s.symbol else ""
        console.print(f"[bold]#{i} {s.source}[/bold]  score={s.score:.4f}  {where}  [{s.kind}]{symbol}",
                      highlight=False, markup=True, soft_wrap=True)
        for line in s.body.split("\n"):
            console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
    if timings:
        console.print("timings (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()), highlight=False)


def context_main(argv: list[str]) -> int:
    """``repocomplete context FILE --line L --col C [--sources a,b] [--budget N] [--json]``."""
    parser = argparse.ArgumentParser(
        prog="repocomplete context",
        description="Show the repository context retrieved at a position: each snippet with its source, "
                    "score and location. Line and column are 1-based.")
    parser.add_argument("file", help="the file being edited")
    parser.add_argument("--line", type=int, required=True, help="1-based line of the cursor")
    parser.add_argument("--col", type=int, default=1, help="1-based column of the cursor (default 1)")
    parser.add_argument("--sources", help=f"comma-separated sources (default: all but dense); any of: {', '.join(SOURCES)}")
    parser.add_argument("--budget", type=int, default=512, help="token budget of all snippets together (default 512)")
    parser.add_argument("--max-snippets", type=int, default=16)
    parser.add_argument("--workspace", help="repository root (default: the indexed folder or git repository around FILE)")
    parser.add_argument("--cache-dir", help="folder of index databases")
    parser.add_argument("--window", type=int, default=60,
                        help="prefix lines the prompt window shows; context repeating them is dropped (default 60)")
    parser.add_argument("--no-index", action="store_true", help="do not bring the index up to date first")
    parser.add_argument("--json", action="store_true", help="print snippets as JSON")
    args = parser.parse_args(argv)
    from indexer.workspace import Workspace

    try:
        path = Path(args.file).expanduser().resolve()
        if not path.is_file():
            raise IndexerError(f"not a file: {args.file}")
        root = Path(args.workspace).expanduser() if args.workspace else _find_root(path, args.cache_dir)
        sources = None
        if args.sources:
            sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
            try:
                check_sources(sources)
            except ValueError as exc:
                raise IndexerError(str(exc)) from None
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexerError(f"cannot read {args.file}: {exc}") from exc
        with Workspace(root, cache_dir=args.cache_dir) as ws:
            rel = ws.relpath(path)
            prefix, suffix = split_at(text, args.line, args.col, args.file)
            if not args.no_index:
                _run_index(ws, quiet=args.json)
            from indexer.languages import language_for_path

            query = RetrievalQuery(filepath=rel, prefix=prefix, suffix=suffix, language=language_for_path(rel),
                                   budget_tokens=args.budget, max_snippets=args.max_snippets, sources=sources,
                                   visible_text=visible_window(prefix, suffix, args.window, 20))
            snippets = ws.retrieve(query)
            timings = ws.retriever.last_timings
            if args.json:
                print(json.dumps({"workspace": str(ws.root), "file": rel, "line": args.line, "col": args.col,
                                  "snippets": [_snippet_dict(s) for s in snippets], "timings_ms": timings}))
            else:
                print_snippets(snippets, timings=timings)
    except IndexerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
