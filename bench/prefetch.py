"""The first completion where the cursor lands: cold, against prefetched (``repocomplete/cursor``).

A real ``repocomplete lsp`` process (stdio JSON-RPC, in-process engine, debounce 0, no index)
on a real model. For each of ``--samples`` cursor positions inside non-blank lines of real
stdlib files (the line cut at the cursor, as while it is being typed), three ways of arriving
there, each at its own position so no prompt is cached from another arm:

- **cold**: the completion request is the first thing the server hears about the position;
- **prefetched**: the editor sends ``repocomplete/cursor``, the user pauses until the prompt
  is processed (``pause_ms``, reported), then the request comes at the same place;
- **prefetched, then typed**: the same, then the line's next real character is typed
  (``didChange``) and the request comes one character on.

Arms are interleaved (a, b, c, b, c, a, ...), so the machine's load changes fall on all three;
the ratios to cold of the same run are the result, absolute times are context.

    python bench/prefetch.py --model qwen2.5-coder-0.5b [--samples 6] [--out runs/bench/prefetch.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lsp_latency import line_col, percentile, wait_ready  # noqa: E402
from tests.lsp.jsonrpc import LspProcess  # noqa: E402

STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
FILES = ("textwrap.py", "shlex.py", "fractions.py", "heapq.py", "bisect.py", "glob.py", "fnmatch.py",
         "string.py", "colorsys.py", "calendar.py", "difflib.py", "statistics.py")
ARMS = ("cold", "prefetched", "typed")


def cursors(samples: int, seed: int) -> list[tuple[Path, str, int, str]]:
    """(file, its text with the cursor's line cut at the cursor, cursor offset, the line's next
    character): a cursor after the first word of a random non-blank line at least 40 lines in,
    one file per cursor in turn."""
    rng = random.Random(seed)
    found = []
    for i in range(samples * len(ARMS)):
        path = STDLIB / FILES[i % len(FILES)]
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        candidates = [n for n in range(40, len(lines)) if len(lines[n].strip()) > 12]
        n = rng.choice(candidates)
        line = lines[n]
        indent = len(line) - len(line.lstrip())
        # after the first word, never at the line's end: the typed arm types a character of the line
        cut = min(indent + max(2, len(line.strip().split(" ")[0])), len(line.rstrip()) - 1)
        head = "".join(lines[:n]) + line[:cut]
        # the rest of the line is not written yet; the next character is kept for the typed arm
        text = head + "\n" + "".join(lines[n + 1:])
        found.append((path, text, len(head), line[cut:cut + 1] or " "))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--samples", type=int, default=6, help="cursor positions per arm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/prefetch.json"))
    args = parser.parse_args()

    lsp = LspProcess(stderr_path=Path(tempfile.gettempdir()) / "bench-prefetch.err")
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    pauses: list[float] = []
    try:
        lsp.initialize({"model": args.model, "debounceMs": 0, "index": False})
        label = wait_ready(lsp)
        places = cursors(args.samples + 1, args.seed)
        order = [ARMS[(i + i // len(ARMS)) % len(ARMS)] for i in range(len(places))]
        for version, ((path, text, offset, typed_char), arm) in enumerate(zip(places, order), start=1):
            # a document of its own (not on disk: nothing is indexed): no completion cached from another arm
            uri = (Path(tempfile.gettempdir()) / f"prefetch-bench-{version}" / path.name).as_uri()
            lsp.open(uri, text, version=1)
            line, character = line_col(text, offset)
            if arm != "cold":
                done = lsp.stats()["prefetches"]
                start = time.perf_counter()
                lsp.notify("repocomplete/cursor", {"textDocument": {"uri": uri},
                                                   "position": {"line": line, "character": character}})
                deadline = start + 600
                while lsp.stats()["prefetches"] == done:
                    if time.perf_counter() > deadline:
                        raise SystemExit("the prefetch did not finish in 600 s")
                    time.sleep(0.02)
                pause_ms = (time.perf_counter() - start) * 1000
            if arm == "typed":
                lsp.notify("textDocument/didChange", {
                    "textDocument": {"uri": uri, "version": 2},
                    "contentChanges": [{"range": {"start": {"line": line, "character": character},
                                                  "end": {"line": line, "character": character}}, "text": typed_char}]})
                character += len(typed_char.encode("utf-16-le")) // 2
            start = time.perf_counter()
            lsp.inline(uri, line, character, timeout=600)
            elapsed = (time.perf_counter() - start) * 1000
            if version > 1:  # the first request pays for lazy initialisation: not counted
                times[arm].append(elapsed)
                if arm != "cold":
                    pauses.append(pause_ms)
            print(f"{arm:>10} {path.name:>14}:{line + 1:<5} {elapsed:8.0f} ms", file=sys.stderr, flush=True)
            lsp.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        lsp.shutdown_and_exit()
    finally:
        lsp.close()
    cold = statistics.median(times["cold"])
    result = {
        "model": label,
        "samples_per_arm": {arm: len(v) for arm, v in times.items()},
        **{f"{arm}_p50_ms": round(statistics.median(v)) for arm, v in times.items()},
        **{f"{arm}_p90_ms": round(percentile(v, 0.9)) for arm, v in times.items()},
        "prefetched_over_cold_p50": round(statistics.median(times["prefetched"]) / cold, 3),
        "typed_over_cold_p50": round(statistics.median(times["typed"]) / cold, 3),
        "pause_needed_p50_ms": round(statistics.median(pauses)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**result, "times_ms": times, "pauses_ms": pauses}, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
