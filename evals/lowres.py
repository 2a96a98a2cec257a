"""Suite ``lowres``: HumanEval translated to R and Racket, executed with Rscript and racket.

Variants of the prompt (the program that is executed is always prompt + completion + tests):

- ``baseline``: the translated prompt alone.
- ``few_shot``: two solved problems in the target language first.
- ``translation``: two (Python solution -> target solution) pairs, then the problem's Python
  prompt as a comment above the target prompt.
- ``docs``: a short reference of the target language's built-ins as comments.

With ``--adapter`` (a LoRA fine-tuned on R or Racket code with ``repocomplete finetune``) every
variant's prompt is answered by the adapter, as in the other suites; its rows are named
``LANGUAGE/VARIANT+ADAPTER``. Base vs adapter, with and without in-context examples, is two runs
with the same ``--limit`` and ``--seed`` (the same tasks) put side by side by
``repocomplete eval report`` (``bench/lowres_lora.py`` does all of it).

``--self-check`` runs hand-written solutions instead of a model: the correct ones must pass and
the wrong ones must fail, in both languages (this is what shows the translated tests work).
"""

from __future__ import annotations

import argparse

from evals.humaneval import Problem, load_problems, sample
from evals.lowres_translate import FILE_NAMES, LANGUAGES, Language, TranslatedProblem, translate, translate_all
from evals.runner import Completer, ResultLog, run_samples
from evals.sandbox import ExecutionResult, SandboxLimits, checked, require_programs, run_r, run_racket
from repocomplete.types import CompletionRequest, DebugOptions, Segments

NAME = "lowres"
DESCRIPTION = "HumanEval translated to R and Racket: baseline, few-shot, translation, docs; --adapter answers all (pass@1)"
PRIMARY_METRIC = "pass@1"
VARIANTS = ("baseline", "few_shot", "translation", "docs")

#: Hand-written solutions: task -> language -> (correct completion, wrong completion).
SOLUTIONS: dict[str, dict[Language, tuple[str, str]]] = {
    "HumanEval/0": {
        "r": ("""    for (i in seq_along(numbers)) {
        for (j in seq_along(numbers)) {
            if (i != j && abs(numbers[i] - numbers[j]) < threshold) {
                return(TRUE)
            }
        }
    }
    FALSE
}""", "    FALSE\n}"),
        "racket": ("""  (for*/or ([i (in-range (length numbers))] [j (in-range (length numbers))])
    (and (not (= i j)) (< (abs (- (list-ref numbers i) (list-ref numbers j))) threshold))))""", "  #f)"),
    },
    "HumanEval/13": {
        "r": ("""    while (b != 0) {
        t <- b
        b <- a %% b
        a <- t
    }
    a
}""", "    1\n}"),
        "racket": ("  (if (= b 0) a (greatest_common_divisor b (modulo a b))))", "  1)"),
    },
    "HumanEval/23": {
        "r": ("    nchar(string)\n}", "    0\n}"),
        "racket": ("  (string-length string))", "  0)"),
    },
    "HumanEval/28": {
        "r": ("    paste(strings, collapse = \"\")\n}", "    paste(strings, collapse = \" \")\n}"),
        "racket": ("  (apply string-append strings))", "  (string-join strings \" \"))"),
    },
    "HumanEval/34": {
        "r": ("    sort(base::unique(l))\n}", "    l\n}"),
        "racket": ("  (sort (remove-duplicates l) <))", "  l)"),
    },
}


#: A short reference of built-ins, put in the prompt by the ``docs`` variant.
DOCS: dict[Language, str] = {
    "r": """R reference:
length(x): number of elements; seq_along(x): 1..length(x); rev(x); sort(x); base::unique(x)
x[i]: element i (1-based); x[-1]: all but the first; c(a, b): concatenate vectors
nchar(s): string length; substr(s, start, stop); strsplit(s, "")[[1]]: characters
paste(v, collapse = ""): join strings; toupper(s); tolower(s); sprintf(fmt, ...)
sum(x); prod(x); max(x); min(x); abs(x); a %% b: modulo; a %/% b: integer division
sapply(x, f); Filter(f, x); Reduce(f, x, init); which(cond); any(x); all(x)
list(...): heterogeneous list; x[[i]]: list element; NULL: nothing
""",
    "racket": """Racket reference:
(length lst) (list-ref lst i) (reverse lst) (sort lst <) (remove-duplicates lst)
(first lst) (rest lst) (cons x lst) (append a b) (filter f lst) (map f lst)
(foldl f init lst) (apply + lst) (for/list ([x lst]) ...) (for/or ...) (for/and ...)
(string-length s) (substring s start end) (string->list s) (list->string cs)
(string-append a b) (string-join strs sep) (string-upcase s) (number->string n)
(modulo a b) (quotient a b) (abs x) (max a b) (min a b) (expt a b) (sqrt x)
(hash k v ...) (hash-ref h k) #t #f
""",
}

_COMMENT = {"r": "# ", "racket": ";; "}
_RUN = {"r": run_r, "racket": run_racket}
_PROGRAM = {"r": "Rscript", "racket": "racket"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES,
                        help="target languages (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="prompt variants (default: all)")
    parser.add_argument("--self-check", action="store_true",
                        help="no model: hand-written correct solutions must pass, wrong ones must fail")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per program (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generation limit per problem (default: 256)")


def load(args: argparse.Namespace) -> list[TranslatedProblem]:
    """``--limit`` translated problems per language (the solved ones for ``--self-check``)."""
    problems = load_problems()
    if args.self_check:
        solved = [p for p in problems if p.task_id in SOLUTIONS][: args.limit]
        return [t for lang in args.languages for p in solved if (t := translate(p, lang)) is not None]
    return [t for lang in args.languages for t in sample(translate_all(problems, lang), args.limit, seed=args.seed)]


def _comment(language: Language, text: str) -> str:
    return "".join(f"{_COMMENT[language]}{line}".rstrip() + "\n" for line in text.splitlines())


def _examples(target: TranslatedProblem, problems: dict[str, Problem], with_python: bool) -> str:
    """Two solved problems other than ``target`` (their Python solution first, if asked)."""
    chosen = [tid for tid in SOLUTIONS if tid != target.task_id][:2]
    parts = []
    for tid in chosen:
        example = translate(problems[tid], target.language)
        if example is None:
            continue
        if with_python:
            python = problems[tid].prompt + problems[tid].canonical_solution
            parts.append(_comment(target.language, "Python:\n" + python.strip()) + _comment(target.language, "Translation:"))
        parts.append(_strip_lang_line(example.prompt) + SOLUTIONS[tid][target.language][0] + "\n\n")
    return "".join(parts)


def _strip_lang_line(text: str) -> str:
    return text.removeprefix("#lang racket\n\n")


def context_for(variant: str, target: TranslatedProblem, problems: dict[str, Problem]) -> str:
    """The text a variant puts before the translated prompt."""
    if variant == "few_shot":
        return _examples(target, problems, with_python=False)
    if variant == "translation":
        python = _comment(target.language, "Python:\n" + target.python_prompt.strip())
        return _examples(target, problems, with_python=True) + python + _comment(target.language, "Translation:")
    if variant == "docs":
        return _comment(target.language, DOCS[target.language]) + "\n"
    return ""


def prompt_with_context(target: TranslatedProblem, context: str) -> str:
    """Context goes after ``#lang racket`` (which must stay the first line) or at the top in R."""
    if target.language == "racket":
        return "#lang racket\n\n" + context + _strip_lang_line(target.prompt)
    return context + target.prompt


def execute(target: TranslatedProblem, completion: str, limits: SandboxLimits) -> ExecutionResult:
    """Run the program; HarnessError (nothing recorded) when it could not run at all."""
    return checked(_RUN[target.language](target.program(completion), limits))


def run(targets: list[TranslatedProblem], args: argparse.Namespace, completer: Completer | None, log: ResultLog) -> list[dict]:
    # A missing interpreter is named up front, not scored as every answer being wrong.
    require_programs([_PROGRAM[language] for language in dict.fromkeys(t.language for t in targets)])
    limits = SandboxLimits(timeout_s=args.timeout)
    if args.self_check:
        items = [(kind, t) for t in targets for kind in ("correct", "wrong")]

        def check(item: tuple[str, TranslatedProblem]) -> dict:
            kind, target = item
            completion = SOLUTIONS[target.task_id][target.language][0 if kind == "correct" else 1]
            result = execute(target, completion, limits)
            return {"setting": f"{target.language}/{kind}", "id": target.task_id, "status": result.status,
                    "stderr": result.stderr[-500:], "metrics": {"pass@1": float(result.passed)}}

        return run_samples(items, lambda it: f"{it[1].language}:{it[0]}:{it[1].task_id}", check, log,
                           "lowres self-check", show_progress=args.progress)

    assert completer is not None
    problems = {p.task_id: p for p in load_problems()}
    adapter = args.adapter_name
    suffix = f"+{adapter}" if adapter else ""
    items = [(v, t) for t in task_major(targets) for v in args.variants]

    def solve(item: tuple[str, TranslatedProblem]) -> dict:
        variant, target = item
        prefix = prompt_with_context(target, context_for(variant, target, problems))
        request = CompletionRequest(
            segments=Segments(prefix=prefix, suffix="", filepath=FILE_NAMES[target.language]),
            language=target.language, adapter=adapter,
            max_tokens=args.max_tokens, temperature=0.0, mode="multiline", stop=list(target.stop),
            debug_options=DebugOptions(disable_retrieval=True),
        )
        output = completer.complete(request)
        result = execute(target, output.text, limits)
        return {"setting": f"{target.language}/{variant}{suffix}", "id": target.task_id, "completion": output.text,
                "status": result.status, "latency_ms": output.latency_ms,
                "metrics": {"pass@1": float(result.passed)}}

    return run_samples(items, lambda it: f"{it[1].language}:{it[0]}{suffix}:{it[1].task_id}", solve, log, "lowres",
                       show_progress=args.progress)


def task_major(targets: list[TranslatedProblem]) -> list[TranslatedProblem]:
    """The targets interleaved across languages (R's first task, Racket's first, R's second, ...),
    so that a run stopped part-way has every variant of both languages on the same first tasks."""
    by_language: dict[str, list[TranslatedProblem]] = {}
    for target in targets:
        by_language.setdefault(target.language, []).append(target)
    columns = list(by_language.values())
    return [column[i] for i in range(max(map(len, columns), default=0)) for column in columns if i < len(column)]


def finalize(summary: dict, records: list[dict], args: argparse.Namespace) -> None:
    summary["meta"]["translated_problems"] = {lang: len(translate_all(load_problems(), lang)) for lang in args.languages}


def self_check_ok(summary: dict) -> bool:
    """Every correct solution passed and every wrong one failed, in each language."""
    rows = summary["settings"]
    correct = [v["pass@1"] for k, v in rows.items() if k.endswith("/correct")]
    wrong = [v["pass@1"] for k, v in rows.items() if k.endswith("/wrong")]
    return bool(correct) and all(v == 1.0 for v in correct) and all(v == 0.0 for v in wrong)
