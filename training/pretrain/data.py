"""Training samples, tokenized once into uint16 memmaps that training only reads (nanoGPT style).

Per corpus file, deterministically (seeded by its path):

- FIM samples in the ``repocomplete`` format (``repocomplete.fim`` renders them, exactly as
  serving does), PSM or SPM. The middle is mostly what serving asks for: the rest of a line,
  a whole line, a short block; sometimes a random span.
- Repository-context FIM: the same, preceded by ``<|rc:file|>`` snippets from *other files of
  the same package* (the same directory): the 10-line windows most similar (Jaccard, the
  indexer's own terms) to the last 10 lines of the prefix, as the indexer retrieves them at
  serving time (format 3: where code repeats, the line after a matching window is the answer,
  so copying from context pays off), definitions of identifiers used in the middle, then
  sibling definitions as distractors. Format 4 (``copy_holes``): a share of these samples hole
  a line that another file of the package repeats, and the context holds that file's window.
  Format 6 (``echo_holes``): a share of them hold the file's own window around the hole, the
  lines about the cursor and the answer verbatim (the plainest copy, where copying is learnt).
- Plain documents: ``<|rc:repo|>{repo}\\n<|rc:file|>{path}\\n{content}<|rc:end|>``.

Output per split: ``{split}.bin`` (uint16 tokens) and ``{split}_starts.npy`` (offsets where
samples begin; training windows start there and run on into the next sample), plus
``test_holes.jsonl``: rest-of-line holes of held-out files, with and without context, for the
exact-match evaluation in the model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.chunks import term_set, windows as chunk_windows
from indexer.types import Snippet
from training.pretrain.config import PretrainDataConfig
from training.pretrain.corpus import CorpusFile, read_corpus
from training.pretrain.tokenizer import EOS

_PY_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)
_PY_CONST = re.compile(r"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[^=]", re.M)
_RKT_DEF = re.compile(r"^\((?:define|define-syntax|define-syntax-rule|struct|define/contract|define-values)[ \t]+\(?([^\s()\[\]]+)", re.M)
_IDENT = re.compile(r"[A-Za-z_][\w\-!?*<>=/]*|[A-Za-z_]\w*")
MAX_DEF_LINES = 12


@dataclass
class Definition:
    """A definition in a file: its name and a short body (signature, docstring, first lines)."""

    name: str
    path: str
    start: int   # 0-based line
    end: int     # exclusive
    body: str


def definitions_in(path: str, text: str) -> list[Definition]:
    """Definitions of one file by indentation (Python) or top-level forms (Racket)."""
    lines = text.split("\n")
    found: list[Definition] = []
    if path.endswith(".rkt"):
        starts = [(text.count("\n", 0, m.start()), m.group(1), 0) for m in _RKT_DEF.finditer(text)]
        top_level = [i for i, line in enumerate(lines) if line.startswith("(")] + [len(lines)]
        for line_no, name, _ in starts:
            end = next(i for i in top_level if i > line_no)
            found.append(_definition(name, path, lines, line_no, end))
        return found
    for m in _PY_DEF.finditer(text):
        line_no = text.count("\n", 0, m.start())
        indent = len(m.group(1).expandtabs())
        end = line_no + 1
        while end < len(lines):
            line = lines[end]
            if line.strip() and len(line) - len(line.lstrip()) <= indent and not line.lstrip().startswith((")", "]")):
                break
            end += 1
        found.append(_definition(m.group(2), path, lines, line_no, end))
    for m in _PY_CONST.finditer(text):
        line_no = text.count("\n", 0, m.start())
        found.append(_definition(m.group(1), path, lines, line_no, line_no + 1))
    return found


def _definition(name: str, path: str, lines: list[str], start: int, end: int) -> Definition:
    body = "\n".join(lines[start:min(end, start + MAX_DEF_LINES)]).rstrip()
    return Definition(name, path, start, end, body)


# --- hole selection ---------------------------------------------------------------------

@dataclass
class Hole:
    prefix: str
    middle: str
    suffix: str
    kind: str
    line: int   # 0-based line of the hole's start


def _choose(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


#: Version of how samples are cut from files; part of the data stage's key, so a run
#: directory built by an older format rebuilds its data (its checkpoints stay usable).
#: 2: half of the whole-line holes leave the line break in the suffix.
#: 3: repository context also holds the windows most similar to the prefix's last lines.
#: 4: ``copy_holes``: some holes are lines repeated in another file, whose window is in the context.
#: 5: a similar window overlapping the copy window is left out (format 4 could show those lines twice),
#:    and the copy window is one of the indexer's own windows (format 4 rebuilt their geometry).
#: 6: ``echo_holes``: some contexts hold the file's own window around the hole (an exact match).
DATA_FORMAT = 6

#: Lines of a retrieval window and its stride, and the prefix lines of the lexical query:
#: the indexer's defaults (``indexer.config``), so training sees what serving retrieves.
WINDOW_LINES, WINDOW_STRIDE, QUERY_LINES = 10, 5, 10
#: Windows compared per query at most (a deterministic sample of a very large package).
MAX_WINDOWS_COMPARED = 4000

#: A repeated line worth copying: long enough to say something, rare enough to be specific.
COPY_MIN_CHARS, COPY_MAX_CHARS, COPY_MAX_SITES = 8, 160, 24


def make_hole(text: str, rng: random.Random, kind: str, at: int | None = None) -> Hole | None:
    """Cut ``text`` into prefix / middle / suffix around a random non-blank line (or line ``at``)."""
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    if not candidates:
        return None
    i = rng.choice(candidates) if at is None else at
    offsets = np.cumsum([0] + [len(line) + 1 for line in lines]).tolist()
    line = lines[i].rstrip()
    if kind == "rest_of_line":
        indent = len(line) - len(line.lstrip())
        col = indent if rng.random() < 0.3 else rng.randint(indent, max(indent, len(line) - 1))
        start, end = offsets[i] + col, offsets[i] + len(line)
    elif kind == "whole_line":
        # Half of them as an editor shows a line to write: the cursor on an empty line, the
        # suffix starting with that line's break (Enter pressed; HumanEval's single-line
        # infilling). Format 1 always put the break in the middle, and the model answered an
        # empty line with a stray docstring quote.
        start = offsets[i]
        end = offsets[i] + len(lines[i]) if rng.random() < 0.5 else offsets[i + 1]
    elif kind == "short_block":
        n = rng.randint(2, 6)
        start, end = offsets[i], offsets[min(len(lines), i + n)]
    else:  # random span
        start = offsets[i] + rng.randint(0, len(lines[i]))
        end = min(len(text), start + rng.randint(1, 160))
    end = min(end, len(text))
    middle = text[start:end]
    if not middle.strip() or len(middle) > 600:
        return None
    return Hole(text[:start], middle, text[end:], kind, i)


def clip(hole: Hole, prefix_chars: int, suffix_chars: int, rng: random.Random) -> Hole:
    """Keep the end of the prefix and the start of the suffix, cut at line boundaries."""
    prefix, suffix = hole.prefix, hole.suffix
    if len(prefix) > prefix_chars:
        cut = prefix.find("\n", len(prefix) - prefix_chars)
        prefix = prefix[cut + 1:] if cut >= 0 else prefix[-prefix_chars:]
    suffix_chars = 0 if rng.random() < 0.1 else suffix_chars
    if len(suffix) > suffix_chars:
        cut = suffix.rfind("\n", 0, suffix_chars)
        suffix = suffix[:cut + 1] if cut >= 0 else ""
    return Hole(prefix, hole.middle, suffix, hole.kind, hole.line)


# --- repository context ---------------------------------------------------------------------

@dataclass
class Window:
    """A 10-line window of a file and its Jaccard terms (as the indexer stores them)."""

    path: str
    start: int   # 0-based first line
    end: int     # exclusive
    body: str
    terms: frozenset


def windows_in(path: str, text: str) -> list[Window]:
    """The indexer's sliding windows of a file (``indexer.chunks.windows``: ``WINDOW_LINES``
    lines every ``WINDOW_STRIDE``, the file's end covered), with their Jaccard terms."""
    lines = text.split("\n")
    out = []
    for chunk in chunk_windows(lines, lines, WINDOW_LINES, WINDOW_STRIDE):
        terms = frozenset(term_set(chunk.body))
        if terms:
            out.append(Window(path, chunk.start_line - 1, chunk.end_line, chunk.body, terms))
    return out


def _jaccard(a: frozenset, b: frozenset) -> float:
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if inter else 0.0


class GroupIndex:
    """Definitions and retrieval windows of every file in one package directory."""

    def __init__(self, files: list[CorpusFile], *, windows: bool = True):
        self.by_name: dict[str, list[Definition]] = defaultdict(list)
        self.all: list[Definition] = []
        self.windows: list[Window] = []
        self._lines: dict[str, list[str]] = {}
        self._sites: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for f in files:
            lines = self._lines[f.path] = f.text.split("\n")
            for i, line in enumerate(lines):
                key = line.strip()
                if COPY_MIN_CHARS <= len(key) <= COPY_MAX_CHARS and not key.startswith(("#", ";")):
                    self._sites[key].append((f.path, i))
            for d in definitions_in(f.path, f.text):
                self.by_name[d.name].append(d)
                self.all.append(d)
            if windows:
                self.windows.extend(windows_in(f.path, f.text))
        if len(self.windows) > MAX_WINDOWS_COMPARED:
            self.windows = random.Random(len(self.windows)).sample(self.windows, MAX_WINDOWS_COMPARED)

    def similar_windows(self, prefix: str, path: str, visible_lines: tuple[int, int], k: int,
                        min_score: float = 0.1) -> list[Window]:
        """The ``k`` windows most similar to the prefix's last lines, none visible in the prompt."""
        query = frozenset(term_set("\n".join(prefix.split("\n")[-QUERY_LINES:])))
        if not query or k <= 0:
            return []
        scored = []
        for w in self.windows:
            if w.path == path and w.start < visible_lines[1] and w.end > visible_lines[0]:
                continue
            score = _jaccard(query, w.terms)
            if score >= min_score:
                scored.append((score, w))
        scored.sort(key=lambda pair: -pair[0])
        chosen: list[Window] = []
        for _, w in scored:
            # at most one window per location: overlapping windows repeat each other
            if all(w.path != c.path or w.start >= c.end or w.end <= c.start for c in chosen):
                chosen.append(w)
            if len(chosen) == k:
                break
        return chosen

    def copy_lines(self, path: str) -> list[int]:
        """Lines of ``path`` (0-based) that another file of the package repeats verbatim
        (stripped), at most ``COPY_MAX_SITES`` times: holes a window from that file answers."""
        out = []
        for i, line in enumerate(self._lines.get(path, ())):
            sites = self._sites.get(line.strip())
            if sites and len(sites) <= COPY_MAX_SITES and any(p != path for p, _ in sites):
                out.append(i)
        return out

    def copy_window(self, path: str, line: int, rng: random.Random) -> Window | None:
        """An indexer window (10 lines at a 5-line stride) of another file holding the line
        ``line`` of ``path``, the repeat preceded by some of its lines where the geometry allows:
        the match a retriever finds from the lines before the cursor."""
        key = self._lines[path][line].strip()
        sites = [(p, i) for p, i in self._sites.get(key, ()) if p != path]
        if not sites:
            return None
        other, i = rng.choice(sites)
        holding = self._windows_holding(other, i)
        # the latest window with >= 3 lines before the repeat, else the one with the most
        with_lead = [c for c in holding if i + 1 - c.start_line >= 3]
        chunk = with_lead[-1] if with_lead else holding[0]
        return Window(other, chunk.start_line - 1, chunk.end_line, chunk.body, frozenset(term_set(chunk.body)))

    def echo_window(self, path: str, line: int, rng: random.Random) -> Window:
        """One of the indexer windows of ``path`` itself that hold its line ``line`` (0-based)."""
        chunk = rng.choice(self._windows_holding(path, line))
        return Window(path, chunk.start_line - 1, chunk.end_line, chunk.body, frozenset(term_set(chunk.body)))

    def _windows_holding(self, path: str, line: int) -> list:
        """The indexer's windows (``indexer.chunks.windows`` chunks) of ``path`` holding its line ``line`` (0-based)."""
        lines = self._lines[path]
        return [c for c in chunk_windows(lines, lines, WINDOW_LINES, WINDOW_STRIDE) if c.start_line <= line + 1 <= c.end_line]

    def context_for(self, hole: Hole, path: str, visible_lines: tuple[int, int], budget_chars: int,
                    rng: random.Random, max_windows: int = 0, copy: Window | None = None) -> list[Snippet]:
        """Similar windows, definitions of names used in the middle (not visible), then distractors;
        ``copy`` (a window repeating the hole's line) comes first when given."""
        snippets: list[Snippet] = []
        used = 0
        if copy is not None:
            snippets.append(Snippet(filepath=copy.path, body=copy.body, source="jaccard",
                                    start_line=copy.start + 1, end_line=copy.end))
            used += len(copy.body) + len(copy.path) + 8
        for w in self.similar_windows(hole.prefix, path, visible_lines, max_windows):
            if copy is not None and w.path == copy.path and w.start < copy.end and w.end > copy.start:
                continue  # the copy window already shows these lines
            if used + len(w.body) <= budget_chars:
                snippets.append(Snippet(filepath=w.path, body=w.body, source="jaccard",
                                        start_line=w.start + 1, end_line=w.end))
                used += len(w.body) + len(w.path) + 8
        wanted = [n for n in dict.fromkeys(_IDENT.findall(hole.middle + hole.prefix[-200:])) if len(n) > 2]
        chosen: list[Definition] = []
        for name in wanted:
            for d in self.by_name.get(name, ()):
                if d.path == path and d.start < visible_lines[1] and d.end > visible_lines[0]:
                    continue  # already visible in the prompt window
                if used + len(d.body) > budget_chars or d in chosen:
                    continue
                chosen.append(d)
                used += len(d.body) + len(d.path) + 8
                break
        for _ in range(rng.randint(0, 3)):
            if not self.all:
                break
            d = rng.choice(self.all)
            if d.path != path and d not in chosen and used + len(d.body) <= budget_chars:
                chosen.append(d)
                used += len(d.body) + len(d.path) + 8
        snippets += [Snippet(filepath=d.path, body=d.body, source="definition", symbol=d.name) for d in chosen]
        rng.shuffle(snippets)
        return snippets


# --- samples --------------------------------------------------------------------------------

def _template():
    from repocomplete.fim import get_template

    return get_template("repocomplete")


def _file_rng(seed: int, key: str) -> random.Random:
    return random.Random(int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:16], 16))


def _in_context(middle: str, snippets: list[Snippet]) -> int:
    """1 when the middle's first line occurs verbatim in a context snippet (copying answers it)."""
    line = middle.split("\n")[0].strip()
    return int(len(line) >= 4 and any(line in s.body for s in snippets))


def file_samples(f: CorpusFile, group: GroupIndex, cfg: PretrainDataConfig, chars_per_token: float,
                 counts: dict | None = None) -> list[tuple[str, str]]:
    """(kind, text) samples of one file; deterministic in (seed, path). ``counts`` (optional)
    tallies repository-context samples whose middle a context snippet holds verbatim."""
    template = _template()
    rng = _file_rng(cfg.seed, f"{f.source}:{f.path}")
    fim_total = cfg.repo_fim_share + cfg.fim_share
    middles = {"rest_of_line": cfg.rest_of_line, "whole_line": cfg.whole_line,
               "short_block": cfg.short_block, "random_span": cfg.random_span}
    samples: list[tuple[str, str]] = []
    n = max(1, min(cfg.max_samples_per_file, len(f.text) // cfg.chars_per_sample))
    copy_lines = group.copy_lines(f.path) if cfg.copy_holes > 0 else []
    for _ in range(n):
        with_context = rng.random() < cfg.repo_fim_share / fim_total
        copy_line = None
        echo = with_context and cfg.echo_holes > 0 and rng.random() < cfg.echo_holes
        if not echo and with_context and copy_lines and rng.random() < cfg.copy_holes:
            copy_line = rng.choice(copy_lines)
            # a copy hole is the repeated line or its rest: not a random span
            hole = make_hole(f.text, rng, _choose(rng, {k: v for k, v in middles.items() if k != "random_span"}),
                             at=copy_line)
        else:
            hole = make_hole(f.text, rng, _choose(rng, middles))
        if hole is None:
            continue
        ctx_chars = int(cfg.context_tokens * chars_per_token) if with_context else 0
        # without context the prefix may use the context's share of the window
        prefix_chars = int(cfg.prefix_tokens * chars_per_token) + (0 if with_context else ctx_chars)
        hole = clip(hole, prefix_chars, int(cfg.suffix_tokens * chars_per_token), rng)
        snippets: list[Snippet] = []
        if with_context:
            first = hole.line - hole.prefix.count("\n")
            last = hole.line + hole.middle.count("\n") + hole.suffix.count("\n") + 1
            windows = rng.randint(min(1, cfg.context_windows), cfg.context_windows)
            copy = (group.echo_window(f.path, hole.line, rng) if echo
                    else group.copy_window(f.path, copy_line, rng) if copy_line is not None else None)
            snippets = group.context_for(hole, f.path, (first, last), int(cfg.context_tokens * chars_per_token), rng,
                                         max_windows=windows - (copy is not None), copy=copy)
            if counts is not None:
                for key, value in (("repo_fim_middle_in_context", _in_context(hole.middle, snippets)),
                                   ("repo_fim_copy_holes", copy is not None and not echo), ("repo_fim_echo_holes", echo)):
                    counts[key] = counts.get(key, 0) + int(value)
        order = "spm" if rng.random() < cfg.spm_share else "psm"
        prompt = template.render(hole.prefix, hole.suffix, snippets=snippets, filepath=f.path,
                                 repo_name=f.dist, order=order)
        samples.append(("repo_fim" if snippets else "fim", prompt + template.neutralize(hole.middle) + EOS))
    # documents: their token share relative to FIM samples is roughly doc_share
    p_doc = min(1.0, 1.45 * cfg.doc_share / max(1e-9, 1.0 - cfg.doc_share))
    if rng.random() < p_doc:
        samples.append(("doc", f"{template.repo_token}{f.dist}\n{template.file_sep}{f.path}\n{template.neutralize(f.text)}{EOS}"))
    return samples


def test_holes(f: CorpusFile, group: GroupIndex, cfg: PretrainDataConfig, chars_per_token: float, n: int = 2) -> list[dict]:
    """Rest-of-line holes of a held-out file, each with its repository context (may be empty)."""
    rng = _file_rng(cfg.seed + 1, f"holes:{f.source}:{f.path}")
    holes = []
    for _ in range(n):
        hole = make_hole(f.text, rng, "rest_of_line")
        if hole is None or len(hole.middle.strip()) < 3:
            continue
        hole = clip(hole, int(cfg.prefix_tokens * chars_per_token), int(cfg.suffix_tokens * chars_per_token), rng)
        first = hole.line - hole.prefix.count("\n")
        last = hole.line + hole.suffix.count("\n") + 1
        snippets = group.context_for(hole, f.path, (first, last), int(cfg.context_tokens * chars_per_token),
                                     random.Random(0), max_windows=cfg.context_windows)
        holes.append({"path": f.path, "repo": f.dist, "prefix": hole.prefix, "suffix": hole.suffix,
                      "middle": hole.middle, "snippets": [{"filepath": s.filepath, "body": s.body} for s in snippets]})
    return holes


def measure_chars_per_token(tokenizer, files: list[CorpusFile], limit: int = 2_000_000) -> float:
    text = "".join(f.text for f in files[: max(1, len(files))])[:limit]
    if not text:
        return 3.5
    return len(text) / max(1, len(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids))


def _write_split(tokenizer, texts: list[tuple[str, str]], block_size: int, out: Path, split: str) -> dict:
    """Tokenize samples in batches (Rust, parallel) and append them to a uint16 memmap."""
    backend = tokenizer.backend_tokenizer
    starts: list[int] = []
    counts: dict[str, int] = defaultdict(int)
    position = 0
    tmp = out / f"{split}.bin.tmp"
    with tmp.open("wb") as fh:
        for i in range(0, len(texts), 2048):
            batch = texts[i:i + 2048]
            encodings = backend.encode_batch([t for _, t in batch], add_special_tokens=False)
            for (kind, _), enc in zip(batch, encodings):
                ids = np.asarray(enc.ids, dtype=np.uint16)
                # a long document gets a start every block, so its tail is trained on too
                step = block_size if kind == "doc" else len(ids)
                starts.extend(position + s for s in range(0, max(1, len(ids) - 32), max(1, step)))
                fh.write(ids.tobytes())
                position += len(ids)
                counts[f"{kind}_samples"] += 1
                counts[f"{kind}_tokens"] += len(ids)
    os.replace(tmp, out / f"{split}.bin")
    np.save(out / f"{split}_starts.npy", np.asarray(starts, dtype=np.int64))
    return {"tokens": position, "starts": len(starts), **counts}


def build_data(corpus_path: Path, tokenizer, cfg: PretrainDataConfig, out: Path, *, log=print) -> dict:
    """All samples of both splits -> ``out``; returns stats (also written to ``data.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    files = list(read_corpus(corpus_path))
    cpt = measure_chars_per_token(tokenizer, files[::50])
    by_group: dict[tuple[str, str], list[CorpusFile]] = defaultdict(list)
    for f in files:
        by_group[(f.split, f.group)].append(f)
    texts: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    holes: list[dict] = []
    copyable: dict[str, int] = defaultdict(int)
    for (split, _), members in sorted(by_group.items()):
        # held-out files see context from train files of their package, as a new file in a known repo would
        index = GroupIndex(members if split == "train" else members + by_group.get(("train", members[0].group), []))
        for f in members:
            texts[split].extend(file_samples(f, index, cfg, cpt, copyable if split == "train" else None))
            if split == "test":
                holes.extend(test_holes(f, index, cfg, cpt))
    order_rng = random.Random(cfg.seed)
    stats = {"chars_per_token": cpt}
    for split, items in texts.items():
        order_rng.shuffle(items)
        stats[split] = _write_split(tokenizer, items, cfg.block_size, out, split)
        log(f"data: {split}: {stats[split]['tokens']:,} tokens in {len(items):,} samples")
    with (out / "test_holes.jsonl").open("w") as fh:
        for hole in holes:
            fh.write(json.dumps(hole) + "\n")
    stats["test_holes"] = len(holes)
    stats["train"]["repo_fim_middle_in_context"] = copyable["repo_fim_middle_in_context"]
    stats["train"]["repo_fim_copy_holes"] = copyable["repo_fim_copy_holes"]
    stats["train"]["repo_fim_echo_holes"] = copyable["repo_fim_echo_holes"]
    stats["vocab_size"] = len(tokenizer)
    (out / "data.json").write_text(json.dumps(stats, indent=1))
    return stats
