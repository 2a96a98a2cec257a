"""Suite ``fim``: HumanEval single-line, multi-line and random-span infilling.

Each task hides a middle between a prefix and a suffix of a HumanEval solution. The model's
middle is spliced back, the program (prefix + completion + suffix + tests) runs in the sandbox,
and pass@1 is whether it exits 0; exact match and edit similarity compare with the canonical
middle. ``--self-check`` scores the harness itself without a model: the canonical middles must
pass (pass@1 = 1.0) and deliberately broken ones ("mangled": a syntax error is injected) must
fail (0.0); "empty" middles are reported for reference (how often deleting the code still
passes the tests). ``--ceiling`` sends the canonical middles through the real engine (a fake
backend that "generates" them): the score of a perfect model, i.e. what prompt assembly and
post-processing lose.
"""

from __future__ import annotations

import argparse

from evals.humaneval import INFILLING_FILES, InfillingTask, load_infilling, python_program, sample
from evals.metrics import edit_similarity, exact_match
from evals.runner import Completer, ResultLog, run_samples, scripted_engine
from evals.sandbox import SandboxLimits, checked, run_python
from repocomplete.types import CompletionRequest, DebugOptions, Segments

NAME = "fim"
DESCRIPTION = "HumanEval infilling (single-line, multi-line, random-span): pass@1 in a sandbox, exact match"
PRIMARY_METRIC = "pass@1"
DEFAULT_SUBSETS = ("single_line", "multi_line", "random_span")

#: Self-check variants: name -> (middle -> replacement middle).
SELF_CHECK_VARIANTS = {
    "canonical": lambda middle: middle,
    "mangled": lambda middle: ")(" + middle,
    "empty": lambda middle: "",
}

_MAX_TOKENS = {"single_line": 48, "multi_line": 192, "random_span": 128, "random_span_light": 128}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subsets", nargs="+", default=list(DEFAULT_SUBSETS), choices=sorted(INFILLING_FILES),
                        help="infilling subsets to run (default: %(default)s)")
    parser.add_argument("--self-check", action="store_true",
                        help="no model: canonical middles must pass, mangled ones must fail")
    parser.add_argument("--ceiling", action="store_true",
                        help="no model: canonical middles through the engine (fake backend): what post-processing loses")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per program (default: %(default)s)")


def needs_model(args: argparse.Namespace) -> bool:
    return not (args.self_check or args.ceiling)


def model_free_label(args: argparse.Namespace) -> str:
    return "self-check" if args.self_check else "engine ceiling"


def load(args: argparse.Namespace) -> list[InfillingTask]:
    """``--limit`` tasks of each subset (a seeded sample spanning many problems)."""
    tasks: list[InfillingTask] = []
    for subset in args.subsets:
        tasks += sample(load_infilling(subset), args.limit, seed=args.seed)
    return tasks


def whole_lines(task: InfillingTask) -> bool:
    """Whether the middle is whole lines (it then ends with the line break the editor already has)."""
    return task.subset in ("single_line", "multi_line") and task.middle.endswith("\n")


def request_for(task: InfillingTask, adapter: str | None = None, max_tokens: int | None = None) -> CompletionRequest:
    """The completion request of one task, as an editor sees it; no repository, so retrieval is off.

    For whole-line middles the cursor sits on an empty line: the suffix starts with the line
    break that ends the middle (the engine completes lines without their final newline).
    """
    suffix = "\n" + task.suffix if whole_lines(task) else task.suffix
    return CompletionRequest(
        segments=Segments(prefix=task.prefix, suffix=suffix, filepath="humaneval.py"),
        language="python",
        adapter=adapter,
        max_tokens=max_tokens or _MAX_TOKENS.get(task.subset, 128),
        temperature=0.0,
        mode="line" if task.subset == "single_line" else "multiline",
        debug_options=DebugOptions(disable_retrieval=True),
    )


def score_middle(task: InfillingTask, middle: str, limits: SandboxLimits) -> dict:
    """Execute one candidate middle; return the metrics of a record."""
    program = python_program(task.prefix + middle + task.suffix, task.test, task.entry_point)
    return _score_program(task, middle, program, limits)


def score_completion(task: InfillingTask, completion: str, limits: SandboxLimits) -> dict:
    """Execute a model's completion of the editor view of ``task`` (see :func:`request_for`)."""
    line_break = "\n" if whole_lines(task) else ""
    program = python_program(task.prefix + completion + line_break + task.suffix, task.test, task.entry_point)
    return _score_program(task, completion, program, limits)


def _score_program(task: InfillingTask, middle: str, program: str, limits: SandboxLimits) -> dict:
    result = checked(run_python(program, limits))
    return {
        "status": result.status,
        "metrics": {
            "pass@1": float(result.passed),
            "exact_match": exact_match(middle, task.middle),
            "edit_similarity": edit_similarity(middle, task.middle),
        },
    }


def run(tasks: list[InfillingTask], args: argparse.Namespace, completer: Completer | None, log: ResultLog) -> list[dict]:
    limits = SandboxLimits(timeout_s=args.timeout)
    if args.self_check:
        items = [(variant, task) for variant in SELF_CHECK_VARIANTS for task in tasks]

        def check(item: tuple[str, InfillingTask]) -> dict:
            variant, task = item
            middle = SELF_CHECK_VARIANTS[variant](task.middle)
            return {"setting": f"{variant}/{task.subset}", "id": task.task_id, **score_middle(task, middle, limits)}

        return run_samples(items, lambda it: f"{it[0]}:{it[1].task_id}", check, log, "fim self-check",
                           show_progress=args.progress)

    max_tokens = None
    if getattr(args, "ceiling", False):
        answers = [(t.prefix, request_for(t).segments.suffix, t.middle[:-1] if whole_lines(t) else t.middle) for t in tasks]
        completer, max_tokens = scripted_engine(answers, label="engine ceiling"), 1024  # one token per character
    assert completer is not None

    def infill(task: InfillingTask) -> dict:
        output = completer.complete(request_for(task, args.adapter_name, max_tokens))
        record = {"setting": task.subset, "id": task.task_id, "completion": output.text, "target": task.middle,
                  "latency_ms": output.latency_ms}
        return record | score_completion(task, output.text, limits)

    return run_samples(tasks, lambda t: t.task_id, infill, log, "fim", show_progress=args.progress)


def self_check_ok(summary: dict) -> bool:
    """True when every canonical setting scored pass@1 = 1.0 and every mangled one 0.0."""
    settings = summary["settings"]
    canonical = [v["pass@1"] for k, v in settings.items() if k.startswith("canonical/")]
    mangled = [v["pass@1"] for k, v in settings.items() if k.startswith("mangled/")]
    return bool(canonical) and all(v == 1.0 for v in canonical) and all(v == 0.0 for v in mangled)
