"""Measurements for the model card: latency, and rest-of-line exact match on held-out files.

``python -m training.pretrain.measure [--model DIR] [--run-dir DIR] [--holes N]`` loads the
exported model, and records into ``RUN_DIR/measurements.json`` (each value with the command
that produced it):

- ``latency_p50_ms``: a single-line completion (greedy, KV cache, stop at newline, at most 24
  new tokens) after a 1,000-token repocomplete-format prompt built from a held-out file;
- ``holes_em_context`` / ``holes_em_no_context``: RepoFusion-style rest-of-line holes of
  held-out files (``data/test_holes.jsonl``), completed with and without the repository
  context (similar windows and definitions from sibling files), exact match of the first
  generated line.

Prompts are rendered in the FIM order the model's config asks for and decoded by the serving
backend (``TransformersBackend``, with the context copy the model's config declares), as the
engine serves them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from indexer.types import Snippet

DEFAULT_MODEL = "repocomplete/assets/default-model"


MAX_NEW_TOKENS = 24


def fit_prompt(backend, prompt: str, tokens: int | None = None) -> str:
    """The prompt's last ``tokens`` tokens at most (any number when None), and no more than the
    model's context leaves for a line (an SPM prompt keeps the prefix's end, where the cursor is)."""
    ids = backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    room = backend.context_length - MAX_NEW_TOKENS - 1
    keep = room if tokens is None else min(tokens, room)
    return prompt if len(ids) <= keep else backend.tokenizer.decode(ids[-keep:])


def greedy_line(backend, prompt: str, cursor_prefix: str | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[str, int]:
    """One greedy line from the serving backend (KV cache, context copy as configured), stopping at
    a newline or the end token; (text, new tokens). ``cursor_prefix``: the prefix as the prompt shows it."""
    from repocomplete.backends.base import GenerationRequest

    result = backend.generate(GenerationRequest(prompt=prompt, max_tokens=max_new_tokens, stop=["\n"],
                                                cursor_prefix=cursor_prefix))
    return result.texts[0].split("\n")[0], result.completion_tokens


def fim_order_of(backend) -> str:
    """The FIM order the exported model asks to be served in (``psm`` when it does not say)."""
    return backend.fim_order or "psm"


def _render(hole: dict, with_context: bool, order: str = "psm") -> str:
    from repocomplete.fim import get_template

    snippets = [Snippet(filepath=s["filepath"], body=s["body"], source="definition") for s in hole["snippets"]]
    return get_template("repocomplete").render(hole["prefix"], hole["suffix"], snippets=snippets if with_context else [],
                                               filepath=hole["path"], repo_name=hole["repo"], order=order)


def holes_exact_match(backend, holes: list[dict]) -> dict:
    """EM of the first generated line against the hole's rest of line, with and without context."""
    scores = {True: 0, False: 0}
    order = fim_order_of(backend)
    for hole in holes:
        target = hole["middle"].split("\n")[0].strip()
        for with_context in (True, False):
            prompt = fit_prompt(backend, _render(hole, with_context, order))
            text, _ = greedy_line(backend, prompt, hole["prefix"])
            scores[with_context] += int(text.strip() == target)
    n = max(1, len(holes))
    return {"with_context": scores[True] / n, "without_context": scores[False] / n, "n": len(holes)}


def latency(backend, holes: list[dict], runs: int = 15) -> dict:
    """p50/p90 wall time of a single-line completion after a ~1,000-token prompt."""
    from repocomplete.fim import get_template

    template = get_template("repocomplete")
    tokenizer, order = backend.tokenizer, fim_order_of(backend)
    timings = []
    for hole in holes[:runs]:
        # pad the prefix with the hole's own context until the prompt is ~1,000 tokens
        prefix = hole["prefix"]
        target = min(950, backend.context_length - 50)
        while len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) < target:
            prefix = (hole["snippets"][0]["body"] + "\n" if hole["snippets"] else "# padding line\n") + prefix
        prompt = template.render(prefix, hole["suffix"], filepath=hole["path"], repo_name=hole["repo"],
                                 order=order)
        prompt = fit_prompt(backend, prompt, 1000)
        start = time.perf_counter()
        greedy_line(backend, prompt, prefix)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    nearest_rank_p90 = timings[min(len(timings) - 1, math.ceil(0.9 * len(timings)) - 1)]
    return {"p50_ms": round(statistics.median(timings)), "p90_ms": round(nearest_rank_p90),
            "runs": len(timings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pretrain.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="exported model directory (default: %(default)s)")
    parser.add_argument("--run-dir", default="/work/pretrain-runs/default-model", help="run directory (default: %(default)s)")
    parser.add_argument("--holes", type=int, default=200, help="held-out holes to score (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measurements", help="file the numbers go to (default: RUN_DIR/measurements.json, "
                                               "which the model card reads at export)")
    parser.add_argument("--record", nargs=3, metavar=("KEY", "VALUE", "COMMAND"),
                        help="only record a number measured elsewhere (e.g. by `repocomplete eval`) for the card")
    args = parser.parse_args(argv)
    if args.record:
        key, value, command = args.record
        path = Path(args.measurements or Path(args.run_dir) / "measurements.json")
        measured = json.loads(path.read_text()) if path.exists() else {}
        measured[key] = {"value": value, "command": command}
        path.write_text(json.dumps(measured, indent=1))
        return 0
    from repocomplete.backends.transformers import TransformersBackend

    command = "python -m training.pretrain.measure " + shlex.join(argv if argv is not None else sys.argv[1:])
    run_dir = Path(args.run_dir)
    # the serving backend: the same decoding loop (and context copy) as the engine; a fresh KV
    # cache per prompt, since the prompts share no prefix
    backend = TransformersBackend(args.model, device="cpu", dtype="float32", threads=args.threads, kv_cache=False)
    holes = [json.loads(line) for line in (run_dir / "data/test_holes.jsonl").read_text().splitlines()][: args.holes]
    path = Path(args.measurements or run_dir / "measurements.json")
    measured = json.loads(path.read_text()) if path.exists() else {}
    state_path = Path(args.model) / "training_state.json"
    step = json.loads(state_path.read_text())["step"] if state_path.exists() else "?"
    load_before = os.getloadavg()[0]
    lat = latency(backend, holes)
    measured["latency_p50_ms"] = {"value": f"{lat['p50_ms']} ms (p90 {lat['p90_ms']} ms, {lat['runs']} runs)",
                                  "command": command,
                                  "note": f"checkpoint step {step}; greedy with KV cache, fp32, {args.threads} threads, "
                                          f"context copy {backend.copy.weight:g}; load average "
                                          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on 2 shared cores"}
    path.write_text(json.dumps(measured, indent=1))   # keep the latency even if the EM run is cut short
    em = holes_exact_match(backend, holes)
    for key, value in (("holes_em_context", em["with_context"]), ("holes_em_no_context", em["without_context"])):
        measured[key] = {"value": f"{value:.1%} of {em['n']} holes", "command": command,
                         "note": f"checkpoint step {step}; context copy {backend.copy.weight:g}"}
    path.write_text(json.dumps(measured, indent=1))
    print(json.dumps({"latency": lat, "holes_em": em}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
