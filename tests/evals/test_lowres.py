"""R and Racket translation: golden renderings, and real Rscript/racket runs that tell right from wrong."""

from __future__ import annotations

import ast

import pytest

from evals import lowres
from evals.humaneval import load_problems
from evals.lowres_translate import shape_of, to_r, to_racket, translate, translate_all
from evals.report import summarize
from evals.runner import ResultLog
from tests.conftest import skip_or_fail_without
from tests.evals.conftest import ScriptedCompleter, cli_summary


def _shape(annotation: str):
    return shape_of(ast.parse(annotation, mode="eval").body)


@pytest.mark.parametrize(
    ("value", "annotation", "r", "racket"),
    [
        (None, "None", "NULL", "#f"),
        (True, "bool", "TRUE", "#t"),
        (3, "float", "3.0", "3.0"),
        (3, "int", "3", "3"),
        (float("inf"), "float", "Inf", "+inf.0"),
        ('a"b\n', "str", '"a\\"b\\n"', '"a\\"b\\n"'),
        ([1, 2], "List[int]", "c(1, 2)", "(list 1 2)"),
        ([], "List[int]", "c()", "(list)"),
        ([[1], []], "List[List[int]]", "list(c(1), c())", "(list (list 1) (list))"),
        ((1, "x"), "Tuple[int, str]", 'list(1, "x")', '(list 1 "x")'),
        ({"a": 1.5}, "Dict[str, float]", 'list("a" = 1.5)', '(hash "a" 1.5)'),
        ([1, None], "list", "list(1, NULL)", "(list 1 #f)"),
    ],
)
def test_values_translate_with_their_types(value, annotation, r, racket):
    assert to_r(value, _shape(annotation)) == r
    assert to_racket(value, _shape(annotation)) == racket


def test_most_of_humaneval_translates_and_prompts_have_the_expected_shape():
    problems = load_problems()
    for language in ("r", "racket"):
        assert len(translate_all(problems, language)) >= 140  # MultiPL-E keeps a similar share
    r = translate(problems[0], "r")
    assert r.prompt.endswith("has_close_elements <- function(numbers, threshold) {\n")
    assert "# >>> has_close_elements(c(1.0, 2.0, 3.0), 0.5)\n# FALSE\n" in r.prompt
    assert "stopifnot(isTRUE(all.equal(candidate(c(1.0, 2.0, 3.9, 4.0, 5.0, 2.2), 0.3), TRUE)))" in r.tests
    racket = translate(problems[0], "racket")
    assert racket.prompt.startswith("#lang racket\n") and racket.prompt.endswith("(define (has_close_elements numbers threshold)\n")
    assert "(check-equal? (candidate (list 1.0 2.0 3.9 4.0 5.0 2.2) 0.3) #t)" in racket.tests
    # Helper functions in the prompt (HumanEval/10 defines is_palindrome) are out of scope.
    assert translate(problems[10], "r") is None


def test_variants_put_context_before_the_prompt_and_keep_lang_first():
    problems = {p.task_id: p for p in load_problems()}
    target = translate(problems["HumanEval/23"], "racket")
    for variant in ("few_shot", "translation", "docs"):
        prefix = lowres.prompt_with_context(target, lowres.context_for(variant, target, problems))
        assert prefix.startswith("#lang racket\n") and prefix.count("#lang") == 1
        assert prefix.endswith(target.prompt.removeprefix("#lang racket\n\n"))
        assert len(prefix) > len(target.prompt)
    translation = lowres.context_for("translation", target, problems)
    assert ";; Python:" in translation and "(define (has_close_elements" in translation


@pytest.fixture
def interpreters():
    skip_or_fail_without("Rscript")
    skip_or_fail_without("racket")


def test_self_check_correct_solutions_pass_and_wrong_ones_fail(interpreters, tmp_path):
    summary = cli_summary("lowres", "--self-check", "--limit", "3", "--out", str(tmp_path / "run"))
    for language in ("r", "racket"):
        assert summary["settings"][f"{language}/correct"]["pass@1"] == 1.0
        assert summary["settings"][f"{language}/wrong"]["pass@1"] == 0.0
        assert summary["settings"][f"{language}/correct"]["n"] == 3
    assert summary["self_check_ok"] is True


@pytest.mark.parametrize("adapter", [None, "rkt-lora"])
def test_gold_and_wrong_completers_through_every_variant(interpreters, tmp_path, make_args, adapter):
    """Without --adapter the base answers every variant; with it the adapter does, in rows named
    VARIANT+ADAPTER (the four cells base/LoRA x with/without examples are two runs)."""
    args = make_args(languages=["r", "racket"], variants=["baseline", "few_shot"], timeout=20.0,
                     adapter_name=adapter, max_tokens=256)
    targets = [t for t in lowres.load(make_args(languages=["r", "racket"], self_check=True)) if t.task_id == "HumanEval/13"]

    def gold(request):
        target = next(t for t in targets if t.language == request.language)
        return lowres.SOLUTIONS[target.task_id][target.language][0]

    right = ScriptedCompleter(gold)
    table = summarize(lowres.run(targets, args, right, ResultLog(tmp_path / "gold.jsonl")))
    suffix = f"+{adapter}" if adapter else ""
    assert set(table) == {f"{lang}/{v}{suffix}" for lang in ("r", "racket") for v in ("baseline", "few_shot")}
    assert all(row["pass@1"] == 1.0 and row["n"] == 1 for row in table.values())
    assert [r.adapter for r in right.requests] == [adapter] * 4
    assert all(r.stop for r in right.requests)

    wrong = ScriptedCompleter(lambda request: "  (/ 1 0))" if request.language == "racket" else "    stop('no')\n}")
    table = summarize(lowres.run(targets, args, wrong, ResultLog(tmp_path / "wrong.jsonl")))
    assert all(row["pass@1"] == 0.0 for row in table.values())


def test_task_major_interleaves_languages_golden(make_args):
    """A run cut short has every variant of both languages on the same first tasks."""
    targets = lowres.load(make_args(languages=["r", "racket"], self_check=True, limit=3))
    assert [(t.language, t.task_id) for t in targets][:2] == [("r", "HumanEval/0"), ("r", "HumanEval/13")]
    ordered = lowres.task_major(targets)
    assert [(t.language, t.task_id) for t in ordered] == [
        ("r", "HumanEval/0"), ("racket", "HumanEval/0"), ("r", "HumanEval/13"), ("racket", "HumanEval/13"),
        ("r", "HumanEval/23"), ("racket", "HumanEval/23")]
    assert lowres.task_major(targets[:4]) == [targets[0], targets[3], targets[1], targets[2]]  # 3 r, 1 racket
    assert lowres.task_major([]) == []


@pytest.mark.slow
def test_adapter_flag_answers_every_variant_with_the_lora(interpreters, tiny_model_dir, tmp_path):
    """`eval lowres --adapter NAME=PATH` on a real (tiny) model and a random LoRA: the same tasks as
    the base run, rows VARIANT+NAME with n and intervals, and the adapter changes what is written."""
    import json

    from tests.repocomplete.conftest import make_lora_adapter

    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "lora", seed=7)
    common = ("lowres", "--model", str(tiny_model_dir), "--backend", "transformers", "--variants", "baseline",
              "few_shot", "--limit", "2", "--max-tokens", "12", "--timeout", "30")
    base = cli_summary(*common, "--out", str(tmp_path / "base"))
    tuned = cli_summary(*common, "--adapter", f"lora={adapter}", "--out", str(tmp_path / "lora-run"))
    cells = [f"{lang}/{v}" for lang in ("r", "racket") for v in ("baseline", "few_shot")]
    assert set(base["settings"]) == set(cells)
    assert set(tuned["settings"]) == {f"{cell}+lora" for cell in cells}
    for row in [*base["settings"].values(), *tuned["settings"].values()]:
        assert row["n"] == 2 and len(row["ci95"]["pass@1"]) == 2

    def samples(run: str) -> dict[str, dict]:
        lines = (tmp_path / run / "samples.jsonl").read_text().splitlines()
        return {(r := json.loads(line))["key"].replace("+lora", ""): r for line in lines}

    before, after = samples("base"), samples("lora-run")
    assert set(before) == set(after) and len(before) == 8   # the same tasks, variants and languages
    assert any(before[k]["completion"] != after[k]["completion"] for k in before)


def test_missing_interpreters_are_named_with_how_to_install_them_not_scored_as_wrong(tmp_path):
    """Without Rscript and racket the self-check (and a model run) stops with one line, recording nothing."""
    import os
    import subprocess
    import sys

    from tests.evals.conftest import ROOT

    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "repocomplete", "eval", "lowres", "--self-check", "--limit", "2",
                           "--no-progress", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT), "PATH": str(empty)})
    assert done.returncode == 2, done.stderr
    assert "Rscript and racket not installed" in done.stderr and "apt-get install r-base-core racket" in done.stderr
    assert "self-check FAILED" not in done.stderr and "Traceback" not in done.stderr
    assert not (out / "samples.jsonl").exists() or (out / "samples.jsonl").read_text() == ""


def test_a_harness_error_is_not_a_result_and_runs_again_on_resume(tmp_path):
    """Records an older version stored for programs that never ran ("Rscript is not installed") are retried."""
    import json

    from evals.runner import run_samples
    from evals.sandbox import ExecutionResult, HarnessError, checked

    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {"key": "r:correct:1", "setting": "r/correct", "status": "error", "stderr": "Rscript is not installed",
         "metrics": {"pass@1": 0.0}},
        {"key": "r:correct:2", "setting": "r/correct", "status": "passed", "metrics": {"pass@1": 1.0}})))
    log = ResultLog(path)
    assert "r:correct:1" not in log and "r:correct:2" in log
    ran = []
    records = run_samples(["1", "2"], lambda i: f"r:correct:{i}", lambda i: ran.append(i) or
                          {"setting": "r/correct", "status": "passed", "metrics": {"pass@1": 1.0}}, log, "t", show_progress=False)
    assert ran == ["1"] and sorted(r["key"] for r in records) == ["r:correct:1", "r:correct:2"]
    assert all(r["status"] == "passed" for r in records)
    with pytest.raises(HarnessError, match="Rscript is not installed"):
        checked(ExecutionResult("error", None, "", "Rscript is not installed", 0.0))


def test_bench_table_pairs_the_four_cells_on_the_tasks_all_have_finished(tmp_path):
    """bench/lowres_lora.py's table: a cell's n is the tasks every cell of its language finished
    (a run stopped at a deadline still compares like with like), with the suite's intervals."""
    import json

    from bench.lowres_lora import table

    def write(run: str, rows: list[tuple[str, str, float]]) -> None:
        (tmp_path / run).mkdir(exist_ok=True)
        lines = [json.dumps({"key": f"{s}:{t}", "setting": s, "id": t, "metrics": {"pass@1": v}}) for s, t, v in rows]
        (tmp_path / run / "samples.jsonl").write_text("\n".join(lines) + "\n{\"cut short")

    write("eval-base", [("r/baseline", "H/1", 1.0), ("r/baseline", "H/2", 0.0), ("r/baseline", "H/3", 1.0),
                        ("r/few_shot", "H/1", 1.0), ("r/few_shot", "H/2", 1.0), ("r/few_shot", "H/3", 0.0),
                        ("racket/baseline", "H/1", 1.0), ("racket/few_shot", "H/1", 0.0)])
    write("eval-lora", [("r/baseline", "H/1", 0.0), ("r/baseline", "H/2", 0.0),
                        ("r/few_shot", "H/2", 1.0), ("r/few_shot", "H/1", 1.0)])
    assert table(tmp_path).splitlines()[3] == "| Racket | 0 | - | - | - | - |"
    # a run per language (eval-lora-racket) counts as the LoRA run too
    write("eval-lora-racket", [("racket/baseline", "H/1", 1.0), ("racket/few_shot", "H/1", 1.0)])
    assert table(tmp_path).splitlines() == [
        "| language | n | base | base + examples | LoRA | LoRA + examples |",
        "|---|---|---|---|---|---|",
        "| R | 2 | 1/2 = 0.50 [0.00, 1.00] | 2/2 = 1.00 [1.00, 1.00] | 0/2 = 0.00 [0.00, 0.00] | 2/2 = 1.00 [1.00, 1.00] |",
        "| Racket | 1 | 1/1 = 1.00 [1.00, 1.00] | 0/1 = 0.00 [0.00, 0.00] | 1/1 = 1.00 [1.00, 1.00] | 1/1 = 1.00 [1.00, 1.00] |",
    ]


def test_bench_corpora_are_parseable_r_and_racket_sources_only(interpreters, tmp_path):
    """The R corpus is deparsed functions that R parses back; the Racket one is the collection's
    .rkt files without compiled output; built once (a rerun keeps them)."""
    import subprocess

    from bench.lowres_lora import build_corpora

    collection = tmp_path / "collects"
    (collection / "private" / "compiled").mkdir(parents=True)
    (collection / "list.rkt").write_text("#lang racket/base\n(define (f x) x)\n")
    (collection / "private" / "util.rkt").write_text("#lang racket/base\n(define y 1)\n")
    (collection / "private" / "compiled" / "util_rkt.zo").write_bytes(b"\0")
    (collection / "info.txt").write_text("not code")
    r_dir, racket_dir = build_corpora(tmp_path / "corpus", ("splines",), collection)
    assert sorted(p.relative_to(racket_dir).as_posix() for p in racket_dir.rglob("*") if p.is_file()) == [
        "list.rkt", "private/util.rkt"]
    files = sorted(r_dir.rglob("*.R"))
    assert files and all(f.parent.name == "splines" for f in files)
    check = ("env <- new.env(); for (f in commandArgs(TRUE)) sys.source(f, envir = env); "
             "cat(is.function(env$bs), is.function(env$interpSpline), length(ls(env)))")
    done = subprocess.run(["Rscript", "-e", check, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    is_bs, is_spline, count = done.stdout.split()
    assert (is_bs, is_spline) == ("TRUE", "TRUE") and int(count) >= 10
    sources = (tmp_path / "corpus" / "SOURCES.md").read_text()
    assert "GPL-2 \\| GPL-3" in sources and "MIT or Apache-2.0" in sources and "(2 `.rkt` files)" in sources
    stamp = files[0].stat().st_mtime_ns
    build_corpora(tmp_path / "corpus", ("splines",), collection)
    assert files[0].stat().st_mtime_ns == stamp


def test_bench_merged_lora_computes_what_base_plus_adapter_computes(tiny_model_dir, tmp_path):
    """The LoRA cells are measured on the merged weights: the same logits as the adapter applied at
    run time, in a plain model folder with its tokenizer (rerunning keeps it)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.lowres_lora import merge
    from tests.repocomplete.conftest import make_lora_adapter

    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "lora", seed=3)
    out = tmp_path / "merged"
    merge(str(tiny_model_dir), adapter, out)
    tokens = AutoTokenizer.from_pretrained(out)("def f(x):\n    return", return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        plain = base(tokens).logits
        adapted = PeftModel.from_pretrained(base, str(adapter))(tokens).logits
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(tokens).logits
    assert not torch.allclose(plain, adapted, atol=1e-3)   # the LoRA changes the model...
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)   # ...and merging keeps that change
    stamp = (out / "config.json").stat().st_mtime_ns
    merge(str(tiny_model_dir), adapter, out)
    assert (out / "config.json").stat().st_mtime_ns == stamp and not (tmp_path / "merged.tmp").exists()
