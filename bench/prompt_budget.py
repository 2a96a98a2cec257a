"""Quality against prompt budget: HumanEval single-line infilling at several CPU prompt budgets.

    python bench/prompt_budget.py --model DIR [--budgets 256 512 1024] [--limit 300] [--out FILE.jsonl]

On CPU the prompt budget decides latency (the prompt is processed before the first token);
this measures what a smaller budget costs in quality, on the same tasks in the same run:
pass@1 (executed in the sandbox) and exact match per budget, with the ratio against the
largest budget, and the prompt tokens actually used. The model loads once; a task whose
assembled prompt is the same at two budgets (it fits both) is generated once, since
greedy decoding gives the same answer. Results are appended to ``--out`` (JSONL) and a
rerun continues where an interrupted one stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.fim import request_for, score_completion  # noqa: E402
from evals.humaneval import load_infilling  # noqa: E402
from evals.sandbox import SandboxLimits  # noqa: E402
from repocomplete.config import EngineConfig, load_config  # noqa: E402
from repocomplete.engine import Engine  # noqa: E402
from repocomplete.types import DebugOptions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder or name (as --model anywhere)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--limit", type=int, default=300, help="tasks (a seeded sample of the 1,033)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/prompt_budget.jsonl"))
    parser.add_argument("--fim-order", choices=("psm", "spm"), default="psm",
                        help="FIM layout: psm (Qwen's own) or spm (suffix first: a keystroke only appends to the prompt)")
    parser.add_argument("--report", action="store_true", help="only print the table of the tasks finished so far")
    args = parser.parse_args(argv)

    everything = load_infilling("single_line")
    # In a seeded random order, so that the tasks an interrupted run finished are a random sample too.
    tasks = [everything[i] for i in random.Random(args.seed).sample(range(len(everything)), min(args.limit, len(everything)))]
    done: dict[tuple[str, int], dict] = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption runs again
            if row.get("order", "psm") == args.fim_order:
                done[(row["id"], row["budget"])] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)

    if args.report:
        return report(tasks, done, args)
    engine = Engine.from_config(load_config(EngineConfig, overrides={"model": args.model, "fim_order": args.fim_order}))
    limits = SandboxLimits(timeout_s=10.0)
    by_prompt: dict[str, tuple[str, float]] = {}
    for row in done.values():
        by_prompt.setdefault(row["prompt"], (row["completion"], row["latency_ms"]))
    with args.out.open("a", encoding="utf-8") as out:
        for index, task in enumerate(tasks):
            for budget in sorted(args.budgets, reverse=True):
                if (task.task_id, budget) in done:
                    continue
                engine.config.context_tokens = budget
                request = request_for(task)
                request.debug_options = DebugOptions(disable_retrieval=True, return_prompt=True)
                prompt = engine.prompt_for(request)
                if prompt in by_prompt:
                    completion, latency = by_prompt[prompt]
                else:
                    start = time.perf_counter()
                    completion = engine.complete(request).choices[0].text
                    latency = (time.perf_counter() - start) * 1000
                    by_prompt[prompt] = (completion, latency)
                row = {"id": task.task_id, "budget": budget, "order": args.fim_order, "prompt": prompt,
                       "prompt_tokens": engine.backend.count_tokens(prompt), "completion": completion,
                       "latency_ms": round(latency, 1), **score_completion(task, completion, limits)["metrics"]}
                done[(task.task_id, budget)] = row
                out.write(json.dumps(row) + "\n")
                out.flush()
            print(f"{index + 1}/{len(tasks)}", file=sys.stderr, flush=True)

    return report(tasks, done, args)


def report(tasks: list, done: dict, args: argparse.Namespace) -> int:
    """The table over the tasks finished at every budget (n says how many)."""
    finished = [t for t in tasks if all((t.task_id, b) in done for b in args.budgets)]
    largest = max(args.budgets)
    best = statistics.fmean(done[(t.task_id, largest)]["pass@1"] for t in finished) if finished else 0.0
    print(f"HumanEval single-line infilling, {args.model}, {args.fim_order.upper()}, n = {len(finished)} tasks "
          f"(seeded random order, seed {args.seed})")
    print(f"{'budget':>7} {'pass@1':>7} {'EM':>6} {'÷ ' + str(largest):>7} {'prompt tokens p50/max':>22}")
    for budget in sorted(args.budgets):
        got = [done[(t.task_id, budget)] for t in finished]
        if not got:
            continue
        passed = statistics.fmean(r["pass@1"] for r in got)
        em = statistics.fmean(r["exact_match"] for r in got)
        tokens = [r["prompt_tokens"] for r in got]
        ratio = f"{passed / best:.3f}" if best else "-"
        print(f"{budget:>7} {passed:>7.3f} {em:>6.3f} {ratio:>7} {statistics.median(tokens):>14.0f}/{max(tokens)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
