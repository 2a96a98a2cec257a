"""bench/repo_lora_gain.py: real packages as two-commit histories, a repository LoRA trained on the
past, base vs adapter (and base without context) on the future's holes (issue 23.4)."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.evals.conftest import ROOT, git

_spec = importlib.util.spec_from_file_location("repo_lora_gain", ROOT / "bench" / "repo_lora_gain.py")
gain = importlib.util.module_from_spec(_spec)
sys.modules["repo_lora_gain"] = gain   # dataclasses look their module up while it is executed
_spec.loader.exec_module(gain)

MODULE = '''import os


def one():
    return 1


class Box:
    def __init__(self):
        self.items = []

    @property
    def size(self):
        return len(self.items)

    def add(self, item):
        self.items.append(item)


@staticmethod
def two():
    return 2
'''


def test_past_text_cuts_at_the_first_definition_after_the_share_kept():
    lines = MODULE.splitlines()
    # 22 lines: 85% is line 18.7, the first definition starting after it is `two` (its decorator, line 20)
    assert gain.past_text(MODULE) == "\n".join(lines[:19]) + "\n"
    # half: line 11; the first definition after it is the `size` property (decorator line 12), a method
    half = gain.past_text(MODULE, keep=0.5)
    assert half == "\n".join(lines[:11]) + "\n" and half.rstrip().endswith("self.items = []")
    ast.parse(half)
    assert gain.past_text(MODULE, keep=0.99) == gain.past_text(MODULE)   # nothing after: the last definition


def _package(tmp_path: Path) -> gain.Source:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(MODULE)
    (package / "other.py").write_text("from mod import one\n\nVALUE = one()\n")
    (package / "new.py").write_text("from mod import Box\n\n\ndef fill():\n    return Box()\n")
    source = gain.Source("pkg", "stdlib", "test", ("mod.py",), "new.py")
    return source


def test_history_is_the_past_then_the_future_and_the_same_every_time(tmp_path, monkeypatch):
    source = _package(tmp_path)
    monkeypatch.setattr(gain.Source, "path", lambda self: tmp_path / "pkg")
    repo = tmp_path / "a" / "pkg"
    repo.parent.mkdir()
    past = gain.make_history(source, repo)
    assert git(repo, "rev-list", "--count", "HEAD") == "2" and git(repo, "rev-parse", "HEAD~1") == past
    assert git(repo, "ls-tree", "--name-only", past).split() == ["mod.py", "other.py"]
    assert git(repo, "show", f"{past}:mod.py") == gain.past_text(MODULE).strip()   # git() strips its output
    assert (repo / "mod.py").read_text() == MODULE and (repo / "new.py").exists()
    assert not git(repo, "status", "--porcelain")
    again = tmp_path / "b" / "pkg"
    again.parent.mkdir()
    assert gain.make_history(source, again) == past   # fixed authors and dates: the same commits
    assert gain.make_history(source, repo) == past    # built once, then reused


def test_folders_arrive_and_only_the_included_files_matching_the_patterns_are_kept(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    for family in ("old", "new", "unused"):
        (package / "models" / family).mkdir(parents=True)
        (package / "models" / family / f"modeling_{family}.py").write_text(f"class {family.title()}:\n    pass\n")
        (package / "models" / family / "convert_weights.py").write_text("import torch\n")
    (package / "core.py").write_text("X = 1\n")
    source = gain.Source("pkg", "site-packages", "test", (), ("models/new",), include=("models/old", "models/new", "core.py"),
                         patterns=("modeling_*.py", "core.py"))
    monkeypatch.setattr(gain.Source, "path", lambda self: package)
    repo = tmp_path / "a" / "pkg"
    repo.parent.mkdir()
    past = gain.make_history(source, repo)
    assert git(repo, "ls-tree", "-r", "--name-only", past).split() == ["core.py", "models/old/modeling_old.py"]
    assert git(repo, "ls-tree", "-r", "--name-only", "HEAD").split() == [
        "core.py", "models/new/modeling_new.py", "models/old/modeling_old.py"]
    assert git(repo, "log", "-1", "--format=%s") == "the future: one arrives"
    assert sorted(p.name for p in repo.parent.iterdir()) == ["pkg"]   # no half-built folder left


def test_real_sources_exist_and_cut_cleanly():
    for name, source in gain.REPOSITORIES.items():
        if source.where == "site-packages" and not source.path().exists():
            continue   # an optional library not installed here
        for module in source.grow:
            text = (source.path() / module).read_text(encoding="utf-8")
            past = gain.past_text(text)
            ast.parse(past)
            assert 0.8 * len(text.splitlines()) <= len(past.splitlines()) < len(text.splitlines()), (name, module)
        for path in (*source.arrives, *source.include):
            assert (source.path() / path).exists(), (name, path)


def test_a_smaller_limit_samples_part_of_a_larger_ones_holes():
    """What lets a none run with more holes pair with every hole of the fused run (pools of the
    sizes the two histories give)."""
    from evals.holes import mine_holes

    files = {f"m{i}.py": "".join(f"value_{i}_{j} = compute({j})\n" for j in range(60)) for i in range(12)}
    for small, large in ((2, 5), (17, 34), (12, 34)):
        few = {h.id for h in mine_holes(files, kinds=("line", "rest_of_line"), limit=small, seed=0)}
        many = {h.id for h in mine_holes(files, kinds=("line", "rest_of_line"), limit=large, seed=0)}
        assert few < many, (small, large)


def _run_folder(folder: Path, records: list[dict], summary: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _record(hole: str, kind: str, setting: str, em: float, suffix: str = "") -> dict:
    return {"key": f"{hole}:{setting}{suffix}", "setting": f"{kind}/{setting}{suffix}",
            "metrics": {"exact_match": em, "edit_similarity": em}}


def test_table_pairs_the_three_arms_on_the_same_holes(tmp_path):
    #            hole  kind   none fused adapter
    holes = [("h1", "line", 0.0, 1.0, 1.0), ("h2", "line", 0.0, 0.0, 1.0), ("h3", "line", 1.0, 1.0, 1.0),
             ("h4", "cross_file", 0.0, 1.0, 0.0), ("h5", "cross_file", 1.0, 0.0, 0.0)]
    fused = _run_folder(tmp_path / "fused", [r for h, k, _, f, a in holes for r in
                                             (_record(h, k, "fused", f), _record(h, k, "fused", a, "+lib"))],
                        {"adapter_vs_base": {"line/fused exact_match": {"n": 3}}})
    none = _run_folder(tmp_path / "none", [_record(h, k, "none", n) for h, k, n, _, _ in holes]
                       + [_record("h9", "line", "none", 1.0)], {})   # h9: not in the fused run, not paired
    table = gain.table("lib", fused, none)
    assert table["adapter_vs_base"] == {"line/fused exact_match": {"n": 3}}
    line, cross, every = table["rows"]["line"], table["rows"]["cross_file"], table["rows"]["all"]
    assert (line["n"], line["base_none"], line["base_fused"], line["adapter_fused"]) == (3, 1 / 3, 2 / 3, 1.0)
    assert line["adapter_relative"] == pytest.approx(0.5) and line["context_ratio"] == pytest.approx(2.0)
    assert (cross["n"], cross["base_fused"], cross["adapter_fused"], cross["adapter_relative"]) == (2, 0.5, 0.0, -1.0)
    assert every["n"] == 5 and every["context_ratio"] == pytest.approx(3 / 2)
    low, high = line["adapter_difference_ci95"]
    assert 0.0 <= low <= 1 / 3 <= high <= 1.0
    assert "rest_of_line" not in table["rows"]   # no holes of that kind

    base_only = gain.table("lib", fused, none, adapter=False)["rows"]   # --context-only: the adapter's records unread
    assert base_only["line"] == {"n": 3, "base_none": 1 / 3, "base_fused": 2 / 3, "context_ratio": pytest.approx(2.0),
                                 "context_ratio_ci95": line["context_ratio_ci95"],
                                 "edit_similarity": {"base_none": 1 / 3, "base_fused": 2 / 3}}
    no_adapter = _run_folder(tmp_path / "fused-base-only", [_record(h, k, "fused", f) for h, k, _, f, _ in holes], {})
    assert gain.table("lib", no_adapter, none, adapter=False)["rows"]["all"]["context_ratio"] == pytest.approx(3 / 2)
    assert gain.table("lib", no_adapter, none)["rows"] == {}   # the adapter arm missing: no row claims it


@pytest.mark.slow
def test_one_command_trains_and_measures_on_a_small_package(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """The whole benchmark on stdlib json with the tiny model: history, a 2-step LoRA, both eval
    runs, the table; a rerun skips every stage."""
    monkeypatch.setattr(gain, "REPOSITORIES", {"json": gain.Source("json", "stdlib", "PSF-2.0", ("decoder.py",), "tool.py")})
    args = ["--base", str(tiny_model_dir), "--work", str(tmp_path / "work"), "--steps", "2", "--samples-per-file", "2",
            "--limit", "2", "--seq-len", "128"]
    results = gain.main(args)["json"]
    assert set(results["rows"]) >= {"line", "rest_of_line", "all"} and results["rows"]["all"]["n"] >= 4
    assert results["finetune"]["steps"] == 2 and results["adapter_vs_base"]
    assert (tmp_path / "work" / "json" / "adapters" / "json" / "adapter_config.json").exists()
    log = (tmp_path / "work" / "json" / "log.txt").read_text()
    assert "finetune" in log and log.count("eval repo") == 2
    assert {p.name for p in (tmp_path / "work" / "json" / "eval").iterdir()} == {"none", "fused"}
    assert "| json | all |" in capsys.readouterr().out
    assert gain.main(args)["json"]["rows"] == results["rows"]   # resumed: nothing runs again
    assert (tmp_path / "work" / "json" / "log.txt").read_text() == log
    assert gain.main([*args, "--table-only"])["json"]["rows"] == results["rows"]
    more = gain.main([*args, "--none-limit", "3"])["json"]   # the none run continues with more holes
    assert more["rows"] == results["rows"] and (tmp_path / "work" / "json" / "eval" / "none" / "finished-limit-3").exists()
    base_only = gain.main([*args, "--context-only", "--table-only"])["json"]
    assert "finetune" not in base_only and base_only["rows"]["all"]["base_fused"] == results["rows"]["all"]["base_fused"]
    assert "adapter_fused" not in base_only["rows"]["all"] and "fused / none (95% CI)" in capsys.readouterr().out
