"""Repository FIM datasets: samples formatted exactly as the server formats its prompts.

``build_dataset`` turns one or more repositories into JSONL shards plus ``manifest.json``:

* spans come from :mod:`indexer.fim_data` (random rest-of-line / line / block / node spans and
  tree-sitter curriculum patterns), PSM and SPM orders mixed;
* repository context comes from the serving code itself: :meth:`Workspace.retrieve` on a
  private index of the repository, packed by :func:`repocomplete.prompt.assemble_prompt` and
  rendered by the target model's :class:`~repocomplete.fim.FimTemplate`, so a training prompt
  is byte-for-byte what the server would send for the same cursor;
* the split is by time (:func:`time_split`, the default): training samples come from the
  repository as it was at a cut-off commit (files, and the index their context is retrieved
  from, both taken from that commit), held-out samples complete lines written after it, so
  nothing written after the cut-off reaches training. Without usable history (no git, a single
  commit) the split is by file (:func:`split_files`): held-out files leave the index before any
  training sample is retrieved;
* secrets are redacted, generated and vendored files are skipped (the walker's rules).

The artefact is read-only input for :mod:`training.finetune` (nanoGPT style: prepare once,
train many times), and reusable for pretraining on repository-context samples.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from indexer.fim_data import FimSpan, SpanConfig, select_spans
from indexer.types import RetrievalQuery, Snippet
from repocomplete.errors import RepocompleteError

MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
TokenCounter = Callable[[str], int]


class TrainingDataError(RepocompleteError):
    """A repository that yields no usable training data (no supported files, no samples)."""

    error_type = "training_data_error"


@dataclass
class DataConfig:
    """How a dataset is built; stored verbatim in the manifest."""

    #: FIM template of the target model (``repocomplete.fim`` name); None = detect from the tokenizer.
    template: str | None = "repocomplete"
    seed: int = 0
    spans: SpanConfig = field(default_factory=SpanConfig)
    #: Share of samples rendered suffix-prefix-middle.
    spm_share: float = 0.5
    #: Token budget of a whole prompt (context + prefix + suffix), as at serving time.
    prompt_tokens: int = 768
    #: Samples whose middle is longer than this (in tokens) are dropped.
    max_middle_tokens: int = 128
    #: Budget handed to retrieval (``RetrievalQuery.budget_tokens``).
    retrieval_tokens: int = 384
    #: Retrieval sources; None = the workspace's defaults (what serving uses).
    sources: tuple[str, ...] | None = None
    #: Off: prompts carry no repository context (an ablation; serving has it on).
    context: bool = True
    #: "time": train on the repository at a cut-off commit, hold out the lines changed after it;
    #: "files": hold out whole files (those the latest commits touched, else a seeded share).
    split: str = "time"
    #: The cut-off is the parent of the oldest of this many most recent commits that touch code.
    holdout_commits: int = 1
    #: ...but never more than this fraction of a repository's files.
    holdout_max_fraction: float = 0.25
    #: Files per repository (sorted order), None = all; keeps quick runs quick.
    max_files: int | None = None
    shard_samples: int = 5000


@dataclass
class FileSplit:
    """Which files of one repository train and which are held out, and why."""

    train: list[str]
    heldout: list[str]
    method: str                 # "git-time" | "file-hash"
    commits: list[str] = field(default_factory=list)


# --- split ----------------------------------------------------------------------------------


def _hash_order(paths: Iterable[str], seed: int) -> list[str]:
    return sorted(paths, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())


def split_files(root: str | os.PathLike[str], relpaths: Iterable[str], *, holdout_commits: int = 1,
                max_fraction: float = 0.25, seed: int = 0) -> FileSplit:
    """Hold out the files changed in the ``holdout_commits`` most recent commits touching them.

    At most ``max_fraction`` of the files (and never all of them) are held out; when the
    latest commits touch more, a seeded subset of them is. Outside git, or when the history
    names none of the files, a seeded ``max_fraction`` of the files is held out instead.
    """
    files = sorted(set(relpaths))
    cap = min(max(1, int(len(files) * max_fraction)), len(files) - 1)
    if cap <= 0:
        return FileSplit(train=files, heldout=[], method="none")
    changed, commits = _recently_changed(Path(root), set(files), holdout_commits)
    if changed:
        heldout = set(_hash_order(changed, seed)[:cap])
        method = "git-time"
    else:
        heldout, method, commits = set(_hash_order(files, seed)[:cap]), "file-hash", []
    return FileSplit(train=[f for f in files if f not in heldout], heldout=sorted(heldout),
                     method=method, commits=commits)


@dataclass
class TimeSplit:
    """Train on the repository as it was at ``cutoff``; hold out the lines written after it."""

    cutoff: str
    #: The commits after the cut-off that touch code, newest first.
    commits: list[str]
    #: File (relative path, as on disk now) -> 1-based numbers of its lines added or changed
    #: since the cut-off (committed or not).
    changed: dict[str, set[int]]


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def time_split(root: str | os.PathLike[str], relpaths: Iterable[str], *, holdout_commits: int = 1) -> TimeSplit | None:
    """The cut-off before the ``holdout_commits`` most recent commits touching ``relpaths``, and
    the lines of ``relpaths`` changed since; None without usable history (not a repository, no
    commit before them, or no line of a supported file changed)."""
    files = set(relpaths)
    _, commits = _recently_changed(Path(root), files, holdout_commits)
    if not commits:
        return None
    import git

    repo = git.Repo(root, search_parent_directories=True)
    oldest = repo.commit(commits[-1])
    if not oldest.parents:
        return None
    cutoff = oldest.parents[0].hexsha
    base = _base_in_repo(repo, Path(root))
    diff = repo.git.diff("-U0", "--no-color", "--no-ext-diff", "--no-renames", cutoff, "--", base or ".")
    changed: dict[str, set[int]] = {}
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:]
            current = name[2 + len(base):] if name.startswith("b/" + base) else None
            current = current if current in files else None
        elif current is not None and (match := _HUNK.match(line)):
            start, count = int(match.group(1)), int(match.group(2) or 1)
            changed.setdefault(current, set()).update(range(start, start + count))
    changed = {path: lines for path, lines in changed.items() if lines}
    return TimeSplit(cutoff=cutoff, commits=commits, changed=changed) if changed else None


def snapshot(root: str | os.PathLike[str], commit: str, dest: Path) -> Path:
    """The folder ``root`` as it was at ``commit``, extracted under ``dest``; returns its path."""
    import io
    import tarfile

    import git

    repo = git.Repo(root, search_parent_directories=True)
    base = _base_in_repo(repo, Path(root))
    buffer = io.BytesIO()
    repo.archive(buffer, commit, path=base.rstrip("/") or ".", format="tar")
    buffer.seek(0)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(dest, filter="data")
    return dest / base if base else dest


def _base_in_repo(repo, root: Path) -> str:
    """``root`` relative to the repository's top, as a prefix ("" or "sub/dir/")."""
    base = root.resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    return "" if base == "." else base + "/"


def _recently_changed(root: Path, candidates: set[str], n_commits: int) -> tuple[list[str], list[str]]:
    try:
        import git

        repo = git.Repo(root, search_parent_directories=True)
        if not repo.head.is_valid():
            return [], []
    except Exception:  # noqa: BLE001 - not a repository (or no git): the file split applies
        return [], []
    base = _base_in_repo(repo, root)
    changed: list[str] = []
    commits: list[str] = []
    for commit in repo.iter_commits(max_count=200):
        names = repo.git.diff_tree("--no-commit-id", "--name-only", "-r", "--root", commit.hexsha).splitlines()
        touched = [n[len(base):] for n in names if n.startswith(base) and n[len(base):] in candidates]
        if not touched:
            continue
        changed += [t for t in touched if t not in changed]
        commits.append(commit.hexsha)
        if len(commits) >= n_commits:
            break
    return changed, commits


def source_commit(root: str | os.PathLike[str]) -> dict:
    """HEAD commit and dirtiness of the repository holding ``root`` (empty outside git)."""
    try:
        import git

        repo = git.Repo(root, search_parent_directories=True)
        return {"commit": repo.head.commit.hexsha, "dirty": repo.is_dirty(untracked_files=True)}
    except Exception:  # noqa: BLE001 - not a git repository
        return {"commit": None, "dirty": None}


# --- token counting -------------------------------------------------------------------------


def token_counter(tokenizer=None) -> TokenCounter:
    """``len(tokens)`` with the model's tokenizer (as the server counts), or a ~4-characters estimate.

    Memoised: prompt packing counts the same prefix and suffix many times over.
    """
    if tokenizer is None:
        return lambda text: (len(text) + 3) // 4
    backend = getattr(tokenizer, "backend_tokenizer", None)

    @lru_cache(maxsize=8192)
    def count(text: str) -> int:
        if backend is not None:   # the Rust tokenizer directly, as the transformers backend does
            return len(backend.encode(text, add_special_tokens=False).ids)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


# --- sample building ------------------------------------------------------------------------


@dataclass
class _SourceFile:
    relpath: str
    language: str | None
    text: str


def _supported_files(root: Path, config: DataConfig) -> list[_SourceFile]:
    from indexer.errors import IndexerError
    from indexer.secrets import redact
    from indexer.walk import read_text, walk

    files = []
    for entry in walk(root):
        if entry.skipped is not None or entry.language is None:
            continue
        try:
            text = read_text(entry)
        except IndexerError:
            continue
        if text.strip():
            files.append(_SourceFile(entry.relpath, entry.language, redact(text)))
        if config.max_files is not None and len(files) >= config.max_files:
            break
    return files


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _leaks_hole(snippet: Snippet, relpath: str, first: int, last: int, middle: str) -> bool:
    """A snippet of the sample's own file that shows the lines being completed."""
    if snippet.filepath != relpath:
        return False
    if snippet.start_line and snippet.end_line:
        return snippet.start_line <= last and snippet.end_line >= first
    return bool(middle.strip()) and middle.strip() in snippet.body


class _SampleWriter:
    """JSONL shards per split, plus counts and token statistics for the manifest."""

    def __init__(self, directory: Path, shard_samples: int) -> None:
        self.directory, self.shard_samples = directory, shard_samples
        self.counts = {split: Counter() for split in SPLITS}
        self.tokens: dict[str, dict[str, list[int]]] = {s: {"prompt": [], "middle": []} for s in SPLITS}
        self._handles: dict[str, tuple[int, object]] = {}
        self.shards: dict[str, list[str]] = {s: [] for s in SPLITS}

    def write(self, sample: dict) -> None:
        split = sample["split"]
        count = self.counts[split]
        if count["total"] % self.shard_samples == 0:
            self._rotate(split, count["total"] // self.shard_samples)
        self._handles[split][1].write(json.dumps(sample, ensure_ascii=False) + "\n")
        count["total"] += 1
        count[f"kind:{sample['kind']}"] += 1
        count[f"order:{sample['order']}"] += 1
        count[f"language:{sample['language']}"] += 1
        if sample["pattern"]:
            count[f"pattern:{sample['pattern']}"] += 1
        self.tokens[split]["prompt"].append(sample["prompt_tokens"])
        self.tokens[split]["middle"].append(sample["middle_tokens"])

    def _rotate(self, split: str, index: int) -> None:
        if split in self._handles:
            self._handles[split][1].close()
        name = f"{split}-{index:05d}.jsonl"
        self.shards[split].append(name)
        self._handles[split] = (index, open(self.directory / name, "w", encoding="utf-8"))

    def close(self) -> None:
        for _, handle in self._handles.values():
            handle.close()

    def summary(self) -> tuple[dict, dict]:
        counts = {}
        for split, count in self.counts.items():
            grouped: dict = {"total": count["total"], "by_kind": {}, "by_pattern": {}, "by_order": {}, "by_language": {}}
            for key, value in sorted(count.items()):
                if ":" in key:
                    group, _, name = key.partition(":")
                    grouped[f"by_{group}"][name] = value
            counts[split] = grouped
        tokens = {split: {part: _stats(values) for part, values in parts.items()} for split, parts in self.tokens.items()}
        return counts, tokens


def _stats(values: list[int]) -> dict:
    if not values:
        return {"count": 0, "total": 0}
    ordered = sorted(values)
    return {
        "count": len(values), "total": sum(values), "mean": round(statistics.fmean(values), 2),
        "p50": ordered[len(ordered) // 2], "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


class _RepositorySamples:
    """Builds the samples of one repository against a private index of it."""

    def __init__(self, root: Path, name: str, config: DataConfig, template, count: TokenCounter,
                 index_dir: Path) -> None:
        self.root, self.name, self.config, self.template, self.count = root, name, config, template, count
        self.index_dir = index_dir
        self.skipped: Counter = Counter()
        self.context_dropped: Counter = Counter()

    def samples(self, files: list[_SourceFile], split: FileSplit) -> Iterator[dict]:
        workspace = self._workspace()
        try:
            by_path = {f.relpath: f for f in files}
            # Held-out samples first, against the full index; then the held-out files leave the
            # index for good, before a single training context is retrieved.
            for relpath in split.heldout:
                yield from self._file_samples(workspace, by_path[relpath], "heldout", set())
            if workspace is not None:
                for relpath in split.heldout:
                    workspace.remove(relpath)
            banned = set(split.heldout)
            for relpath in split.train:
                yield from self._file_samples(workspace, by_path[relpath], "train", banned)
        finally:
            if workspace is not None:
                workspace.close()

    def time_samples(self, heldout: list[_SourceFile], train: list[_SourceFile], split: TimeSplit,
                     past_root: Path) -> Iterator[dict]:
        """Held-out samples complete lines changed since the cut-off, with context from today's
        repository (what serving sees); training samples come from the files as they were at
        the cut-off (``past_root``), with context from an index of that past alone."""
        for root, sources, name in ((self.root, heldout, "heldout"), (past_root, train, "train")):
            workspace = self._workspace(root, self.index_dir / name)
            try:
                for source in sources:
                    lines = split.changed[source.relpath] if name == "heldout" else None
                    yield from self._file_samples(workspace, source, name, set(), lines=lines)
            finally:
                if workspace is not None:
                    workspace.close()

    def _workspace(self, root: Path | None = None, index_dir: Path | None = None):
        if not self.config.context:
            return None
        from indexer.config import IndexConfig
        from indexer.workspace import Workspace

        # A private index: removing held-out files must never touch the user's serving index.
        index_dir = index_dir or self.index_dir
        workspace = Workspace(root or self.root, cache_dir=index_dir, config=IndexConfig(cache_dir=index_dir))
        workspace.index()
        return workspace

    def _file_samples(self, workspace, source: _SourceFile, split: str, banned: set[str],
                      lines: set[int] | None = None) -> Iterator[dict]:
        """The file's samples; with ``lines``, only spans whose every line is one of them (drawn
        from a pool large enough that a few changed lines in a long file still get theirs)."""
        config = self.config
        spans_config = config.spans
        if lines is not None:
            share = len(lines) / max(1, source.text.count("\n") + 1)
            pool = min(400, max(spans_config.samples_per_file, math.ceil(spans_config.samples_per_file / share * 2)))
            spans_config = replace(spans_config, samples_per_file=pool)
        spans = select_spans(source.text, source.language, seed=config.seed, key=f"{self.name}/{source.relpath}",
                             config=spans_config)
        if lines is not None:
            spans = [s for s in spans if set(range(_line_of(source.text, s.start),
                                                   _line_of(source.text, max(s.start, s.end - 1)) + 1)) <= lines]
            spans = spans[: config.spans.samples_per_file]
        rng = random.Random(f"{config.seed}:order:{self.name}/{source.relpath}")
        for span in spans:
            order = "spm" if rng.random() < config.spm_share else "psm"
            sample = self._sample(workspace, source, span, split, order, banned)
            if sample is not None:
                yield sample

    def _context(self, workspace, source: _SourceFile, span: FimSpan, prefix: str, suffix: str,
                 middle: str, banned: set[str]) -> list[Snippet]:
        if workspace is None:
            return []
        from repocomplete.prompt import window_text

        # Exactly the engine's query (repocomplete.engine): same budget, same visible window.
        visible = window_text(self.template, prefix, suffix, count_tokens=self.count,
                              budget_tokens=self.config.prompt_tokens, filepath=source.relpath, repo_name=self.name)
        query = RetrievalQuery(filepath=source.relpath, prefix=prefix, suffix=suffix, language=source.language,
                               budget_tokens=self.config.retrieval_tokens, sources=self.config.sources,
                               count_tokens=self.count, visible_text=visible)
        first, last = _line_of(source.text, span.start), _line_of(source.text, max(span.start, span.end - 1))
        kept = []
        for snippet in workspace.retrieve(query):
            if snippet.filepath in banned:
                self.context_dropped["heldout_file"] += 1
            elif _leaks_hole(snippet, source.relpath, first, last, middle):
                self.context_dropped["shows_the_hole"] += 1
            else:
                kept.append(snippet)
        return kept

    def _sample(self, workspace, source: _SourceFile, span: FimSpan, split: str, order: str,
                banned: set[str]) -> dict | None:
        from repocomplete.prompt import assemble_prompt

        prefix, middle, suffix = span.split(source.text)
        middle = self.template.neutralize(middle)
        middle_tokens = self.count(middle)
        if middle_tokens > self.config.max_middle_tokens:
            self.skipped["middle_too_long"] += 1
            return None
        snippets = self._context(workspace, source, span, prefix, suffix, middle, banned)
        assembled = assemble_prompt(self.template, prefix=prefix, suffix=suffix, snippets=snippets,
                                    count_tokens=self.count, budget_tokens=self.config.prompt_tokens,
                                    filepath=source.relpath, repo_name=self.name)
        prompt = assembled.text
        if order == "spm":
            prompt = self.template.render(assembled.prefix, assembled.suffix, snippets=assembled.snippets,
                                          filepath=source.relpath, repo_name=self.name, order="spm")
        return {
            "id": f"{self.name}/{source.relpath}:{span.start}-{span.end}:{order}",
            "repo": self.name, "filepath": source.relpath, "language": source.language, "split": split,
            "kind": span.kind, "pattern": span.pattern, "order": order,
            "line": _line_of(source.text, span.start),
            "prompt": prompt, "middle": middle,
            "prompt_tokens": self.count(prompt), "middle_tokens": middle_tokens,
            "context": [{"filepath": s.filepath, "source": s.source, "start_line": s.start_line,
                         "end_line": s.end_line} for s in assembled.snippets],
        }


# --- public API -----------------------------------------------------------------------------


def build_dataset(repos: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  config: DataConfig | None = None, *, tokenizer=None,
                  progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Build FIM samples of ``repos`` into ``out_dir`` (JSONL shards + ``manifest.json``).

    ``tokenizer`` is the target model's (budgets and statistics in its tokens); without one
    a 4-characters-per-token estimate is used. ``progress(repo, files_done, files_total)``
    is called per file. The directory appears atomically: it is built beside ``out_dir`` and
    moved into place, so a failure leaves ``out_dir`` untouched. Returns the manifest.
    Raises :class:`TrainingDataError` when a repository has no supported files.
    """
    from repocomplete.fim import detect_template, get_template

    config = config or DataConfig()
    if config.template is None:
        if tokenizer is None:
            raise TrainingDataError("no FIM template given and no tokenizer to detect it from")
        config = replace(config, template=detect_template(tokenizer.get_vocab()).name)
    template = get_template(config.template)
    count = token_counter(tokenizer)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writer = _SampleWriter(staging, config.shard_samples)
        repo_infos, skipped, dropped = [], Counter(), Counter()
        names: Counter = Counter()
        for repo in repos:
            root = Path(repo).resolve()
            files = _supported_files(root, config)
            if not files:
                raise TrainingDataError(f"{root}: no supported source files to train on")
            name = root.name if not names[root.name] else f"{root.name}-{names[root.name]}"
            names[root.name] += 1
            builder = _RepositorySamples(root, name, config, template, count, staging / ".index" / name)
            by_time = time_split(root, [f.relpath for f in files], holdout_commits=config.holdout_commits) \
                if config.split == "time" else None
            if by_time is not None:
                past_root = snapshot(root, by_time.cutoff, staging / ".past" / name)
                past = _supported_files(past_root, config)
                heldout = [f for f in files if f.relpath in by_time.changed]
                stream = builder.time_samples(heldout, past, by_time, past_root)
                split_info = {"method": "git-time", "cutoff": by_time.cutoff, "commits": by_time.commits,
                              "heldout_lines": sum(len(v) for v in by_time.changed.values())}
                file_info = {"train": [f.relpath for f in past], "heldout": [f.relpath for f in heldout]}
                total_files = len(past) + len(heldout)
            else:
                split = split_files(root, [f.relpath for f in files], holdout_commits=config.holdout_commits,
                                    max_fraction=config.holdout_max_fraction, seed=config.seed)
                stream = builder.samples(files, split)
                split_info = {"method": split.method, "commits": split.commits}
                file_info = {"train": split.train, "heldout": split.heldout}
                total_files = len(files)
            done_files: set[tuple[str, str]] = set()
            for sample in stream:
                writer.write(sample)
                if progress and (sample["split"], sample["filepath"]) not in done_files:
                    done_files.add((sample["split"], sample["filepath"]))
                    progress(name, len(done_files), total_files)
            skipped.update(builder.skipped)
            dropped.update(builder.context_dropped)
            repo_infos.append({"name": name, "root": str(root), **source_commit(root), "split": split_info,
                               "files": file_info})
        writer.close()
        shutil.rmtree(staging / ".index", ignore_errors=True)
        shutil.rmtree(staging / ".past", ignore_errors=True)
        counts, tokens = writer.summary()
        if counts["train"]["total"] == 0:
            raise TrainingDataError("no training samples could be made (files too small or spans too long)")
        elapsed = time.perf_counter() - started
        total = counts["train"]["total"] + counts["heldout"]["total"]
        manifest = {
            "format": "repocomplete-fim/1", "template": config.template,
            "tokenizer": getattr(tokenizer, "name_or_path", None) or "chars/4 estimate",
            "config": asdict(config), "repos": repo_infos, "shards": writer.shards,
            "counts": counts, "tokens": tokens, "skipped": dict(skipped), "context_dropped": dict(dropped),
            "elapsed_s": round(elapsed, 3), "samples_per_s": round(total / elapsed, 2) if elapsed else None,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
        return manifest
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def load_manifest(data_dir: str | os.PathLike[str]) -> dict:
    """The manifest of a dataset built by :func:`build_dataset`."""
    return json.loads((Path(data_dir) / MANIFEST).read_text(encoding="utf-8"))


def read_samples(data_dir: str | os.PathLike[str], split: str = "train") -> Iterator[dict]:
    """Samples of one split, in the order they were written."""
    manifest = load_manifest(data_dir)
    for shard in manifest["shards"][split]:
        with open(Path(data_dir) / shard, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)
