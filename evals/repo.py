"""Suite ``repo``: CrossCodeEval-style repository-level completion on any folder or git repository.

Holes come from :mod:`evals.holes` (cross-file identifier lines, single lines, RepoFusion
rest-of-line). Each hole is completed under several context settings:

- ``none``: the file's prefix and suffix only;
- ``in_file``: plus the ``in_file`` retrieval source (other parts of the same file);
- one setting per retrieval source alone (``import``, ``parent_class``, ``sibling``,
  ``similar_name``, ``child_class``, ``definition``, ``bm25``, ``jaccard``; ``dense`` on request);
- ``fused``: the default sources (or ``--sources``) fused as the engine does;
- ``oracle``: the definitions the line needs, from their defining files (cross-file holes only).

Metrics: exact match, edit similarity, identifier exact match and F1 and, for cross-file holes,
``defining_file_recall`` (did the context include a defining file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evals.holes import HOLE_KINDS, Hole, mine_holes
from evals.metrics import edit_similarity, exact_match, identifier_match
from evals.hole_retrieval import Repository, client_snippets
from evals.runner import Completer, ResultLog, run_samples, visible_text_of
from indexer.retrieve.sources import DEFAULT_SOURCES, SOURCES
from indexer.types import Snippet
from repocomplete.types import CompletionRequest, DebugOptions, Segments

NAME = "repo"
DESCRIPTION = "repository-level completion (cross-file, line, rest-of-line holes) under retrieval settings: EM, ES, ID-F1"
PRIMARY_METRIC = "exact_match"
SINGLE_SOURCES = tuple(s for s in SOURCES if s not in ("in_file", "client", "dense"))
SETTINGS = ("none", "in_file", *SINGLE_SOURCES, "fused", "oracle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default=".", type=Path, help="repository or folder (default: .)")
    parser.add_argument("--kinds", nargs="+", default=list(HOLE_KINDS), choices=HOLE_KINDS, help="hole kinds")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=[*SETTINGS, "dense"],
                        help="context settings (default: all but dense)")
    parser.add_argument("--sources", nargs="+", choices=[s for s in SOURCES if s != "client"],
                        help="sources of the 'fused' setting (default: the indexer's defaults)")
    parser.add_argument("--languages", nargs="+", default=["python"], help="languages to mine holes in")
    parser.add_argument("--context-budget", type=int, default=768, help="tokens of retrieved context (default: 768)")
    parser.add_argument("--max-tokens", type=int, default=48, help="generation limit per hole (default: 48)")


def open_repository(args: argparse.Namespace) -> Repository:
    """The repository of this run, indexed into the run folder (opened once per process)."""
    if getattr(args, "_repository", None) is None:
        args._repository = Repository(args.root, Path(args.run_dir) / "index", progress=args.progress)
    return args._repository


def load(args: argparse.Namespace) -> list[Hole]:
    """``--limit`` holes of each kind (seeded sample)."""
    repository = open_repository(args)
    return mine_holes(repository.files, languages=tuple(args.languages), kinds=tuple(args.kinds),
                      limit=args.limit, seed=args.seed)


def setting_sources(setting: str, fused: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Retrieval sources of a setting (None: no retrieval)."""
    if setting == "none" or setting == "oracle":
        return None
    if setting == "fused":
        return tuple(fused or DEFAULT_SOURCES)
    return (setting,)


def context_for(repository: Repository, hole: Hole, setting: str, args: argparse.Namespace,
                visible_text: str = "") -> list[Snippet]:
    """The setting's snippets at ``hole``; retrieval skips what ``visible_text`` (the model's
    window, as the engine computes it) already shows, as the engine's own retrieval does."""
    if setting == "oracle":
        return repository.oracle(hole)
    sources = setting_sources(setting, tuple(args.sources) if args.sources else None)
    return repository.retrieve(hole, sources, args.context_budget, visible_text=visible_text) if sources else []


def request_for(hole: Hole, snippets: list[Snippet], args: argparse.Namespace) -> CompletionRequest:
    """A single-line completion with ``snippets`` as the only repository context."""
    return CompletionRequest(
        segments=Segments(prefix=hole.prefix, suffix=hole.suffix, filepath=hole.path,
                          snippets=client_snippets(snippets)),
        language=hole.language, adapter=args.adapter_name, max_tokens=args.max_tokens, temperature=0.0,
        mode="line", debug_options=DebugOptions(disable_retrieval=True),
    )


def score(prediction: str, hole: Hole, retrieved_files: set[str] | None) -> dict:
    """The metrics of one completion; recall only where a defining file exists and retrieval ran."""
    prediction = prediction.split("\n", 1)[0]  # a single-line target: only the first line counts
    ids = identifier_match(prediction, hole.target, hole.language)
    recall = None
    if hole.gold and retrieved_files is not None:
        recall = float(bool(hole.gold_files & retrieved_files))
    return {"exact_match": exact_match(prediction, hole.target), "edit_similarity": edit_similarity(prediction, hole.target),
            "identifier_em": ids.exact_match, "identifier_f1": ids.f1, "defining_file_recall": recall}


def run(holes: list[Hole], args: argparse.Namespace, completer: Completer | None, log: ResultLog) -> list[dict]:
    assert completer is not None
    repository = open_repository(args)
    settings = list(args.settings)

    def complete_hole(hole: Hole) -> list[dict]:
        records = []
        visible = visible_text_of(completer, hole.prefix, hole.suffix, args.max_tokens, hole.path)
        with repository.editing(hole):
            for setting in settings:
                if setting == "oracle" and not hole.gold:
                    continue
                snippets = context_for(repository, hole, setting, args, visible)
                output = completer.complete(request_for(hole, snippets, args))
                retrieved = None if setting in ("none", "oracle") else {s.filepath for s in snippets}
                records.append({
                    "key": f"{hole.id}:{setting}", "setting": f"{hole.kind}/{setting}", "id": hole.id,
                    "completion": output.text, "target": hole.target, "latency_ms": output.latency_ms,
                    "context_files": sorted({s.filepath for s in snippets}),
                    "metrics": score(output.text, hole, retrieved),
                })
        return records

    return run_samples(holes, lambda h: h.id, complete_hole, log, "repo", show_progress=args.progress)
