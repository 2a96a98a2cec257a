"""Suite ``coderag``: CodeRAG-Bench-style retrieval and retrieval-augmented generation.

Two task families:

- ``humaneval``: the query is a HumanEval prompt; the corpus is the standard library's
  documentation (:mod:`evals.stdlib_docs`), indexed by our indexer; the gold documents are what
  the canonical solution calls. Generation: pass@1 of the function body without context
  (``generation:none``), with the top retrieved documents (``generation:retrieved``) and with
  the gold documents (``generation:gold``, the upper bound of retrieval).
- ``repo`` (with ``--repo PATH``): cross-file holes of that repository (:mod:`evals.holes`);
  the gold document is the defining chunk (a retrieved snippet of the defining file whose lines
  overlap the definition).

Retrieval is scored per retriever (each source alone and ``fused``) with NDCG@10 and
recall@1/5/10, over the ranking before packing.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from evals.holes import Hole, mine_holes
from evals.humaneval import Problem, load_problems, python_program, sample
from evals.metrics import ndcg_at_k, recall_at_k
from evals.hole_retrieval import Repository, client_snippets
from evals.runner import Completer, ResultLog, run_samples
from evals.sandbox import SandboxLimits, checked, run_python
from evals.stdlib_docs import doc_id_of, gold_documents, write_corpus
from indexer.retrieve.sources import DEFAULT_SOURCES
from indexer.types import Snippet
from repocomplete.types import CompletionRequest, DebugOptions, Segments

NAME = "coderag"
DESCRIPTION = "retrieval NDCG@10 / recall@k against gold documents, and pass@1 with and without retrieved docs"
PRIMARY_METRIC = "ndcg@10"
RETRIEVERS = ("bm25", "jaccard", "definition", "fused")
GENERATION = ("none", "retrieved", "gold")
_K = (1, 5, 10)
_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
#: Retrieval over a documentation corpus: lexical sources only (there are no imports or classes to follow).
_DOC_SOURCES = ("bm25", "jaccard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+", default=["humaneval", "repo"], choices=["humaneval", "repo"],
                        help="task families (repo needs --repo)")
    parser.add_argument("--repo", type=Path, help="repository whose cross-file holes are the repo tasks")
    parser.add_argument("--retrievers", nargs="+", default=list(RETRIEVERS), choices=[*RETRIEVERS, "dense"],
                        help="rankings to score (default: %(default)s)")
    parser.add_argument("--generation", nargs="+", default=list(GENERATION), choices=GENERATION,
                        help="HumanEval generation settings (default: %(default)s)")
    parser.add_argument("--retrieval-only", action="store_true", help="score retrieval only; no model is loaded")
    parser.add_argument("--top-docs", type=int, default=3, help="documents put in the prompt (default: 3)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per program (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generation limit per problem (default: 256)")


def needs_model(args: argparse.Namespace) -> bool:
    return not args.retrieval_only and "humaneval" in args.tasks and bool(args.generation)


def model_free_label(args: argparse.Namespace) -> str:
    return "retrieval-only"


@dataclass(frozen=True)
class DocTask:
    """A HumanEval problem as a retrieval query over the documentation corpus."""

    problem: Problem
    gold: frozenset[str]

    @property
    def id(self) -> str:
        return self.problem.task_id

    def as_hole(self) -> Hole:
        """The prompt as a cursor at the start of the function body (the retrieval query)."""
        return Hole(self.id, "doc", "humaneval.py", "python", self.problem.prompt.count("\n") + 1,
                    self.problem.prompt, "", self.problem.canonical_solution)


def _state(args: argparse.Namespace) -> dict:
    """Indexes opened once per process: the documentation corpus and the repository."""
    if getattr(args, "_coderag", None) is None:
        state: dict = {}
        run_dir = Path(args.run_dir)
        if "humaneval" in args.tasks:
            corpus_dir = run_dir / "stdlib-docs"
            state["corpus"] = write_corpus(corpus_dir)
            state["docs"] = Repository(corpus_dir, run_dir / "index", progress=args.progress)
        if "repo" in args.tasks and args.repo is not None:
            state["repo"] = Repository(args.repo, run_dir / "index", progress=args.progress)
        args._coderag = state
    return args._coderag


def load(args: argparse.Namespace) -> list[DocTask | Hole]:
    state = _state(args)
    tasks: list[DocTask | Hole] = []
    if "docs" in state:
        doc_tasks = [DocTask(p, frozenset(gold_documents(p.prompt + p.canonical_solution, state["corpus"])))
                     for p in load_problems()]
        tasks += sample(doc_tasks, args.limit, seed=args.seed)
    if "repo" in state:
        tasks += mine_holes(state["repo"].files, kinds=("cross_file",), limit=args.limit, seed=args.seed)
    return tasks


def ranking(repository: Repository, hole: Hole, retriever: str, sources: tuple[str, ...]) -> list[Snippet]:
    """One retriever's ranking: a single source's own list, or the fused list (unpacked budget)."""
    if retriever == "fused":
        return repository.retrieve(hole, sources, budget_tokens=1_000_000, max_snippets=10)
    return repository.rankings(hole, (retriever,), max_snippets=10).get(retriever, [])


def retrieval_metrics(ranked_ids: list[str], gold: set[str]) -> dict:
    metrics = {"ndcg@10": ndcg_at_k(ranked_ids, gold, 10)}
    metrics.update({f"recall@{k}": recall_at_k(ranked_ids, gold, k) for k in _K})
    return metrics


def _chunk_ids(snippets: list[Snippet], hole: Hole) -> list[str]:
    """Snippet -> document id; a snippet overlapping a gold definition *is* that gold document."""
    ids = []
    for s in snippets:
        gold = next((g for g in hole.gold if g.path == s.filepath and s.start_line <= g.end_line
                     and s.end_line >= g.start_line), None)
        ids.append(f"gold:{gold.path}:{gold.start_line}" if gold else f"{s.filepath}:{s.start_line}-{s.end_line}")
    return ids


def _gold_chunk_ids(hole: Hole) -> set[str]:
    return {f"gold:{g.path}:{g.start_line}" for g in hole.gold}


def run(tasks: list, args: argparse.Namespace, completer: Completer | None, log: ResultLog) -> list[dict]:
    state = _state(args)
    limits = SandboxLimits(timeout_s=args.timeout)
    retrievers = [r for r in args.retrievers]

    def repo_task(hole: Hole) -> list[dict]:
        repository: Repository = state["repo"]
        records = []
        with repository.editing(hole):
            for retriever in retrievers:
                ranked = ranking(repository, hole, retriever, DEFAULT_SOURCES)
                records.append({"key": f"{hole.id}:{retriever}", "setting": f"repo/retrieval:{retriever}", "id": hole.id,
                                "metrics": retrieval_metrics(_chunk_ids(ranked, hole), _gold_chunk_ids(hole))})
        return records

    def doc_task(task: DocTask) -> list[dict]:
        docs: Repository = state["docs"]
        hole = task.as_hole()
        records = []
        fused: list[Snippet] = []
        for retriever in retrievers:
            if retriever == "definition":
                continue  # the corpus is documentation: there is no symbol use to resolve
            ranked = ranking(docs, hole, retriever, _DOC_SOURCES)
            if retriever == "fused":
                fused = ranked
            if task.gold:
                ids = [doc_id_of(s.filepath) for s in ranked]
                records.append({"key": f"{task.id}:{retriever}", "setting": f"humaneval/retrieval:{retriever}",
                                "id": task.id, "metrics": retrieval_metrics(ids, set(task.gold))})
        if completer is not None and not args.retrieval_only:
            if not fused and "retrieved" in args.generation:
                fused = ranking(docs, hole, "fused", _DOC_SOURCES)
            contexts = {"none": [], "retrieved": fused[: args.top_docs],
                        "gold": [s for s in docs.workspace.definitions_of([g.rsplit(".", 1)[-1] for g in task.gold])
                                 if doc_id_of(s.filepath) in task.gold][: args.top_docs]}
            for setting in args.generation:
                records.append(_generate(task, setting, contexts[setting], completer, args, limits))
        return records

    def work(task: DocTask | Hole) -> list[dict]:
        return doc_task(task) if isinstance(task, DocTask) else repo_task(task)

    return run_samples(tasks, lambda t: t.id, work, log, "coderag", show_progress=args.progress)


def _generate(task: DocTask, setting: str, snippets: list[Snippet], completer: Completer,
              args: argparse.Namespace, limits: SandboxLimits) -> dict:
    """Complete the function body with ``snippets`` as context; pass@1 in the sandbox."""
    problem = task.problem
    request = CompletionRequest(
        segments=Segments(prefix=problem.prompt, suffix="", filepath="humaneval.py", snippets=client_snippets(snippets)),
        language="python", adapter=args.adapter_name, max_tokens=args.max_tokens, temperature=0.0, mode="multiline",
        stop=list(_STOPS), debug_options=DebugOptions(disable_retrieval=True),
    )
    output = completer.complete(request)
    result = checked(run_python(python_program(problem.prompt + output.text, problem.test, problem.entry_point), limits))
    return {"key": f"{task.id}:generation:{setting}", "setting": f"humaneval/generation:{setting}", "id": task.id,
            "completion": output.text, "status": result.status, "latency_ms": output.latency_ms,
            "context_docs": [doc_id_of(s.filepath) for s in snippets], "metrics": {"pass@1": float(result.passed)}}
