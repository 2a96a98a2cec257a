"""HumanEval and HumanEval-infilling, read from the vendored files in ``evals/data/humaneval``."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

from evals.data import HUMANEVAL_DIR
from repocomplete.errors import RepocompleteError

#: Infilling subsets -> vendored file (Bavarian et al., 2022).
INFILLING_FILES: dict[str, str] = {
    "single_line": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi_line": "HumanEval-MultiLineInfilling.jsonl.gz",
    "random_span": "HumanEval-RandomSpanInfilling.jsonl.gz",
    "random_span_light": "HumanEval-RandomSpanInfillingLight.jsonl.gz",
}


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem (``prompt`` ends where the function body starts)."""

    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


@dataclass(frozen=True)
class InfillingTask:
    """One infilling task: fill ``middle`` between ``prefix`` and ``suffix``."""

    task_id: str
    subset: str
    prefix: str
    suffix: str
    middle: str
    test: str
    entry_point: str

    @property
    def problem_id(self) -> str:
        """``HumanEval/N`` of the problem this task was cut from."""
        parts = self.task_id.split("/")
        return "/".join(parts[1:3])


def _read_jsonl_gz(path: Path) -> list[dict]:
    if not path.exists():
        raise RepocompleteError(f"evaluation data missing: {path} (reinstall repocomplete)")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_problems(data_dir: Path = HUMANEVAL_DIR) -> list[Problem]:
    """All 164 HumanEval problems, in task order."""
    rows = _read_jsonl_gz(data_dir / "HumanEval.jsonl.gz")
    return [Problem(r["task_id"], r["prompt"], r["canonical_solution"], r["test"], r["entry_point"]) for r in rows]


def load_infilling(subset: str, data_dir: Path = HUMANEVAL_DIR) -> list[InfillingTask]:
    """Every task of one infilling subset (``single_line``, ``multi_line``, ``random_span``...)."""
    if subset not in INFILLING_FILES:
        raise RepocompleteError(f"unknown infilling subset {subset!r}; choose from: {', '.join(INFILLING_FILES)}")
    rows = _read_jsonl_gz(data_dir / INFILLING_FILES[subset])
    return [
        InfillingTask(r["task_id"], subset, r["prompt"], r["suffix"], r["canonical_solution"], r["test"], r["entry_point"])
        for r in rows
    ]


def sample(items: list, limit: int | None, seed: int = 0) -> list:
    """A deterministic subset of ``limit`` items (all when ``limit`` is None), original order kept.

    Random rather than the first N so that a small sample spans many problems.
    """
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def python_program(code: str, test: str, entry_point: str) -> str:
    """The executable check of a completed function: code, the tests, and the call to ``check``."""
    return f"{code}\n\n{test}\n\ncheck({entry_point})\n"
