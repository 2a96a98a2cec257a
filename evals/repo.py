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

Base vs adapter: with ``--adapter`` every hole is completed by the base model and by the adapter
with the same retrieved context (rows ``kind/setting`` and ``kind/setting+NAME``);
``adapter_vs_base`` gives each pair's exact-match difference with a paired 95% interval.
``--after REV`` keeps only holes on lines added or changed after commit ``REV`` (the held-out
future of an adapter trained on the history up to it; with ``--adapter`` it defaults to the cut-off
recorded in the adapter's metadata); ``--replay-commits N`` adds the offline
acceptance replay (:mod:`evals.acceptance`) of the last N commits, rows ``replay/setting``,
whose ``saved_share`` is characters accepted per character typed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evals.holes import HOLE_KINDS, Hole, mine_holes
from evals.metrics import edit_similarity, exact_match, identifier_match
from evals.hole_retrieval import Repository, client_snippets
from evals import acceptance
from evals.report import bootstrap_ci, ratio_ci
from evals.runner import Completer, ResultLog, model_variants, run_samples, visible_text_of
from indexer.retrieve.sources import DEFAULT_SOURCES, SOURCES
from indexer.types import Snippet
from repocomplete.adapter_metadata import ADAPTER_METADATA, read_adapter_metadata, recorded_cutoffs
from repocomplete.config import parse_adapter
from repocomplete.errors import RepocompleteError
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
    parser.add_argument("--after", metavar="REV", help="held-out future: only holes on lines added or changed "
                        "after commit REV (default with --adapter: the cut-off recorded in the adapter)")
    parser.add_argument("--replay-commits", type=int, default=0, metavar="N",
                        help="also replay the last N commits as typed (acceptance: characters accepted per typed) "
                             "under the none/fused settings chosen (default: 0, no replay)")


def resolve_defaults(args: argparse.Namespace) -> None:
    """With ``--adapter`` and no ``--after``: the held-out future starts at the cut-off commit the
    adapter's training recorded for this repository (said on stderr); an explicit ``--after`` wins."""
    if getattr(args, "after", None) or not getattr(args, "adapter", None):
        return
    name, path = parse_adapter(args.adapter)
    args.after = recorded_cutoff(args.root, name, Path(path))
    print(f"eval repo: held out: lines added or changed after commit {args.after[:12]}, the cut-off recorded in "
          f"adapter {name} (--after REV chooses another)", file=sys.stderr)


def recorded_cutoff(root: Path, name: str, adapter_dir: Path) -> str:
    """The cut-off commit adapter ``name`` (folder ``adapter_dir``) was trained up to in the git
    repository at ``root``: of the cut-offs its metadata records (one per training repository),
    the one that is a commit of ``root``. A one-line error where there is none to choose."""
    hint = "pass --after REV to choose the held-out future"
    if not adapter_dir.is_dir():
        raise RepocompleteError(f"adapter {name}: no folder {adapter_dir} here to read its cut-off from; {hint}")
    metadata = read_adapter_metadata(adapter_dir)
    cutoffs = recorded_cutoffs(metadata or {})
    if not cutoffs:
        why = ("it has no " + ADAPTER_METADATA) if metadata is None else "it was not trained with the time split"
        raise RepocompleteError(f"adapter {name} records no cut-off commit ({why}); {hint}")
    try:
        ours = sorted({c["cutoff"] for c in cutoffs if acceptance.has_commit(root, c["cutoff"])})
    except RepocompleteError as exc:   # not a git repository: no history to find the held-out future in
        raise RepocompleteError(f"{exc}: adapter {name} is evaluated on the lines written after its cut-off "
                                f"{cutoffs[0]['cutoff'][:12]}, which needs the repository's git history") from None
    if len(ours) == 1:
        return ours[0]
    if not ours:
        listed = ", ".join(f"{c['cutoff'][:12]} of {c['repo']}" for c in cutoffs)
        raise RepocompleteError(f"adapter {name}'s cut-off ({listed}) is not a commit of {root}: it was trained on "
                                f"another repository; {hint}")
    raise RepocompleteError(f"adapter {name} records several cut-offs in {root} ({', '.join(c[:12] for c in ours)}); "
                            f"{hint}")


def open_repository(args: argparse.Namespace) -> Repository:
    """The repository of this run, indexed into the run folder (opened once per process)."""
    if getattr(args, "_repository", None) is None:
        args._repository = Repository(args.root, Path(args.run_dir) / "index", progress=args.progress)
    return args._repository


def load(args: argparse.Namespace) -> list[Hole]:
    """``--limit`` holes of each kind (seeded sample), on lines changed after ``--after`` if given;
    the replay's blocks too (``--replay-commits``)."""
    repository = open_repository(args)
    if getattr(args, "replay_commits", 0) < 0:
        raise RepocompleteError("--replay-commits must be 0 or more")
    args._blocks = replay_blocks(args) if getattr(args, "replay_commits", 0) else []
    changed = acceptance.lines_changed_since(args.root, args.after, repository.files) if getattr(args, "after", None) else None
    return mine_holes(repository.files, languages=tuple(args.languages), kinds=tuple(args.kinds),
                      limit=args.limit, seed=args.seed,
                      keep=None if changed is None else (lambda hole: hole.line in changed.get(hole.path, ())))


def replay_args(args: argparse.Namespace) -> argparse.Namespace:
    """The acceptance suite's options for the replay part of a run: its defaults, this run's
    repository, languages, generation limit, adapter and none/fused settings."""
    parser = argparse.ArgumentParser()
    acceptance.add_arguments(parser)
    settings = [s for s in args.settings if s in ("none", "fused")] or ["none"]
    replay = parser.parse_args([str(args.root), "--commits", str(args.replay_commits), "--settings", *settings,
                                "--languages", *args.languages, "--max-tokens", str(args.max_tokens)])
    for name in ("run_dir", "progress", "adapter_name", "seed"):
        setattr(replay, name, getattr(args, name, None))
    replay.limit, replay.row_prefix = args.limit, "replay/"
    return replay


def replay_blocks(args: argparse.Namespace) -> list:
    args._replay = replay_args(args)
    return acceptance.load(args._replay)


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


def request_for(hole: Hole, snippets: list[Snippet], args: argparse.Namespace, adapter: str | None = None) -> CompletionRequest:
    """A single-line completion with ``snippets`` as the only repository context, by ``adapter``
    (None: the base model)."""
    return CompletionRequest(
        segments=Segments(prefix=hole.prefix, suffix=hole.suffix, filepath=hole.path,
                          snippets=client_snippets(snippets)),
        language=hole.language, adapter=adapter, max_tokens=args.max_tokens, temperature=0.0,
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
                retrieved = None if setting in ("none", "oracle") else {s.filepath for s in snippets}
                for suffix, adapter in model_variants(args):  # the same context for the base and the adapter
                    output = completer.complete(request_for(hole, snippets, args, adapter))
                    records.append({
                        "key": f"{hole.id}:{setting}{suffix}", "setting": f"{hole.kind}/{setting}{suffix}", "id": hole.id,
                        "completion": output.text, "target": hole.target, "latency_ms": output.latency_ms,
                        "context_files": sorted({s.filepath for s in snippets}),
                        "metrics": score(output.text, hole, retrieved),
                    })
        return records

    records = run_samples(holes, lambda h: h.id, complete_hole, log, "repo", show_progress=args.progress)
    blocks = getattr(args, "_blocks", [])
    return records + (acceptance.run(blocks, args._replay, completer, log) if blocks else [])


def finalize(summary: dict, records: list[dict], args: argparse.Namespace) -> None:
    """Replay rows as totals (characters accepted per character typed over all blocks), and with
    an adapter the paired base-vs-adapter differences."""
    for setting in [s for s in summary["settings"] if s.startswith("replay/")]:
        summary["settings"][setting] = acceptance.totals_row([r for r in records if r.get("setting") == setting])
    if getattr(args, "adapter_name", None):
        summary["adapter_vs_base"] = adapter_vs_base(records, args.adapter_name)
    if getattr(args, "after", None):
        summary["meta"]["held_out"] = f"lines added or changed after {args.after}"


def adapter_vs_base(records: list[dict], adapter: str) -> dict[str, dict]:
    """Per base row (keyed ``"setting metric"``): the metric (exact match; characters accepted per
    typed for replay rows) of the base and of the adapter on the same samples, their difference
    with a paired 95% bootstrap interval, and the relative change."""
    by_key = {r["key"]: r for r in records}
    suffix = f"+{adapter}"
    pairs: dict[str, list[tuple[dict, dict]]] = {}
    for key, record in by_key.items():
        if not key.endswith(suffix) and (other := by_key.get(key + suffix)) is not None:
            pairs.setdefault(record["setting"], []).append((record["metrics"], other["metrics"]))
    table = {}
    for setting, pairs_of in pairs.items():
        replay = setting.startswith("replay/")
        metric = "saved_share" if replay else PRIMARY_METRIC
        if replay:
            typed = [b["chars_typed"] for b, _ in pairs_of]
            base = sum(b["chars_saved"] for b, _ in pairs_of) / (sum(typed) or 1)
            ours = sum(a["chars_saved"] for _, a in pairs_of) / (sum(typed) or 1)
            interval = ratio_ci([a["chars_saved"] - b["chars_saved"] for b, a in pairs_of], typed)
        else:
            base = sum(b[metric] for b, _ in pairs_of) / len(pairs_of)
            ours = sum(a[metric] for _, a in pairs_of) / len(pairs_of)
            interval = bootstrap_ci([a[metric] - b[metric] for b, a in pairs_of])
        table[f"{setting} {metric}"] = {
            "base": base, "adapter": ours, "difference": ours - base,
            "relative": (ours - base) / base if base else None,  # None: no base to compare with
            "n": len(pairs_of), "ci95": {"difference": list(interval)}}
    return table
