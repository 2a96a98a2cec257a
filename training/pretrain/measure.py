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

Prompts are rendered in the FIM order the model's config asks for, as the engine serves it.
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


def greedy_line(model, tokenizer, prompt: str, max_new_tokens: int = 24) -> tuple[str, int]:
    """Greedy decoding with the KV cache until a newline or the end token; (text, new tokens)."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out_ids: list[int] = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        for _ in range(max_new_tokens):
            next_id = int(out.logits[0, -1].argmax())
            if next_id == tokenizer.eos_token_id:
                break
            out_ids.append(next_id)
            if "\n" in tokenizer.decode(out_ids):
                break
            out = model(input_ids=torch.tensor([[next_id]]), past_key_values=out.past_key_values, use_cache=True)
    text = tokenizer.decode(out_ids, skip_special_tokens=True)
    return text.split("\n")[0], len(out_ids)


def fim_order_of(model) -> str:
    """The FIM order the exported model asks to be served in (``psm`` when it does not say)."""
    from repocomplete.fim import declared_fim_order

    return declared_fim_order(model.config) or "psm"


def _render(hole: dict, with_context: bool, order: str = "psm") -> str:
    from repocomplete.fim import get_template

    snippets = [Snippet(filepath=s["filepath"], body=s["body"], source="definition") for s in hole["snippets"]]
    return get_template("repocomplete").render(hole["prefix"], hole["suffix"], snippets=snippets if with_context else [],
                                               filepath=hole["path"], repo_name=hole["repo"], order=order)


def holes_exact_match(model, tokenizer, holes: list[dict]) -> dict:
    """EM of the first generated line against the hole's rest of line, with and without context."""
    scores = {True: 0, False: 0}
    for hole in holes:
        target = hole["middle"].split("\n")[0].strip()
        for with_context in (True, False):
            text, _ = greedy_line(model, tokenizer, _render(hole, with_context, fim_order_of(model)))
            scores[with_context] += int(text.strip() == target)
    n = max(1, len(holes))
    return {"with_context": scores[True] / n, "without_context": scores[False] / n, "n": len(holes)}


def latency(model, tokenizer, holes: list[dict], runs: int = 15) -> dict:
    """p50/p90 wall time of a single-line completion after a ~1,000-token prompt."""
    from repocomplete.fim import get_template

    template = get_template("repocomplete")
    timings = []
    for hole in holes[:runs]:
        # pad the prefix with the hole's own context until the prompt is ~1,000 tokens
        prefix = hole["prefix"]
        while len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) < 950:
            prefix = (hole["snippets"][0]["body"] + "\n" if hole["snippets"] else "# padding line\n") + prefix
        prompt = template.render(prefix, hole["suffix"], filepath=hole["path"], repo_name=hole["repo"],
                                 order=fim_order_of(model))
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-1000:]
        prompt = tokenizer.decode(ids)
        start = time.perf_counter()
        greedy_line(model, tokenizer, prompt)
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
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    command = "python -m training.pretrain.measure " + shlex.join(argv if argv is not None else sys.argv[1:])
    run_dir = Path(args.run_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    holes = [json.loads(line) for line in (run_dir / "data/test_holes.jsonl").read_text().splitlines()][: args.holes]
    path = Path(args.measurements or run_dir / "measurements.json")
    measured = json.loads(path.read_text()) if path.exists() else {}
    state_path = Path(args.model) / "training_state.json"
    step = json.loads(state_path.read_text())["step"] if state_path.exists() else "?"
    load_before = os.getloadavg()[0]
    lat = latency(model, tokenizer, holes)
    measured["latency_p50_ms"] = {"value": f"{lat['p50_ms']} ms (p90 {lat['p90_ms']} ms, {lat['runs']} runs)",
                                  "command": command,
                                  "note": f"checkpoint step {step}; greedy with KV cache, fp32, 2 threads; load average "
                                          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on 2 shared cores"}
    path.write_text(json.dumps(measured, indent=1))   # keep the latency even if the EM run is cut short
    em = holes_exact_match(model, tokenizer, holes)
    for key, value in (("holes_em_context", em["with_context"]), ("holes_em_no_context", em["without_context"])):
        measured[key] = {"value": f"{value:.1%} of {em['n']} holes", "command": command,
                         "note": f"checkpoint step {step}"}
    path.write_text(json.dumps(measured, indent=1))
    print(json.dumps({"latency": lat, "holes_em": em}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
