"""The repo suite on real code (the standard library's json package), through the real engine."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from evals import repo
from evals.holes import mine_holes
from evals.report import summarize
from evals.runner import ResultLog
from tests.evals.conftest import ScriptedCompleter, cli_summary, engine_answering

STDLIB = Path(sysconfig.get_paths()["stdlib"])
JSON_PACKAGE = STDLIB / "json"


@pytest.fixture
def repo_args(make_args, tmp_path):
    return make_args(root=JSON_PACKAGE, kinds=["cross_file", "line", "rest_of_line"], languages=["python"],
                     settings=["none", "in_file", "bm25", "fused", "oracle"], sources=None, context_budget=512,
                     max_tokens=160, limit=2, run_dir=tmp_path)  # the fake model: one token per character


def test_holes_rebuild_the_file_and_cross_file_holes_name_their_defining_file():
    files = {p.name: p.read_text() for p in JSON_PACKAGE.glob("*.py")}
    holes = mine_holes(files, limit=5)
    assert {h.kind for h in holes} == {"cross_file", "line", "rest_of_line"}
    for hole in holes:
        assert hole.prefix + hole.target + hole.suffix == files[hole.path]
        assert "\n" not in hole.target and hole.target.strip()
    for hole in (h for h in holes if h.kind == "cross_file"):
        assert hole.gold and all(g.path != hole.path for g in hole.gold)
        assert any(g.name in hole.target for g in hole.gold)
        defining = files[hole.gold[0].path].split("\n")[hole.gold[0].start_line - 1]
        assert hole.gold[0].name in defining


def test_gold_engine_scores_one_wrong_engine_scores_zero(repo_args, tmp_path):
    holes = repo.load(repo_args)
    pairs = [(h.prefix, h.suffix, h.target) for h in holes]
    table = summarize(repo.run(holes, repo_args, engine_answering(pairs), ResultLog(tmp_path / "gold.jsonl")))
    assert "cross_file/oracle" in table and "line/oracle" not in table
    for setting, row in table.items():
        assert row["exact_match"] == 1.0 and row["edit_similarity"] == 1.0, setting
        assert row["identifier_f1"] == 1.0, setting
    # Lexical retrieval finds the defining file; no retrieval cannot.
    assert table["cross_file/fused"]["defining_file_recall"] > 0
    assert "defining_file_recall" not in table["cross_file/none"]

    wrong = engine_answering(pairs, wrong="zz_not_it(qq)\n")
    table = summarize(repo.run(holes, repo_args, wrong, ResultLog(tmp_path / "wrong.jsonl")))
    assert all(row["exact_match"] == 0.0 and row["identifier_f1"] == 0.0 for row in table.values())


def test_context_reaches_the_model_and_the_answer_never_does(repo_args, tmp_path):
    holes = [h for h in repo.load(repo_args) if h.kind == "cross_file"]
    completer = ScriptedCompleter(lambda request: "")
    repo.run(holes, repo_args, completer, ResultLog(tmp_path / "log.jsonl"))
    by_setting = dict(zip(["none", "in_file", "bm25", "fused", "oracle"] * len(holes), completer.requests))
    assert by_setting["none"].segments.snippets == []
    assert by_setting["oracle"].segments.snippets and by_setting["fused"].segments.snippets
    for request in completer.requests:
        hole = next(h for h in holes if h.prefix == request.segments.prefix)
        for snippet in request.segments.snippets:
            # The hole's own line never comes back from the index (the file is indexed without it).
            assert not (snippet.filepath == hole.path and hole.target in snippet.body)


def test_cli_with_the_fake_backend(tmp_path):
    summary = cli_summary("repo", str(JSON_PACKAGE), "--backend", "fake", "--limit", "2", "--settings", "none",
                          "fused", "--out", str(tmp_path / "run"))
    assert set(summary["settings"]) == {f"{k}/{s}" for k in ("cross_file", "line", "rest_of_line") for s in ("none", "fused")}
    # The fake model writes "pass": never one of these targets.
    assert all(row["exact_match"] == 0.0 for row in summary["settings"].values())
    assert (tmp_path / "run" / "summary.png").exists()


def test_retrieval_skips_only_what_the_models_window_shows(repo_args, tmp_path):
    """A small window leaves most of a long file out of the prompt: the engine tells retrieval
    what it shows, so the file's own lines beyond it come back as context (in_file source);
    a completer that cannot say (a remote server) counts the whole file as visible."""
    holes = [h for h in repo.load(repo_args) if h.suffix.count("\n") > 40]
    assert holes
    args = repo_args
    args.settings = ["in_file"]

    class SmallWindow(ScriptedCompleter):
        def visible_text(self, prefix: str, suffix: str, max_tokens: int, filepath: str | None = None) -> str:
            return prefix[-200:] + "\n" + suffix[:200]

    small = SmallWindow(lambda request: "")
    repo.run(holes, args, small, ResultLog(tmp_path / "small.jsonl"))
    unknown = ScriptedCompleter(lambda request: "")
    repo.run(holes, args, unknown, ResultLog(tmp_path / "unknown.jsonl"))
    assert all(r.segments.snippets == [] for r in unknown.requests)
    assert any(r.segments.snippets for r in small.requests)
    for request in small.requests:
        for snippet in request.segments.snippets:
            assert snippet.body not in request.segments.prefix[-200:] + request.segments.suffix[:200]
