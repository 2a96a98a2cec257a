"""Indexer benchmark on the Python standard library (real code, ~850k lines).

Every figure comes with a baseline measured in the same run, on the same files:

- full index throughput (files/s, MB/s) / a bare tree-sitter parse of the same files
  (target: our overhead <= 2x);
- live-buffer ``update()`` of one file, p50/p95 (target p95 <= 20 ms for 2,000 lines);
- incremental ``index()`` after one file changed;
- retrieval latency p50/p95 over N cursor positions, lexical + symbol sources
  (target p95 <= 10 ms) and all default sources;
- BM25 query throughput / the ``bm25s`` package over the same chunks and queries (target >= 1).

Run:  python bench/indexing.py [--limit N] [--positions 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.chunks import search_terms, search_text  # noqa: E402
from indexer.languages import language_for_path  # noqa: E402
from indexer.types import RetrievalQuery  # noqa: E402
from indexer.workspace import Workspace  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def stdlib_files(limit: int | None) -> list[Path]:
    files = sorted(p for p in STDLIB.rglob("*.py")
                   if "site-packages" not in p.parts and "__pycache__" not in p.parts)
    return files[:limit] if limit else files


def copy_tree(files: list[Path], dest: Path) -> None:
    for src in files:
        target = dest / src.relative_to(STDLIB)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def bare_parse(root: Path) -> tuple[float, int, int]:
    """Seconds to read and tree-sitter-parse every file under ``root`` (no queries, no storage)."""
    from tree_sitter_language_pack import get_parser

    parsers = {}
    files = nbytes = 0
    start = time.perf_counter()
    for path in sorted(root.rglob("*")):
        language = language_for_path(path.name) if path.is_file() else None
        if language is None:
            continue
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        parser = parsers.get(language) or parsers.setdefault(language, get_parser(language))
        parser.parse(data)
        files += 1
        nbytes += len(data)
    return time.perf_counter() - start, files, nbytes


def cursor_positions(root: Path, ws: Workspace, n: int, rng: random.Random) -> list[RetrievalQuery]:
    """Random cursors: a file, a non-blank line, the column in the middle of that line."""
    paths = [p for p in ws.files() if p.endswith(".py")]
    queries = []
    while len(queries) < n:
        rel = rng.choice(paths)
        lines = (root / rel).read_text(encoding="utf-8", errors="replace").split("\n")
        candidates = [i for i, line in enumerate(lines) if line.strip()]
        if not candidates:
            continue
        i = rng.choice(candidates)
        col = len(lines[i]) // 2
        prefix = "\n".join(lines[:i] + [lines[i][:col]])
        suffix = "\n".join([lines[i][col:]] + lines[i + 1:])
        window = "\n".join(prefix.split("\n")[-60:]) + "\n".join(suffix.split("\n")[:20])
        queries.append(RetrievalQuery(rel, prefix, suffix, language="python", visible_text=window))
    return queries


def time_retrieval(ws: Workspace, queries: list[RetrievalQuery], sources: tuple[str, ...] | None) -> list[float]:
    out = []
    for q in queries:
        q.sources = sources
        start = time.perf_counter()
        ws.retrieve(q)
        out.append((time.perf_counter() - start) * 1000)
    return out


def bm25_comparison(ws: Workspace, queries: list[RetrievalQuery], k: int = 10) -> dict:
    """Queries/s of our FTS5 BM25 and of bm25s (numpy) over the same chunks and query terms."""
    import bm25s

    # What FTS5 indexed (its table is contentless): search_text of each chunk's body.
    rows = [(cid, search_text(body)) for cid, body in ws.store.conn.execute("SELECT id, body FROM chunks ORDER BY id")]
    start = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index([tokens.split() for _, tokens in rows], show_progress=False)
    bm25s_index_s = time.perf_counter() - start
    term_lists = [search_terms("\n".join(q.prefix.split("\n")[-10:])) for q in queries]
    term_lists = [t for t in term_lists if t]
    bm25 = ws.retriever.bm25
    bm25.search(term_lists[0], k)  # load document frequencies outside the timing
    start = time.perf_counter()
    for terms in term_lists:
        bm25.search(terms, k)
    ours_s = time.perf_counter() - start
    # bm25s gets the very terms our query keeps (the rarest ones), and then the full query.
    pruned = [[t.strip('"') for t in (bm25.match_expression(terms) or "").split(" OR ") if t] for terms in term_lists]
    pruned = [p for p in pruned if p]
    vocab = retriever.vocab_dict

    def run_bm25s(lists: list[list[str]]) -> float:
        known = [[t for t in terms if t in vocab] or [next(iter(vocab))] for terms in lists]
        start = time.perf_counter()
        for terms in known:
            retriever.retrieve([terms], k=min(k, len(rows)), show_progress=False, n_threads=1)
        return time.perf_counter() - start

    same_s = run_bm25s(pruned)
    full_s = run_bm25s(term_lists)
    return {
        "chunks": len(rows),
        "queries": len(term_lists),
        "ours_qps": len(term_lists) / ours_s,
        "bm25s_same_terms_qps": len(pruned) / same_s,
        "bm25s_full_query_qps": len(term_lists) / full_s,
        "ratio_vs_same_terms": (len(term_lists) / ours_s) / (len(pruned) / same_s),
        "ratio_vs_full_query": (len(term_lists) / ours_s) / (len(term_lists) / full_s),
        "bm25s_index_s": bm25s_index_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N stdlib files (sorted by path)")
    parser.add_argument("--positions", type=int, default=1000, help="cursor positions for retrieval latency")
    parser.add_argument("--updates", type=int, default=40, help="update() calls timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results: dict = {"command": "python bench/indexing.py " + " ".join(argv if argv is not None else sys.argv[1:])}

    with tempfile.TemporaryDirectory(prefix="bench-indexer-") as tmp:
        root = Path(tmp) / "stdlib"
        copy_tree(stdlib_files(args.limit), root)
        parse_s, files, nbytes = bare_parse(root)
        with Workspace(root, cache_dir=Path(tmp) / "cache") as ws:
            start = time.perf_counter()
            summary = ws.index()
            index_s = time.perf_counter() - start
            results["full_index"] = {
                "files": summary.files_indexed, "mb": summary.bytes / 1e6, "lines": None,
                "seconds": index_s, "files_per_s": summary.files_indexed / index_s,
                "mb_per_s": summary.bytes / 1e6 / index_s, "symbols": summary.symbols, "chunks": summary.chunks,
                "bare_parse_seconds": parse_s, "bare_parse_files": files,
                "bare_parse_mb_per_s": nbytes / 1e6 / parse_s,
                "overhead_vs_bare_parse": index_s / parse_s,
            }
            # index() returned once its transaction committed; it left folding the write-ahead
            # log into the database file (a checkpoint) and building the BM25 snapshot to
            # background threads: wait for both (the snapshot's time includes the fold's).
            start = time.perf_counter()
            ws.wal.join()
            fold_s = time.perf_counter() - start
            results["full_index"]["wal_fold_seconds"] = fold_s
            results["full_index"]["db_mb"] = ws.db_path.stat().st_size / 1e6
            results["full_index"]["overhead_with_fold_vs_bare_parse"] = (index_s + fold_s) / parse_s
            builder = ws.retriever.bm25._builder
            if builder is not None:
                builder.join()
            assert ws.retriever.bm25.snapshot() is not None
            results["full_index"]["bm25_snapshot_seconds"] = time.perf_counter() - start
            results["full_index"]["lines"] = sum(
                (root / p).read_text(encoding="utf-8", errors="replace").count("\n") for p in ws.files())

            # Live-buffer updates of real files near 2,000 lines, each edited in one line. The
            # first update of a buffer parses it from scratch (timed apart: "cold"); later ones
            # (keystrokes) reparse incrementally from the buffer's previous tree.
            sized = sorted(ws.files(), key=lambda p: abs((root / p).read_text(errors="replace").count("\n") - 2000))
            targets = sized[:5]
            cold, timings, parses = [], [], []
            from tree_sitter_language_pack import get_parser

            bare = get_parser("python")
            for i in range(args.updates + len(targets)):
                rel = targets[i % len(targets)]
                text = (root / rel).read_text(encoding="utf-8", errors="replace")
                edited = text.replace("\n", f"  # edit {i}\n", 1)
                start = time.perf_counter()
                ws.update(rel, edited)
                (cold if i < len(targets) else timings).append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                bare.parse(edited.encode())
                parses.append((time.perf_counter() - start) * 1000)
            results["update"] = {"files": targets, "lines": [(root / p).read_text(errors="replace").count("\n")
                                                             for p in targets],
                                 "p50_ms": statistics.median(timings), "p95_ms": percentile(timings, 0.95),
                                 "cold_first_update_median_ms": statistics.median(cold),
                                 "bare_full_parse_median_ms": statistics.median(parses)}
            for rel in targets:
                ws.revert(rel)  # back to the saved files
            changed = root / targets[0]
            changed.write_text(changed.read_text(errors="replace") + "\n# changed\n")
            start = time.perf_counter()
            inc = ws.index()
            results["incremental_index"] = {"files_parsed": inc.files_indexed,
                                            "seconds": time.perf_counter() - start}

            queries = cursor_positions(root, ws, args.positions, rng)
            time_retrieval(ws, queries[:20], None)  # warm caches (document frequencies, module map)
            lexical = time_retrieval(ws, queries, ("bm25", "jaccard", "definition"))
            every = time_retrieval(ws, queries, None)
            results["retrieval"] = {
                "positions": len(queries),
                "lexical_symbol_p50_ms": statistics.median(lexical),
                "lexical_symbol_p95_ms": percentile(lexical, 0.95),
                "all_default_p50_ms": statistics.median(every),
                "all_default_p95_ms": percentile(every, 0.95),
            }
            results["bm25"] = bm25_comparison(ws, queries)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        f, u, r, b = results["full_index"], results["update"], results["retrieval"], results["bm25"]
        print(f"full index: {f['files']} files, {f['mb']:.1f} MB, {f['lines']} lines in {f['seconds']:.1f} s = "
              f"{f['files_per_s']:.0f} files/s, {f['mb_per_s']:.2f} MB/s (walk, read, hash, redact, parse, "
              f"chunk, SQLite+FTS5 writes; one process); bare tree-sitter parse (read + parse only, same files, "
              f"one process) {f['bare_parse_seconds']:.1f} s ({f['bare_parse_mb_per_s']:.2f} MB/s) -> overhead "
              f"{f['overhead_vs_bare_parse']:.2f}x; WAL fold (background) {f['wal_fold_seconds']:.2f} s "
              f"(index + fold {f['overhead_with_fold_vs_bare_parse']:.2f}x); "
              f"BM25 snapshot (background) {f['bm25_snapshot_seconds']:.1f} s; "
              f"{f['symbols']} symbols, {f['chunks']} chunks, db {f['db_mb']:.0f} MB")
        print(f"update() ~{statistics.median(u['lines']):.0f}-line files, one-line edits: p50 {u['p50_ms']:.1f} ms, "
              f"p95 {u['p95_ms']:.1f} ms; first update of a buffer (cold) median "
              f"{u['cold_first_update_median_ms']:.1f} ms; bare full tree-sitter parse median "
              f"{u['bare_full_parse_median_ms']:.1f} ms")
        inc = results["incremental_index"]
        print(f"incremental index after one change: {inc['files_parsed']} file parsed, {inc['seconds']:.2f} s")
        print(f"retrieval over {r['positions']} positions: lexical+symbol p50 {r['lexical_symbol_p50_ms']:.1f} ms, "
              f"p95 {r['lexical_symbol_p95_ms']:.1f} ms; all default sources p50 {r['all_default_p50_ms']:.1f} ms, "
              f"p95 {r['all_default_p95_ms']:.1f} ms")
        print(f"BM25 over {b['chunks']} chunks, {b['queries']} queries: ours {b['ours_qps']:.0f} q/s; bm25s "
              f"{b['bm25s_same_terms_qps']:.0f} q/s (same terms) -> ratio {b['ratio_vs_same_terms']:.2f}; "
              f"bm25s {b['bm25s_full_query_qps']:.0f} q/s (full query) -> ratio {b['ratio_vs_full_query']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
