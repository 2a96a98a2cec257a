"""The fim suite: the harness separates right from wrong middles, end to end."""

from __future__ import annotations

import json

import pytest

from evals import fim
from evals.humaneval import load_infilling
from evals.report import summarize
from evals.runner import ResultLog
from repocomplete.errors import RepocompleteError
from tests.evals.conftest import ScriptedCompleter, cli_summary, run_cli


def test_self_check_canonical_passes_and_mangled_fails(tmp_path):
    out = tmp_path / "run"
    summary = cli_summary("fim", "--self-check", "--limit", "3", "--subsets", "single_line", "random_span",
                          "--out", str(out))
    settings = summary["settings"]
    assert settings["canonical/single_line"]["pass@1"] == 1.0
    assert settings["canonical/random_span"]["pass@1"] == 1.0
    assert settings["mangled/single_line"]["pass@1"] == 0.0
    assert settings["mangled/random_span"]["pass@1"] == 0.0
    assert summary["self_check_ok"] is True
    for name in ("summary.json", "summary.md", "summary.png", "samples.jsonl"):
        assert (out / name).stat().st_size > 0
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2 * 3  # variants x subsets x limit

    # A rerun continues the folder: nothing is executed twice.
    again = cli_summary("fim", "--self-check", "--limit", "3", "--subsets", "single_line", "random_span",
                        "--out", str(out))
    assert again["settings"] == settings
    assert len((out / "samples.jsonl").read_text().splitlines()) == len(lines)


def test_a_crash_keeps_finished_samples_and_the_rerun_continues(tmp_path, make_args):
    tasks = load_infilling("single_line")[:4]
    args = make_args(subsets=["single_line"], timeout=10.0)
    log = ResultLog(tmp_path / "samples.jsonl")
    calls = []

    def flaky(request):
        calls.append(request)
        if len(calls) == 3:
            raise RuntimeError("backend died")
        return next(t.middle for t in tasks if t.prefix == request.segments.prefix)

    try:
        fim.run(tasks, args, ScriptedCompleter(flaky), log)
    except RuntimeError:
        pass
    assert len(ResultLog(tmp_path / "samples.jsonl")) == 2
    # A half-written line (killed mid-write) is ignored, not fatal.
    with (tmp_path / "samples.jsonl").open("a") as handle:
        handle.write('{"key": "trunc')
    records = fim.run(tasks, args, ScriptedCompleter(flaky), ResultLog(tmp_path / "samples.jsonl"))
    assert len(records) == 4 and len(calls) == 5
    assert summarize(records)["single_line"]["pass@1"] == 1.0


def test_gold_completer_scores_one_and_wrong_completer_scores_zero(tmp_path, make_args):
    tasks = fim.load(make_args(subsets=["single_line", "multi_line", "random_span"], limit=3))
    gold = {t.prefix + "\0" + fim.request_for(t).segments.suffix: t.middle for t in tasks}
    args = make_args(subsets=["single_line", "multi_line", "random_span"], timeout=10.0)

    right = ScriptedCompleter(lambda r: gold[r.segments.prefix + "\0" + r.segments.suffix])
    table = summarize(fim.run(tasks, args, right, ResultLog(tmp_path / "gold.jsonl")))
    assert all(row["pass@1"] == 1.0 and row["exact_match"] == 1.0 for row in table.values())
    assert right.requests[0].debug_options.disable_retrieval and right.requests[0].mode == "line"

    wrong = ScriptedCompleter(lambda r: "    return 'definitely wrong'\n")
    table = summarize(fim.run(tasks, args, wrong, ResultLog(tmp_path / "wrong.jsonl")))
    assert all(row["pass@1"] == 0.0 and row["exact_match"] == 0.0 for row in table.values())


def test_bad_input_is_one_line_errors(tmp_path):
    unknown = run_cli("nonsense")
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0 and "fim" in unknown.stderr
    server = run_cli("fim", "--server", "http://127.0.0.1:9", "--limit", "1", "--out", str(tmp_path / "x"))
    assert server.returncode == 2 and "cannot reach server" in server.stderr
    assert server.stderr.strip().count("\n") == 0
    report = run_cli("report", str(tmp_path / "missing"))
    assert report.returncode == 2 and "summary.json" in report.stderr


def test_report_compares_runs_side_by_side(tmp_path):
    out = tmp_path / "a"
    cli_summary("fim", "--self-check", "--limit", "2", "--subsets", "single_line", "--out", str(out))
    second = tmp_path / "b"
    second.mkdir()
    summary = json.loads((out / "summary.json").read_text())
    summary["label"] = "other model"
    (second / "summary.json").write_text(json.dumps(summary))
    done = run_cli("report", str(out), str(second), "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    assert "self-check / fim:canonical/single_line" in done.stdout
    assert "other model / fim:canonical/single_line" in done.stdout
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_ceiling_sends_gold_through_the_real_engine(tmp_path):
    """A perfect model (the fake backend "generates" each canonical line) through prompt
    assembly, stop handling and post-processing must keep single lines intact."""
    summary = cli_summary("fim", "--ceiling", "--limit", "6", "--subsets", "single_line", "--out", str(tmp_path / "c"))
    assert summary["label"] == "engine ceiling"
    assert summary["settings"]["single_line"]["exact_match"] == 1.0
    assert summary["settings"]["single_line"]["pass@1"] == 1.0


def test_a_rerun_with_a_smaller_sample_scores_only_that_sample(tmp_path, make_args):
    args = make_args(subsets=["single_line"], timeout=10.0)
    tasks = load_infilling("single_line")[:3]
    log_path = tmp_path / "samples.jsonl"
    gold = {t.prefix: t.middle for t in tasks}
    fim.run(tasks, args, ScriptedCompleter(lambda r: gold[r.segments.prefix]), ResultLog(log_path))
    records = fim.run(tasks[:1], args, ScriptedCompleter(lambda r: "never called"), ResultLog(log_path))
    assert [r["id"] for r in records] == [tasks[0].task_id]


def test_missing_data_is_a_one_line_error(tmp_path):
    with pytest.raises(RepocompleteError, match="evaluation data missing"):
        load_infilling("single_line", data_dir=tmp_path)
    with pytest.raises(RepocompleteError, match="unknown infilling subset"):
        load_infilling("nonsense")
