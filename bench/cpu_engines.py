"""CPU engines for a real code model, side by side in one run: which one serves completions fastest.

    python bench/cpu_engines.py --model qwen2.5-coder-0.5b [--engines mixed int8 fp32 bf16 ct2-int8]
        [--threads 1] [--reps 6] [--prompt-tokens 1000] [--out FILE.jsonl]

Every engine answers the same FIM prompts: real code (stdlib files cut in the middle of a
line after about ``--prompt-tokens`` tokens, the rest of that line removed as the user has
not typed it yet), laid out in the model's FIM format (Qwen's for Qwen2.5-Coder) by our own prompt code, single-line
completions (stop at the line's end, at most 48 tokens, greedy). Each engine runs in its
own process (its own thread pool, its own peak RSS), all loaded at once, and the requests
are interleaved across them, so a load spike on this shared machine hits every engine alike
(``--one-at-a-time`` loads them one after the other when memory is short: still one run, but a
load spike then hits one engine only).
Per engine (and thread count):

- cold: a request on a file the engine has not seen; keystroke: the same request after the
  user typed two more characters (prefix longer, suffix the same): whatever KV cache the
  engine keeps of the unchanged prompt start is reused; p50 / p90 over ``--reps`` files;
- prefill tokens/s (one cold forward over a fresh prompt) and decode tokens/s (32 tokens
  after it, no stop);
- load time, peak RSS, and for ctranslate2 the conversion time (cached in ``--ct2-cache``).

Engines: ``mixed`` (a bf16 copy processes prompt chunks, decoding in fp32: the route shipped
before int8, the baseline each ratio divides by), ``int8`` (the same bf16 prompt processing,
decoding with int8 weights: ``decode_weights = int8``), ``fp32`` (one fp32 model), ``bf16``,
``ct2-int8`` (ctranslate2 with int8 weights; it keeps no KV cache between calls). Our engines
are measured in the layouts and with the prompt-lookup drafts of ``VARIANTS`` (``+spec``: the
accepted share of draft tokens is reported; ``/spm``: suffix first, so a keystroke only
appends to the prompt); ``--plain`` keeps the first variant of each. ``agree`` is the share of
cold single-line answers identical to the first engine's in the same layout (the ``fp32``
engine's when it runs: int8's answers against full precision). Rows are appended to ``--out``
(JSONL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENGINES = ("mixed", "int8", "fp32", "bf16", "ct2-int8")
BASELINE = "mixed"
#: Variants each engine is measured in: (speculative draft tokens, FIM order).
VARIANTS = {"fp32": [(0, "psm"), (0, "spm")], "bf16": [(0, "psm"), (8, "psm")], "mixed": [(0, "psm"), (0, "spm")],
            "int8": [(0, "spm"), (0, "psm"), (8, "spm")], "ct2-int8": [(0, "psm")]}
#: How our backend is built for each engine: (dtype, prefill_dtype, decode_weights).
OURS = {"fp32": ("float32", "off", "off"), "bf16": ("bfloat16", "off", "off"), "mixed": ("float32", "bfloat16", "off"),
        "int8": ("float32", "bfloat16", "int8")}
FILES = ("argparse.py", "subprocess.py", "typing.py", "pathlib/_local.py", "json/encoder.py", "dataclasses.py",
         "inspect.py", "logging/__init__.py", "tarfile.py", "zipfile/__init__.py", "shutil.py", "functools.py")
MAX_TOKENS, DECODE_TOKENS, TYPED = 48, 32, 2


def cases(count_tokens, prompt_tokens: int, reps: int) -> list[dict]:
    """Per file: the prefix (about ``prompt_tokens`` tokens, ending a third into a code line), the
    suffix (from the end of that line), the rest of the line, and the ``TYPED`` characters typed next."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in FILES:
        path = stdlib / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        taken, at = 0, 0
        while at < len(lines) and taken < prompt_tokens:
            taken += count_tokens(lines[at] + "\n")
            at += 1
        while at < len(lines) and (len(lines[at].strip()) < 20 or lines[at].lstrip().startswith(("#", '"', "'"))):
            at += 1
        if at >= len(lines):
            continue
        line = lines[at]
        cut = len(line) - len(line.lstrip()) + len(line.strip()) // 3
        prefix = "\n".join(lines[:at] + [line[:cut]])
        out.append({"path": name, "prefix": prefix, "suffix": "\n" + "\n".join(lines[at + 1:]),
                    "rest": line[cut:], "typed": line[cut:cut + TYPED]})
        if len(out) == reps + 1:  # one more: the fresh prompt of the prefill/decode rates
            break
    return out


# -- worker side: one engine in its own process, answering JSON lines -----------------------------------


class Ct2Engine:
    """ctranslate2's Generator (int8) behind the worker's calls; no KV cache between calls."""

    def __init__(self, model: Path, ct2_dir: Path, threads: int) -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.generator = ctranslate2.Generator(str(ct2_dir), device="cpu", compute_type="int8", intra_threads=threads)
        self.eos = [t for t in {self.tokenizer.eos_token, "<|endoftext|>", "<|im_end|>"} if t]
        self.eos_ids = set(self.tokenizer.convert_tokens_to_ids(self.eos))

    def generate(self, prompt: str, max_tokens: int, line: bool, speculative: int) -> dict:
        tokens = self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(prompt, add_special_tokens=False))
        ids: list[int] = []

        def step(result) -> bool:
            # Returning True stops decoding (breaking out of generate_tokens would let it run on).
            ids.append(result.token_id)
            return line and "\n" in self.tokenizer.decode(ids)

        self.generator.generate_batch([tokens], max_length=max_tokens, sampling_topk=1, end_token=self.eos,
                                      include_prompt_in_result=False, callback=step)
        text = self.tokenizer.decode([i for i in ids if i not in self.eos_ids])
        return {"text": text.split("\n")[0] if line else text, "prompt_tokens": len(tokens),
                "completion_tokens": len(ids), "cached_tokens": 0}

    def forget(self) -> None:
        pass


class OurEngine:
    """Our transformers backend, called as the engine calls it."""

    def __init__(self, model: Path, engine: str, threads: int) -> None:
        from repocomplete.backends.transformers import TransformersBackend

        dtype, prefill, decode = OURS[engine]
        self.backend = TransformersBackend(model, device="cpu", dtype=dtype, prefill_dtype=prefill, decode_weights=decode,
                                           threads=threads)

    def generate(self, prompt: str, max_tokens: int, line: bool, speculative: int) -> dict:
        from repocomplete.backends.base import GenerationRequest

        self.backend.speculative_tokens = speculative
        stats = self.backend.speculation
        before = (stats.drafted, stats.accepted)
        # a line request stops as the engine's does: at the line's end and at every special token
        # (a 1.5B answer once ran on through 40 <|fim_pad|> tokens here without them)
        stop = [*sorted(self.backend.special_tokens()), "\n"] if line else []
        result = self.backend.generate(GenerationRequest(prompt=prompt, max_tokens=max_tokens, stop=stop))
        return {"text": result.texts[0], "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens, "cached_tokens": result.cached_tokens,
                "drafted": stats.drafted - before[0], "accepted": stats.accepted - before[1]}

    def forget(self) -> None:
        self.backend._cache.clear()


def ensure_ct2(model: Path, cache: Path) -> tuple[Path, float | None]:
    """The int8 ctranslate2 conversion of ``model`` (converted once; the seconds it took, else None)."""
    out = cache / f"{model.name}-int8"
    if (out / "model.bin").is_file():
        return out, None
    start = time.perf_counter()
    tmp = out.with_name(out.name + ".partial")
    converter = Path(sys.executable).with_name("ct2-transformers-converter")
    subprocess.run([str(converter), "--model", str(model), "--quantization", "int8", "--output_dir", str(tmp),
                    "--force"], check=True, stdout=subprocess.DEVNULL)
    tmp.rename(out)
    return out, time.perf_counter() - start


def serve_worker(args: argparse.Namespace) -> int:
    """Load one engine, then answer one JSON request per stdin line on the original stdout."""
    import torch

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter on stdout must not corrupt the replies
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    conversion_s = None
    if args.worker == "ct2-int8":
        ct2_dir, conversion_s = ensure_ct2(args.model, args.ct2_cache)
        engine = Ct2Engine(args.model, ct2_dir, args.threads)
    else:
        engine = OurEngine(args.model, args.worker, args.threads)
    backend = getattr(engine, "backend", None)
    built = {k: backend.info()[k] for k in ("dtype", "prefill_dtype", "decode_weights", "threads")} if backend else {}
    reply.write(json.dumps({"load_s": round(time.perf_counter() - start, 1), "conversion_s": conversion_s,
                            "backend": built}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "stats":
            # peak: loading included (a weights file's pages it read count); now: what serving holds
            with open("/proc/self/statm", encoding="ascii") as statm:
                now_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
            reply.write(json.dumps({"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                                    "rss_mb": now_mb}) + "\n")
            continue
        if request.get("forget"):
            engine.forget()
        begin = time.perf_counter()
        out = engine.generate(request["prompt"], request["max_tokens"], request["line"], request.get("speculative", 0))
        reply.write(json.dumps({"ms": (time.perf_counter() - begin) * 1000, **out}) + "\n")
    return 0


# -- parent side -----------------------------------------------------------------------------------------


class Worker:
    def __init__(self, engine: str, threads: int, args: argparse.Namespace) -> None:
        self.engine, self.threads = engine, threads
        command = [sys.executable, __file__, "--worker", engine, "--threads", str(threads), "--model", str(args.model),
                   "--ct2-cache", str(args.ct2_cache)]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.loaded = self._read()

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} ({self.threads} threads) worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(args: argparse.Namespace) -> list[dict]:
    from transformers import AutoTokenizer

    from repocomplete.fim import detect_template
    from repocomplete.prompt import assemble_prompt

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    count = (lambda text: len(backend.encode(text, add_special_tokens=False).ids)) if backend else (
        lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
    specials = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    template = detect_template(specials)  # Qwen's FIM for Qwen2.5-Coder, ours for the embedded model

    def prompt(case: dict, order: str, typed: str = "") -> str:
        return assemble_prompt(template, prefix=case["prefix"] + typed, suffix=case["suffix"], count_tokens=count,
                               budget_tokens=args.prompt_tokens, filepath=case["path"], order=order).text

    load_start = round(os.getloadavg()[0], 1)
    work = cases(count, args.prompt_tokens, args.reps)
    work, fresh = work[:-1], work[-1]
    specs = [(engine, threads) for threads in args.threads
             for engine in [BASELINE] + [e for e in args.engines if e != BASELINE]]
    variants = {e: v[:1] if args.plain else v for e, v in VARIANTS.items()}
    rows = {(engine, threads, spec, order): {"cold": [], "keystroke": [], "cached": [], "texts": [], "drafted": 0,
                                             "accepted": 0}
            for engine, threads in specs for spec, order in variants[engine]}
    stats: dict[tuple[str, int], dict] = {}
    # All engines loaded at once, requests interleaved; --one-at-a-time: one engine loaded at a
    # time (the peak memory of the largest one), each over every file in turn.
    for group in ([[spec] for spec in specs] if args.one_at_a_time else [specs]):
        workers = []
        try:
            for engine, threads in group:
                print(f"loading {engine} ({threads} threads)", file=sys.stderr, flush=True)
                workers.append(Worker(engine, threads, args))
            for worker in workers:
                worker.ask(prompt=prompt(work[0], "psm"), max_tokens=2, line=False)  # first-call allocations
            for index, case in enumerate(work):
                print(f"file {index + 1}/{len(work)}: {case['path']}", file=sys.stderr, flush=True)
                turn = workers[index % len(workers):] + workers[: index % len(workers)]  # rotate who goes first
                for worker in turn:
                    for spec, order in variants[worker.engine]:
                        row = rows[(worker.engine, worker.threads, spec, order)]
                        cold = worker.ask(prompt=prompt(case, order), max_tokens=MAX_TOKENS, line=True,
                                          speculative=spec, forget=True)
                        keys = worker.ask(prompt=prompt(case, order, case["typed"]), max_tokens=MAX_TOKENS, line=True,
                                          speculative=spec)
                        row["cold"].append(cold["ms"])
                        row["keystroke"].append(keys["ms"])
                        row["cached"].append(keys["cached_tokens"] / max(keys["prompt_tokens"], 1))
                        row["texts"].append(cold["text"])
                        row["prompt_tokens"] = cold["prompt_tokens"]
                        for k in ("drafted", "accepted"):
                            row[k] += cold.get(k, 0) + keys.get(k, 0)
            # Prefill and decode rates on a prompt no engine has seen, in each engine's first variant.
            for worker in workers:
                for spec, order in variants[worker.engine][:1]:
                    row = rows[(worker.engine, worker.threads, spec, order)]
                    one = worker.ask(prompt=prompt(fresh, order), max_tokens=1, line=False, speculative=spec,
                                     forget=True)
                    many = worker.ask(prompt=prompt(fresh, order), max_tokens=DECODE_TOKENS, line=False,
                                      speculative=spec, forget=True)
                    row["prefill_tok_s"] = one["prompt_tokens"] / (one["ms"] / 1000)
                    if many["completion_tokens"] >= DECODE_TOKENS // 2:  # a model that stopped early measured nothing
                        row["decode_tok_s"] = (many["completion_tokens"] - 1) / max((many["ms"] - one["ms"]) / 1000,
                                                                                    1e-3)
                    row["decode_drafted"], row["decode_accepted"] = many.get("drafted", 0), many.get("accepted", 0)
            stats.update({(w.engine, w.threads): {**w.ask(op="stats"), **w.loaded} for w in workers})
        finally:
            for worker in workers:
                worker.close()
    load = round(os.getloadavg()[0], 1)
    out: list[dict] = []
    for (engine, threads, spec, order), row in rows.items():
        name = engine + ("+spec" if spec else "") + ("/spm" if order == "spm" else "")
        out.append({
            "engine": name, "threads": threads, "model": args.model.name, "prompt_tokens": row["prompt_tokens"],
            "reps": len(row["cold"]), "cold_ms": [round(x) for x in row["cold"]],
            "keystroke_ms": [round(x) for x in row["keystroke"]],
            "keystroke_cached_share": round(statistics.median(row["cached"]), 3),
            "prefill_tok_s": round(row["prefill_tok_s"], 1) if "prefill_tok_s" in row else None,
            "decode_tok_s": round(row["decode_tok_s"], 2) if "decode_tok_s" in row else None,
            "draft_acceptance": round(row["accepted"] / row["drafted"], 3) if row["drafted"] else None,
            "load_avg_start": load_start, "load_avg_end": load, "texts": row["texts"], **stats[(engine, threads)],
        })
    agreement(out)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def agreement(rows: list[dict]) -> None:
    """Set each row's ``agree``: the share of its cold answers identical to the reference engine's
    (``fp32`` when measured, else the baseline) in the same layout and thread count."""
    by_name = {(r["engine"], r["threads"]): r for r in rows}
    for r in rows:
        layout = "/spm" if r["engine"].endswith("/spm") else ""
        ref = by_name.get(("fp32" + layout, r["threads"])) or by_name.get((BASELINE + layout, r["threads"]))
        if ref is None or ref is r:
            r["agree"] = None
            continue
        r["agree"] = round(sum(a == b for a, b in zip(r["texts"], ref["texts"])) / len(ref["texts"]), 3)
        r["agree_with"] = ref["engine"]


def report(rows: list[dict]) -> None:
    base = {r["threads"]: r for r in rows if r["engine"] == BASELINE}
    print(f"model {rows[0]['model']}, prompts of ~{rows[0]['prompt_tokens']} tokens, {rows[0]['reps']} files, "
          f"1-min load average at the start {rows[0]['load_avg_start']}, at the end {rows[0]['load_avg_end']} (2 cores)")
    print(f"{'engine':<17}{'thr':>4}{'cold p50':>9}{'p90':>7}{'÷base':>7}{'keys p50':>9}{'p90':>7}{'keys÷cold':>10}"
          f"{'prefill':>8}{'decode':>8}{'accept':>7}{'agree':>7}{'RSS MB':>7}{'peak':>7}{'load s':>7}")
    for r in rows:
        cold, keys = statistics.median(r["cold_ms"]), statistics.median(r["keystroke_ms"])
        b = base.get(r["threads"])
        ratio = f"{cold / statistics.median(b['cold_ms']):.2f}" if b else "-"
        rate = lambda v, f: format(v, f) if v is not None else format("-", ">8")  # noqa: E731
        accept = f"{r['draft_acceptance']:.0%}" if r.get("draft_acceptance") is not None else "-"
        agree = f"{r['agree']:.0%}" if r.get("agree") is not None else "-"
        print(f"{r['engine']:<17}{r['threads']:>4}{cold:>9.0f}{pct(r['cold_ms'], 0.9):>7.0f}{ratio:>7}{keys:>9.0f}"
              f"{pct(r['keystroke_ms'], 0.9):>7.0f}{keys / cold:>10.2f}{rate(r['prefill_tok_s'], '>8.1f')}"
              f"{rate(r['decode_tok_s'], '>8.2f')}{accept:>7}{agree:>7}{r.get('rss_mb', '-'):>7}{r['peak_rss_mb']:>7}"
              f"{r['load_s']:>7}")
    conversions = [r for r in rows if r.get("conversion_s")]
    for r in conversions:
        print(f"{r['engine']}: converted in this run in {r['conversion_s']:.0f} s")
    print(f"RSS MB: resident while serving, peak: during loading too; "
          f"ms per single-line completion; prefill / decode in tokens/s; ÷base: cold p50 against {BASELINE} at the "
          "same thread count in this run; accept: share of prompt-lookup draft tokens the model kept; agree: share "
          "of cold answers identical to fp32's (else the baseline's) in the same layout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="model: a catalogue name (qwen2.5-coder-0.5b), a GGUF file or a transformers folder")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--reps", type=int, default=6, help="files (prompts) per engine")
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--ct2-cache", type=Path, default=Path.home() / ".cache/repocomplete/bench/ct2")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/cpu_engines.jsonl"))
    parser.add_argument("--plain", action="store_true", help="only the first variant of each engine (VARIANTS)")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="load one engine at a time (less memory; requests are not interleaved across engines)")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        return serve_worker(args)
    from repocomplete.model_resolution import resolve_model

    args.model = Path(resolve_model(str(args.model)).path)  # a catalogue name, a GGUF or a folder
    rows = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
