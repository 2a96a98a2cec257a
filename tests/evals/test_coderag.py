"""The coderag suite: gold documents, retrieval metrics on known rankings, generation with context."""

from __future__ import annotations

from evals import coderag
from evals.holes import Gold, Hole
from evals.humaneval import load_problems
from evals.report import summarize
from evals.runner import ResultLog
from evals.stdlib_docs import build_corpus, doc_id_of, doc_path, gold_documents
from indexer.types import Snippet
from tests.evals.conftest import ScriptedCompleter, cli_summary
from tests.evals.test_repo import JSON_PACKAGE


def test_gold_documents_resolve_calls_statically():
    corpus = build_corpus()
    code = "import math\nfrom heapq import nlargest\ndef f(x, s):\n    return math.gcd(x, 2), sorted(s), len(s), s.split(','), nlargest(2, s)\n"
    assert gold_documents(code, corpus) == {"math.gcd", "builtins.sorted", "str.split", "heapq.nlargest"}
    assert doc_id_of(doc_path("math.gcd")) == "math.gcd"
    assert "Greatest Common Divisor" in corpus["math.gcd"]


def test_retrieval_metrics_on_a_known_ranking():
    metrics = coderag.retrieval_metrics(["a", "gold", "b"], {"gold"})
    assert metrics["recall@1"] == 0.0 and metrics["recall@5"] == 1.0
    assert round(metrics["ndcg@10"], 4) == 0.6309  # 1 / log2(3)


def test_snippets_overlapping_the_definition_count_as_the_gold_chunk():
    hole = Hole("h", "cross_file", "a.py", "python", 3, "", "", "x", (Gold("f", "b.py", 10, 20),))
    ranked = [Snippet("b.py", "", "bm25", start_line=1, end_line=9), Snippet("b.py", "", "bm25", start_line=15, end_line=24)]
    ids = coderag._chunk_ids(ranked, hole)
    assert ids[1] == "gold:b.py:10" and ids[0] != ids[1]
    assert coderag.retrieval_metrics(ids, coderag._gold_chunk_ids(hole))["recall@1"] == 0.0


def test_canonical_solutions_pass_with_every_context_and_wrong_ones_fail(make_args, tmp_path):
    args = make_args(tasks=["humaneval"], repo=None, retrievers=["bm25", "fused"], generation=["none", "retrieved", "gold"],
                     retrieval_only=False, top_docs=3, timeout=10.0, limit=None, run_dir=tmp_path, max_tokens=256)
    tasks = [t for t in coderag.load(args) if t.gold][:3]
    problems = {p.prompt: p for p in load_problems()}
    right = ScriptedCompleter(lambda request: problems[request.segments.prefix].canonical_solution)
    table = summarize(coderag.run(tasks, args, right, ResultLog(tmp_path / "gold.jsonl")))
    for setting in ("none", "retrieved", "gold"):
        assert table[f"humaneval/generation:{setting}"]["pass@1"] == 1.0
    assert 0.0 <= table["humaneval/retrieval:fused"]["ndcg@10"] <= 1.0
    with_context = [r for r in right.requests if r.segments.snippets]
    assert with_context and all(len(r.segments.snippets) <= 3 for r in with_context)
    assert all(not r.segments.snippets for r in right.requests[0::3])  # the "none" setting comes first

    wrong = ScriptedCompleter(lambda request: "    return None\n")
    table = summarize(coderag.run(tasks, args, wrong, ResultLog(tmp_path / "wrong.jsonl")))
    assert all(table[f"humaneval/generation:{s}"]["pass@1"] == 0.0 for s in ("none", "retrieved", "gold"))


def test_repo_retrieval_only_needs_no_model(tmp_path):
    summary = cli_summary("coderag", "--tasks", "repo", "--repo", str(JSON_PACKAGE), "--retrieval-only",
                          "--limit", "4", "--out", str(tmp_path / "run"))
    assert summary["label"] == "retrieval-only"
    rows = summary["settings"]
    assert set(rows) == {f"repo/retrieval:{r}" for r in coderag.RETRIEVERS}
    # The defining chunk of a cross-file name is found by the fused ranking within ten results.
    assert rows["repo/retrieval:fused"]["recall@10"] > 0
    assert all(row["recall@1"] <= row["recall@5"] <= row["recall@10"] for row in rows.values())
