"""``eval repo --adapter``: base vs adapter on a repository's held-out future (issue 23.4).

A small git repository made here (two commits of stdlib code), the tiny model built from
config and a random LoRA for it: one command reports both models on the same holes with the
same context, only on lines written after the cut-off, plus the acceptance replay.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from evals import acceptance, repo
from repocomplete.errors import RepocompleteError
from tests.evals.conftest import ROOT, cli_summary, git, new_git_repository, run_cli
from tests.repocomplete.conftest import make_lora_adapter

JSON_PACKAGE = Path(sysconfig.get_paths()["stdlib"]) / "json"


@pytest.fixture
def two_commits(tmp_path) -> tuple[Path, str]:
    """Commit 1: the first 60 lines of json/decoder.py and all of scanner.py; commit 2: decoder.py
    to line 140 with lines 20-24 rewritten. Returns the repository and commit 1 (the cut-off)."""
    root = new_git_repository(tmp_path / "repo")
    decoder = (JSON_PACKAGE / "decoder.py").read_text().split("\n")
    (root / "scanner.py").write_text((JSON_PACKAGE / "scanner.py").read_text())
    (root / "decoder.py").write_text("\n".join(decoder[:60]))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "past")
    cutoff = git(root, "rev-parse", "HEAD")
    rewritten = decoder[:19] + [f"renamed_{i} = {i}" for i in range(5)] + decoder[24:140]
    (root / "decoder.py").write_text("\n".join(rewritten))
    git(root, "commit", "-q", "-am", "future")
    return root, cutoff


def test_lines_changed_since_golden(two_commits):
    root, cutoff = two_commits
    files = {p.name: p.read_text() for p in root.glob("*.py")}
    changed = acceptance.lines_changed_since(root, cutoff, files)
    assert set(changed) == {"decoder.py"}  # scanner.py did not change
    assert changed["decoder.py"] == set(range(20, 25)) | set(range(61, 141))
    with pytest.raises(Exception, match="unknown commit"):
        acceptance.lines_changed_since(root, "not-a-commit", files)


def test_adapter_vs_base_pairs_the_same_samples():
    records = [
        {"key": "h1:none", "setting": "line/none", "metrics": {"exact_match": 0.0}},
        {"key": "h1:none+lora", "setting": "line/none+lora", "metrics": {"exact_match": 1.0}},
        {"key": "h2:none", "setting": "line/none", "metrics": {"exact_match": 1.0}},
        {"key": "h2:none+lora", "setting": "line/none+lora", "metrics": {"exact_match": 1.0}},
        {"key": "b1:none", "setting": "replay/none", "metrics": {"chars_saved": 10, "chars_typed": 40}},
        {"key": "b1:none+lora", "setting": "replay/none+lora", "metrics": {"chars_saved": 20, "chars_typed": 40}},
        {"key": "b2:none", "setting": "replay/none", "metrics": {"chars_saved": 0, "chars_typed": 60}},
        {"key": "b2:none+lora", "setting": "replay/none+lora", "metrics": {"chars_saved": 30, "chars_typed": 60}},
    ]
    table = repo.adapter_vs_base(records, "lora")
    assert set(table) == {"line/none exact_match", "replay/none saved_share"}
    line, replay = table["line/none exact_match"], table["replay/none saved_share"]
    assert (line["base"], line["adapter"], line["difference"], line["n"], line["relative"]) == (0.5, 1.0, 0.5, 2, 1.0)
    assert line["ci95"]["difference"][0] >= 0.0 and line["ci95"]["difference"][1] == 1.0
    assert (replay["base"], replay["adapter"], replay["n"]) == (0.1, 0.5, 2)
    assert replay["relative"] == pytest.approx(4.0) and replay["difference"] == pytest.approx(0.4)
    assert 0.25 <= replay["ci95"]["difference"][0] <= replay["ci95"]["difference"][1] <= 0.75


@pytest.mark.slow
def test_one_command_gives_base_vs_adapter_on_the_held_out_future(two_commits, tiny_model_dir, tmp_path):
    root, cutoff = two_commits
    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "lora", seed=7)
    out = tmp_path / "run"
    summary = cli_summary("repo", str(root), "--model", str(tiny_model_dir), "--adapter", f"lora={adapter}",
                          "--after", cutoff, "--replay-commits", "1", "--kinds", "line", "rest_of_line",
                          "--settings", "none", "fused", "--limit", "3", "--max-tokens", "8", "--out", str(out))
    rows = summary["settings"]
    hole_rows = {f"{k}/{s}{m}" for k in ("line", "rest_of_line") for s in ("none", "fused") for m in ("", "+lora")}
    assert hole_rows <= set(rows)
    assert {"replay/none", "replay/none+lora", "replay/fused", "replay/fused+lora"} <= set(rows)
    for name in hole_rows:  # n and 95% intervals for every metric the issue names
        assert rows[name]["n"] == 3
        assert {"exact_match", "edit_similarity", "identifier_f1"} <= set(rows[name]["ci95"])
    assert rows["replay/none"]["chars_typed"] == rows["replay/none+lora"]["chars_typed"] > 0
    assert "saved_share" in rows["replay/none+lora"]["ci95"]
    pairs = summary["adapter_vs_base"]
    assert set(pairs) == {f"{n} exact_match" for n in hole_rows if not n.endswith("+lora")} | {
        "replay/none saved_share", "replay/fused saved_share"}
    assert all(p["n"] > 0 and len(p["ci95"]["difference"]) == 2 for p in pairs.values())
    # held out: every hole is on a line written after the cut-off; base and adapter saw the same context
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    holes = [s for s in samples if not s["setting"].startswith("replay/")]
    changed = set(range(20, 25)) | set(range(61, 141))
    assert holes and all(s["id"].startswith("decoder.py:") and int(s["id"].split(":")[1]) in changed for s in holes)
    by_key = {s["key"]: s for s in holes}
    for key, sample in by_key.items():
        if not key.endswith("+lora"):
            assert by_key[key + "+lora"]["context_files"] == sample["context_files"]
    # the adapter changes what the model writes (a random LoRA with non-zero B)
    assert any(by_key[k]["completion"] != by_key[k + "+lora"]["completion"] for k in by_key if not k.endswith("+lora"))
    report = (out / "summary.md").read_text()
    assert "## adapter_vs_base" in report and "| line/none exact_match |" in report


# --- the held-out future by default: the cut-off recorded in the adapter (issue 23.2) ---------------


def _adapter_with_metadata(folder: Path, metadata: dict | None) -> Path:
    folder.mkdir(parents=True)
    if metadata is not None:
        (folder / "repocomplete-adapter.json").write_text(json.dumps(metadata))
    return folder


def _trained_on(*repos: tuple[str, str, str | None]) -> dict:
    """Metadata as `repocomplete finetune` writes it: (name, root, cut-off or None for the files split)."""
    return {"format": "repocomplete-adapter/1", "data_manifest": {"repos": [
        {"name": name, "root": root, "split": {"method": "git-time", "cutoff": cutoff} if cutoff else
         {"method": "git-files", "commits": 1}} for name, root, cutoff in repos]}}


def test_recorded_cutoff_golden(two_commits, tmp_path):
    root, cutoff = two_commits
    other = "0123456789abcdef0123456789abcdef01234567"   # a commit of another repository
    found = repo.recorded_cutoff(root, "mine", _adapter_with_metadata(
        tmp_path / "mine", _trained_on(("elsewhere", "/x", other), ("repo", str(root), cutoff))))
    assert found == cutoff   # of two training repositories, the one whose cut-off is a commit here
    cases = {
        "plain": (None, "records no cut-off commit (it has no repocomplete-adapter.json)"),
        "files": (_trained_on(("repo", str(root), None)), "records no cut-off commit (it was not trained with the time split)"),
        "other": (_trained_on(("elsewhere", "/x", other)), f"cut-off ({other[:12]} of elsewhere) is not a commit of {root}"),
    }
    for name, (metadata, message) in cases.items():
        with pytest.raises(RepocompleteError, match=re.escape(message) + ".*pass --after REV"):
            repo.recorded_cutoff(root, name, _adapter_with_metadata(tmp_path / name, metadata))
    with pytest.raises(RepocompleteError, match="no folder .* here to read its cut-off from"):
        repo.recorded_cutoff(root, "gone", tmp_path / "gone")
    plain_folder = tmp_path / "not-git"
    plain_folder.mkdir()
    with pytest.raises(RepocompleteError, match="not a git repository.*needs the repository's git history"):
        repo.recorded_cutoff(plain_folder, "mine", tmp_path / "mine")


@pytest.fixture
def three_commits(tmp_path) -> tuple[Path, str, str]:
    """decoder.py: lines 1-60 (commit 1), 61-140 added (commit 2), 141-150 added (commit 3), so a
    time-split fine-tune cuts off at commit 2. Returns the repository, commit 1 and commit 2."""
    root = new_git_repository(tmp_path / "repo3")
    decoder = (JSON_PACKAGE / "decoder.py").read_text().split("\n")
    (root / "scanner.py").write_text((JSON_PACKAGE / "scanner.py").read_text())
    commits = []
    for end in (60, 140, 150):
        (root / "decoder.py").write_text("\n".join(decoder[:end]) + "\n")
        git(root, "add", ".")
        git(root, "commit", "-q", "-m", f"decoder to line {end}")
        commits.append(git(root, "rev-parse", "HEAD"))
    return root, commits[0], commits[1]


def _hole_lines(out: Path) -> set[int]:
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["id"].startswith("decoder.py:") for s in samples)
    return {int(s["id"].split(":")[1]) for s in samples}


@pytest.mark.slow
def test_eval_defaults_to_the_cutoff_the_finetune_recorded(three_commits, tiny_model_dir, tmp_path):
    root, first, cutoff = three_commits
    adapter = tmp_path / "adapters" / "repo3"
    trained = subprocess.run(
        [sys.executable, "-m", "repocomplete", "finetune", str(root), "--base", str(tiny_model_dir), "--out",
         str(adapter), "--max-steps", "2", "--eval-every", "0", "--save-every", "0", "--max-seq-len", "128",
         "--batch-size", "1", "--eval-samples", "2", "--em-samples", "1", "--samples-per-file", "2", "--no-context",
         "--allow-no-improvement", "--json"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    common = ("repo", str(root), "--model", str(tiny_model_dir), "--adapter", f"repo3={adapter}", "--kinds", "line",
              "--settings", "none", "--limit", "4", "--max-tokens", "4", "--json", "--no-progress")
    # no --after: the cut-off recorded by the fine-tune (commit 2), said on stderr
    default = run_cli(*common, "--out", str(tmp_path / "default"))
    assert default.returncode == 0, default.stderr
    assert f"held out: lines added or changed after commit {cutoff[:12]}, the cut-off recorded in adapter repo3" \
        in default.stderr
    assert json.loads(default.stdout)["meta"]["held_out"] == f"lines added or changed after {cutoff}"
    assert _hole_lines(tmp_path / "default") <= set(range(141, 151))   # only what training never saw
    # an explicit --after wins: from commit 1, lines 61-140 are held out too
    explicit = run_cli(*common, "--after", first, "--out", str(tmp_path / "explicit"))
    assert explicit.returncode == 0, explicit.stderr
    assert "the cut-off recorded" not in explicit.stderr
    lines = _hole_lines(tmp_path / "explicit")
    assert lines <= set(range(61, 151)) and lines - set(range(141, 151))
    # an adapter that records no cut-off: one line, no traceback, no run folder
    plain = make_lora_adapter(tiny_model_dir, tmp_path / "plain", seed=3)
    refused = run_cli(*common[:5], f"plain={plain}", *common[6:], "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("error: adapter plain records no cut-off commit (it has no "
                                      "repocomplete-adapter.json); pass --after REV to choose the held-out future")
    assert not (tmp_path / "refused").exists()
