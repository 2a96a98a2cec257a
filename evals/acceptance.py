"""Suite ``acceptance``: offline acceptance-rate replay of a repository's git history.

For the most recent ``--commits`` commits of the first-parent history, every block of added
lines (a ``difflib`` insert/replace in a file of a supported language) is replayed as if a
developer typed it, and completions are requested the way the language server would.

Typing and trigger rule (documented, deterministic):

- The developer types the block character by character: ``--char-ms`` apart inside a word,
  and after a word-boundary character (anything but ``[A-Za-z0-9_]``) they pause ``--pause-ms``.
- The editor sends a request on every keystroke; the language server's debounce
  (``--debounce-ms``, default 75 as in ``lsp``) drops a request as soon as another keystroke
  follows within the debounce window. So a request reaches the model exactly when the pause
  after a keystroke is at least the debounce: with the defaults, after every word boundary
  (and when the cursor is placed at the block's start, and right after an acceptance).
- A suggestion is *shown* when it has a non-blank character. It is *accepted* (Tab) when it is
  a prefix of what the developer types next, or equals the rest of the current line (up to
  trailing whitespace); the cursor then jumps over it and the characters are *saved*.

Metrics per setting (summed over blocks): triggers, shown, accepted, CAR = accepted / shown,
characters typed and saved, saved share = saved / typed, and CPR (persistence) = the share of
accepted characters whose line is still present ``--persistence`` commits later (or at HEAD).
The file being typed is indexed as the editor has it (without the block); with a retrieval
setting the rest of the repository is indexed as of that commit (a git worktree in the run
folder), so nothing from the future leaks into the context.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path

from evals.hole_retrieval import client_snippets
from evals.report import ratio_ci
from evals.runner import Completer, ResultLog, model_variants, run_samples, visible_text_of
from indexer.languages import language_for_path
from indexer.retrieve.sources import DEFAULT_SOURCES, SOURCES
from indexer.types import RetrievalQuery
from repocomplete.errors import RepocompleteError
from repocomplete.types import CompletionRequest, DebugOptions, Segments

NAME = "acceptance"
DESCRIPTION = "replay of git history with the LSP's trigger/debounce rules: CAR, characters saved, CPR"
PRIMARY_METRIC = "car"
_WORD = re.compile(r"[A-Za-z0-9_]")
_COUNTS = ("blocks", "triggers", "shown", "accepted", "chars_typed", "chars_saved", "accepted_chars", "persisted_chars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default=".", type=Path, help="git repository (default: .)")
    parser.add_argument("--commits", type=int, default=50, help="most recent first-parent commits to mine (default: 50)")
    parser.add_argument("--settings", nargs="+", default=["none", "fused"],
                        help="context settings: none, fused, or single retrieval sources (default: none fused)")
    parser.add_argument("--languages", nargs="+", default=["python"], help="languages replayed (default: python)")
    parser.add_argument("--max-chars", type=int, default=240, help="characters typed per block at most (default: 240)")
    parser.add_argument("--persistence", type=int, default=5, help="CPR: commits later to look for accepted text (default: 5)")
    parser.add_argument("--debounce-ms", type=float, default=75.0, help="language server debounce (default: 75)")
    parser.add_argument("--char-ms", type=float, default=60.0, help="time between keystrokes inside a word (default: 60)")
    parser.add_argument("--pause-ms", type=float, default=400.0, help="pause after a word boundary (default: 400)")
    parser.add_argument("--max-tokens", type=int, default=48, help="generation limit per request (default: 48)")


@dataclass(frozen=True)
class Block:
    """Lines a commit added to one file: typed between ``before`` and ``after``."""

    id: str
    commit_index: int   # position in the chronological list of mined commits
    sha: str
    path: str
    language: str
    before: str         # file text before the block, ending with a line break (or empty)
    typed: str          # the block's text, no final line break
    after: str          # file text after the block


def _git(root: Path):
    import git  # gitpython: only this suite needs it

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise RepocompleteError(f"not a git repository: {root}") from None


def _text(commit, path: str) -> str | None:
    try:
        return (commit.tree / path).data_stream.read().decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def _commits(repo, count: int) -> list:
    try:
        newest_first = list(repo.iter_commits("HEAD", first_parent=True, max_count=count))
    except ValueError:
        raise RepocompleteError(f"{repo.working_tree_dir} has no commits") from None
    return list(reversed(newest_first))


def has_commit(root: Path, rev: str) -> bool:
    """Whether ``rev`` names a commit of the git repository at ``root`` (RepocompleteError outside git)."""
    repo = _git(root)
    try:
        repo.commit(rev)
    except Exception:  # noqa: BLE001 - gitpython raises several types for a bad revision
        return False
    return True


def lines_changed_since(root: Path, rev: str, files: dict[str, str]) -> dict[str, set[int]]:
    """1-based lines of ``files`` (relpath -> current text) added or changed after commit ``rev``:
    the repository's held-out future when an adapter was trained on the history up to ``rev``."""
    repo = _git(root)
    try:
        past = repo.commit(rev)
    except Exception:  # noqa: BLE001 - gitpython raises several types for a bad revision
        raise RepocompleteError(f"unknown commit {rev!r} in {root}") from None
    prefix = Path(root).resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    changed: dict[str, set[int]] = {}
    for path, text in files.items():
        old = _text(past, path if prefix == "." else f"{prefix}/{path}")
        matcher = difflib.SequenceMatcher(None, old.split("\n") if old else [], text.split("\n"), autojunk=False)
        lines = {j + 1 for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("insert", "replace") for j in range(j1, j2)}
        if lines:
            changed[path] = lines
    return changed


def mine_blocks(repo, commits: list, languages: tuple[str, ...], max_chars: int) -> list[Block]:
    """Every added block of the given commits (merges and root commits are skipped)."""
    blocks = []
    for index, commit in enumerate(commits):
        if len(commit.parents) != 1:
            continue
        parent = commit.parents[0]
        for diff in parent.diff(commit):
            path = diff.b_path
            if diff.change_type not in ("A", "M") or language_for_path(path) not in languages:
                continue
            new = _text(commit, path)
            old = _text(parent, diff.a_path) if diff.change_type == "M" else ""
            if new is None or old is None:
                continue
            old_lines, new_lines = old.split("\n"), new.split("\n")
            matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
            for tag, _, _, j1, j2 in matcher.get_opcodes():
                typed = "\n".join(new_lines[j1:j2])
                if tag not in ("insert", "replace") or len(typed.strip()) < 10:
                    continue
                typed = _clip(typed, max_chars)
                before = "\n".join(new_lines[:j1]) + ("\n" if j1 else "")
                after = "\n".join(new_lines[j2:])
                blocks.append(Block(f"{commit.hexsha[:10]}:{path}:{j1 + 1}", index, commit.hexsha, path,
                                    language_for_path(path), before, typed, after))
    return blocks


def _clip(typed: str, max_chars: int) -> str:
    """At most ``max_chars``, cut at a line end when one exists."""
    if len(typed) <= max_chars:
        return typed
    cut = typed.rfind("\n", 0, max_chars)
    return typed[: cut if cut > 0 else max_chars]


def load(args: argparse.Namespace) -> list[Block]:
    repo = _git(args.root)
    args._commits = _commits(repo, args.commits)
    blocks = mine_blocks(repo, args._commits, tuple(args.languages), args.max_chars)
    if args.limit is not None and len(blocks) > args.limit:
        blocks = [blocks[i] for i in sorted(random.Random(args.seed).sample(range(len(blocks)), args.limit))]
    return blocks


# -- replay ---------------------------------------------------------------------------------

def triggers_after(char: str, args: argparse.Namespace) -> bool:
    """Whether a request survives the debounce after typing ``char`` (see the module docstring)."""
    pause = args.char_ms if _WORD.match(char) else args.pause_ms
    return pause >= args.debounce_ms


def accepted_text(suggestion: str, remaining: str) -> str | None:
    """What Tab inserts when ``suggestion`` matches what comes next; None when it does not."""
    if not suggestion.strip():
        return None
    if remaining.startswith(suggestion):
        return suggestion
    rest_of_line = remaining.split("\n", 1)[0]
    if rest_of_line.strip() and suggestion.rstrip() == rest_of_line.rstrip():
        return rest_of_line
    return None


@dataclass
class Replay:
    """Counts of one block under one setting."""

    triggers: int = 0
    shown: int = 0
    accepted: int = 0
    chars_saved: int = 0
    #: (start, end) offsets into the typed text of each accepted piece.
    pieces: list[tuple[int, int]] | None = None


def replay(block: Block, complete, args: argparse.Namespace) -> Replay:
    """Type ``block`` with the trigger rule; ``complete(prefix, suffix) -> text``."""
    result = Replay(pieces=[])
    suffix = "\n" + block.after
    position, trigger = 0, True  # the cursor was just placed: the editor asks once
    while position < len(block.typed):
        if trigger:
            result.triggers += 1
            suggestion = complete(block.before + block.typed[:position], suffix)
            taken = accepted_text(suggestion, block.typed[position:])
            if suggestion.strip():
                result.shown += 1
            if taken:
                result.accepted += 1
                result.chars_saved += len(taken)
                result.pieces.append((position, position + len(taken)))
                position += len(taken)
                continue  # after Tab the developer reads the result: another request
        char = block.typed[position]
        position += 1
        trigger = triggers_after(char, args)
    return result


def persisted_chars(block: Block, pieces: list[tuple[int, int]], later_text: str | None) -> int:
    """Accepted characters whose lines (stripped) are all still in ``later_text``."""
    if not later_text:
        return 0
    present = {line.strip() for line in later_text.split("\n")}
    line_starts = [0] + [i + 1 for i, c in enumerate(block.typed) if c == "\n"]
    lines = block.typed.split("\n")
    total = 0
    for start, end in pieces:
        first = max(i for i, s in enumerate(line_starts) if s <= start)
        last = max(i for i, s in enumerate(line_starts) if s <= max(start, end - 1))
        if all(lines[i].strip() in present for i in range(first, last + 1) if lines[i].strip()):
            total += end - start
    return total


class _History:
    """A worktree of the repository moved to each replayed commit, and its index (for retrieval)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from indexer.workspace import Workspace

        self.repo = _git(args.root)
        self.path = Path(args.run_dir).resolve() / "worktree"
        if not self.path.exists():
            self.repo.git.worktree("add", "--detach", str(self.path), "HEAD")
        self.worktree = _git(self.path)
        self.workspace = Workspace(self.path, cache_dir=Path(args.run_dir) / "index")
        self.sha: str | None = None

    def at(self, block: Block):
        """The workspace as of ``block``'s commit, with its file as the editor has it."""
        if self.sha != block.sha:
            self.worktree.git.checkout("--detach", "--force", block.sha)
            self.workspace.index()
            self.sha = block.sha
        self.workspace.update(block.path, block.before + "\n" + block.after)
        return self.workspace

    def close(self) -> None:
        self.workspace.close()
        try:
            self.repo.git.worktree("remove", "--force", str(self.path))
        except Exception:  # noqa: BLE001 - a leftover worktree is harmless; `git worktree prune` cleans it
            pass


def _sources(setting: str) -> tuple[str, ...] | None:
    if setting == "none":
        return None
    if setting == "fused":
        return DEFAULT_SOURCES
    if setting not in SOURCES:
        raise RepocompleteError(f"unknown setting {setting!r}; use none, fused or one of: {', '.join(SOURCES)}")
    return (setting,)


def run(blocks: list[Block], args: argparse.Namespace, completer: Completer | None, log: ResultLog) -> list[dict]:
    assert completer is not None
    settings = {setting: _sources(setting) for setting in args.settings}
    history = _History(args) if any(settings.values()) else None
    commits = args._commits

    row_prefix = getattr(args, "row_prefix", "")

    def replay_block(block: Block) -> list[dict]:
        workspace = history.at(block) if history else None
        later = commits[min(block.commit_index + args.persistence, len(commits) - 1)]
        later_text = _text(later, block.path)
        records = []
        for (setting, sources), (suffix_label, adapter) in itertools.product(settings.items(), model_variants(args)):
            def complete(prefix: str, suffix: str, sources=sources, adapter=adapter) -> str:
                snippets = []
                if sources and workspace is not None:
                    visible = visible_text_of(completer, prefix, suffix, args.max_tokens, block.path)
                    snippets = workspace.retrieve(RetrievalQuery(filepath=block.path, prefix=prefix, suffix=suffix,
                                                                 language=block.language, sources=sources,
                                                                 visible_text=visible))
                request = CompletionRequest(
                    segments=Segments(prefix=prefix, suffix=suffix, filepath=block.path,
                                      snippets=client_snippets(snippets)),
                    language=block.language, adapter=adapter, max_tokens=args.max_tokens,
                    temperature=0.0, mode="auto", debug_options=DebugOptions(disable_retrieval=True))
                return completer.complete(request).text

            counts = replay(block, complete, args)
            accepted_chars = sum(end - start for start, end in counts.pieces)
            records.append({
                "key": f"{block.id}:{setting}{suffix_label}", "setting": f"{row_prefix}{setting}{suffix_label}", "id": block.id,
                "pieces": counts.pieces,
                "metrics": {"blocks": 1, "triggers": counts.triggers, "shown": counts.shown,
                            "accepted": counts.accepted, "chars_typed": len(block.typed),
                            "chars_saved": counts.chars_saved, "accepted_chars": accepted_chars,
                            "persisted_chars": persisted_chars(block, counts.pieces, later_text)},
            })
        return records

    try:
        return run_samples(blocks, lambda b: b.id, replay_block, log, "acceptance", show_progress=args.progress)
    finally:
        if history is not None:
            history.close()


def totals_row(records: list[dict]) -> dict:
    """One setting's row: counts summed over its blocks, the rates of the sums (micro-averages),
    and a 95% bootstrap interval (over blocks) of the saved share, characters accepted per typed."""
    totals = {name: sum(r["metrics"].get(name, 0) for r in records) for name in _COUNTS}
    saved = [r["metrics"].get("chars_saved", 0) for r in records]
    typed = [r["metrics"].get("chars_typed", 0) for r in records]
    return {
        "car": totals["accepted"] / totals["shown"] if totals["shown"] else 0.0,
        "saved_share": totals["chars_saved"] / totals["chars_typed"] if totals["chars_typed"] else 0.0,
        "cpr": totals["persisted_chars"] / totals["accepted_chars"] if totals["accepted_chars"] else 0.0,
        **totals,
        "n": totals["blocks"],
        "ci95": {"saved_share": list(ratio_ci(saved, typed))},
    }


def finalize(summary: dict, records: list[dict], args: argparse.Namespace) -> None:
    """Replace per-block means by totals and rates over all blocks (micro-averages)."""
    for setting in list(summary["settings"]):
        summary["settings"][setting] = totals_row([r for r in records if r.get("setting") == setting])
    summary["meta"]["trigger_rule"] = (f"debounce {args.debounce_ms} ms; {args.char_ms} ms between keystrokes in a word, "
                                       f"{args.pause_ms} ms pause after a word boundary")
    summary["meta"]["persistence_commits"] = args.persistence
