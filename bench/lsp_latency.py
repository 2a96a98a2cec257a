"""Language-server benchmark: overhead of the LSP path, and how often typing reuses a suggestion.

1. Latency: inline completion through ``repocomplete lsp`` (real process, stdio JSON-RPC,
   in-process engine on the default model, debounce 0) ÷ the same completion through
   :class:`repocomplete.engine.Engine` directly in this process, at the same positions of a
   real file, interleaved. Target: ≤ 1.05 at p50.
2. Cache: replay typing a real stdlib file character by character (an inline request after
   every keystroke) through the language server in HTTP mode against a fake-backend engine;
   report how many requests the cache answered without a model call. Two fake models: an
   oracle that proposes the true rest of the line (what a good model earns) and the constant
   "pass" (a floor).

    python bench/lsp_latency.py [--samples 15] [--chars 2000] [--file PATH] [--model default]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One intra-op thread in both processes: on a shared, oversubscribed CPU, OpenMP barriers
# between descheduled threads add seconds of noise that has nothing to do with the LSP path.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from repocomplete.backends.fake import FakeBackend  # noqa: E402
from repocomplete.config import EngineConfig, load_config  # noqa: E402
from repocomplete.engine import Engine  # noqa: E402
from repocomplete.types import CompletionRequest, Segments  # noqa: E402
from tests.lsp.jsonrpc import LspProcess  # noqa: E402
from tests.lsp.standin import serve_json  # noqa: E402

STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
NO_TRIM = {"maxPrefixChars": 10**9, "maxSuffixChars": 10**9}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_ready(lsp: LspProcess, timeout: float = 600) -> str:
    message = lsp.wait_notification(
        lambda m: m["method"] == "repocomplete/status" and m["params"]["state"] in ("ready", "error"), timeout
    )
    if message["params"]["state"] == "error":
        raise SystemExit(f"language server failed: {message['params']['message']}")
    return message["params"]["message"]


def positions_in(text: str, count: int, seed: int = 0) -> list[int]:
    """Offsets at the end of random non-blank lines (cursor after what was typed)."""
    ends, offset = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip() and offset > 200:
            ends.append(offset + len(line.rstrip("\r\n")))
        offset += len(line)
    return sorted(random.Random(seed).sample(ends, min(count, len(ends))))


def line_col(text: str, offset: int) -> tuple[int, int]:
    head = text[:offset]
    line = head.count("\n")
    column = head[head.rfind("\n") + 1 :]
    return line, len(column.encode("utf-16-le")) // 2


def bench_latency(path: Path, samples: int, model: str) -> dict:
    text = path.read_text(encoding="utf-8")
    uri = path.as_uri()
    lsp = LspProcess(stderr_path=Path(tempfile.gettempdir()) / "bench-lsp.err")
    try:
        lsp.initialize({"model": model, "debounceMs": 0, "index": False, **NO_TRIM})
        label = wait_ready(lsp)
        engine = Engine.from_config(load_config(EngineConfig, overrides={"model": model}))
        lsp.open(uri, text)

        def direct(offset: int) -> str:
            request = CompletionRequest(
                segments=Segments(prefix=text[:offset], suffix=text[offset:], filepath=str(path)), language="python"
            )
            return engine.complete(request).choices[0].text

        def through_lsp(offset: int) -> str:
            result = lsp.inline(uri, *line_col(text, offset), timeout=300)
            return result["items"][0]["insertText"] if result and result["items"] else ""

        offsets = positions_in(text, samples + 2)
        for offset in offsets[:2]:  # warm-up: first calls pay for lazy initialisation
            direct(offset), through_lsp(offset)
        lsp_ms, engine_ms, same = [], [], 0
        for i, offset in enumerate(offsets[2:]):
            runs = [("lsp", through_lsp), ("engine", direct)]
            texts = {}
            for name, run in runs if i % 2 == 0 else runs[::-1]:
                start = time.perf_counter()
                texts[name] = run(offset)
                (lsp_ms if name == "lsp" else engine_ms).append((time.perf_counter() - start) * 1000)
            same += texts["lsp"] == texts["engine"]
        stats = lsp.stats()
        lsp.shutdown_and_exit()
    finally:
        lsp.close()
    pair_ratios = [a / b for a, b in zip(lsp_ms, engine_ms)]
    return {
        "model": label,
        "samples": len(lsp_ms),
        "lsp_p50_ms": round(statistics.median(lsp_ms), 1),
        "engine_p50_ms": round(statistics.median(engine_ms), 1),
        "lsp_p90_ms": round(percentile(lsp_ms, 0.9), 1),
        "engine_p90_ms": round(percentile(engine_ms, 0.9), 1),
        "ratio_p50": round(statistics.median(lsp_ms) / statistics.median(engine_ms), 3),
        "median_pair_ratio": round(statistics.median(pair_ratios), 3),
        "identical_texts": f"{same}/{len(lsp_ms)}",
        "lsp_cache_hits": stats["cache_hits"],
    }


class _Typing:
    """The file being typed and where the cursor is: what the oracle model knows."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0

    def rest_of_line(self, prompt: str) -> str:
        end = self.text.find("\n", self.offset)
        return self.text[self.offset : len(self.text) if end < 0 else end]


def serve_engine(engine: Engine) -> ThreadingHTTPServer:
    """A minimal /v1/completions + /v1/events server over ``engine`` (no torch, no uvicorn overhead)."""

    def respond(path: str, body: dict) -> dict:
        if path != "/v1/completions":
            return {"stored": True}
        seg = body["segments"]
        request = CompletionRequest(
            segments=Segments(prefix=seg["prefix"], suffix=seg.get("suffix", ""), filepath=seg.get("filepath")),
            language=body.get("language"), max_tokens=body.get("max_tokens", 64), mode=body.get("mode", "auto"),
        )
        result = engine.complete(request)
        return {"id": result.id, "choices": [{"index": c.index, "text": c.text} for c in result.choices]}

    return serve_json(respond)


def bench_typing(path: Path, chars: int) -> dict:
    """Type the first ``chars`` characters of ``path``; cache hit rate per fake model."""
    text = path.read_text(encoding="utf-8")[:chars]
    results = {}
    for name in ("oracle", "constant"):
        typing = _Typing(text)
        backend = FakeBackend(rule=typing.rest_of_line) if name == "oracle" else FakeBackend("pass\n")
        server = serve_engine(Engine(backend))
        lsp = LspProcess("--server-url", f"http://127.0.0.1:{server.server_address[1]}")
        try:
            lsp.initialize({"debounceMs": 0, **NO_TRIM})
            uri = "file:///bench/typed.py"
            lsp.open(uri, "")
            typed = ""
            started = time.perf_counter()
            for version, char in enumerate(text, start=2):
                line, col = line_col(typed, len(typed))
                rng = {"start": {"line": line, "character": col}, "end": {"line": line, "character": col}}
                lsp.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": rng, "text": char}]})
                typed += char
                typing.offset = len(typed)
                lsp.inline(uri, *line_col(typed, len(typed)))
            elapsed = time.perf_counter() - started
            stats = lsp.stats()
            lsp.shutdown_and_exit()
        finally:
            lsp.close()
            server.shutdown()
            server.server_close()
        requests = stats["cache_hits"] + stats["cache_misses"]
        results[name] = {
            "keystrokes": len(text),
            "requests": requests,
            "cache_hits": stats["cache_hits"],
            "model_calls": stats["model_calls"],
            "hit_rate": round(stats["cache_hits"] / max(1, requests), 3),
            "ms_per_keystroke": round(elapsed * 1000 / max(1, len(text)), 2),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=15, help="latency samples (positions)")
    parser.add_argument("--chars", type=int, default=2000, help="characters typed in the cache replay")
    parser.add_argument("--file", type=Path, default=STDLIB / "textwrap.py", help="the real file to complete in / type")
    parser.add_argument("--model", default="default", help="model for the latency part")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args(argv)

    print(f"file: {args.file}")
    if not args.skip_latency:
        latency = bench_latency(args.file, args.samples, args.model)
        print("\n## inline completion latency: language server vs engine direct (debounce 0)")
        for key, value in latency.items():
            print(f"  {key:>18}: {value}")
        verdict = "PASS" if latency["ratio_p50"] <= 1.05 else "ABOVE TARGET"
        print(f"  ratio lsp/engine p50 = {latency['ratio_p50']} (target <= 1.05: {verdict})")
    typing = bench_typing(args.file, args.chars)
    print(f"\n## cache while typing the first {args.chars} characters char by char")
    print(f"  {'model':<10}{'keystrokes':>11}{'cache hits':>11}{'model calls':>12}{'hit rate':>10}{'ms/key':>8}")
    for name, row in typing.items():
        print(f"  {name:<10}{row['keystrokes']:>11}{row['cache_hits']:>11}{row['model_calls']:>12}{row['hit_rate']:>10}{row['ms_per_keystroke']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
