"""The acceptance replay on a real git history (standard-library files committed in steps)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from evals import acceptance
from evals.acceptance import Block, accepted_text, replay, triggers_after
from evals.runner import ResultLog
from tests.evals.conftest import ScriptedCompleter, cli_summary, git, new_git_repository, run_cli
from tests.evals.test_repo import JSON_PACKAGE

TIMING = argparse.Namespace(debounce_ms=75.0, char_ms=60.0, pause_ms=400.0)


def test_trigger_rule_fires_after_word_boundaries_only():
    assert [c for c in "ab (c." if triggers_after(c, TIMING)] == [" ", "(", "."]
    slow_typist = argparse.Namespace(debounce_ms=75.0, char_ms=80.0, pause_ms=400.0)
    assert all(triggers_after(c, slow_typist) for c in "ab")


def test_acceptance_rule_golden():
    assert accepted_text("foo(", "foo(bar)\nx") == "foo("
    assert accepted_text("foo(bar)  ", "foo(bar)\nx") == "foo(bar)"  # the rest of the line, up to spaces
    assert accepted_text("foo(baz)", "foo(bar)\nx") is None
    assert accepted_text("   ", "   x") is None  # blank suggestions are never shown


def test_replay_counts_with_an_oracle_and_a_wrong_model():
    block = Block("b", 0, "sha", "m.py", "python", "def f(x):\n", "    y = x + 1\n    return y", "")
    remaining = lambda prefix: (block.before + block.typed)[len(prefix):].split("\n")[0]  # noqa: E731
    oracle = replay(block, lambda prefix, suffix: remaining(prefix), TIMING)
    assert oracle.shown == oracle.accepted > 0
    assert oracle.chars_saved == sum(e - s for s, e in oracle.pieces) <= len(block.typed)
    wrong = replay(block, lambda prefix, suffix: "zzz", TIMING)
    assert wrong.accepted == 0 and wrong.chars_saved == 0 and wrong.shown == wrong.triggers > 1


@pytest.fixture
def history(tmp_path) -> tuple[Path, dict[str, list[str]]]:
    """c1: part of json/decoder.py; c2: more of it; c3: all of it plus scanner.py; c4: deletes lines c3 added."""
    repo = new_git_repository(tmp_path / "repo")
    decoder = (JSON_PACKAGE / "decoder.py").read_text().split("\n")
    versions = {"decoder.py": []}
    steps = [decoder[:40], decoder[:120], decoder, decoder[:120] + decoder[135:]]
    for step, lines in enumerate(steps):
        text = "\n".join(lines)
        (repo / "decoder.py").write_text(text)
        versions["decoder.py"].append(text)
        if step == 2:
            shutil.copy(JSON_PACKAGE / "scanner.py", repo / "scanner.py")
            versions["scanner.py"] = [(repo / "scanner.py").read_text()]
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"step {step}")
    return repo, versions


def _oracle(versions: dict[str, list[str]]) -> ScriptedCompleter:
    """Suggests the rest of the line the developer is about to type."""

    def answer(request) -> str:
        prefix = request.segments.prefix
        texts = [t for t in versions[request.segments.filepath] if t.startswith(prefix)]
        return texts[0][len(prefix):].split("\n")[0] if texts else ""

    return ScriptedCompleter(answer)


def test_oracle_is_always_accepted_and_deleted_code_does_not_persist(history, make_args, tmp_path):
    repo, versions = history
    args = make_args(root=repo, commits=10, settings=["none", "fused"], languages=["python"], max_chars=200,
                     persistence=1, debounce_ms=75.0, char_ms=60.0, pause_ms=400.0, max_tokens=48, limit=None,
                     run_dir=tmp_path / "run")
    blocks = acceptance.load(args)
    assert {b.path for b in blocks} == {"decoder.py", "scanner.py"}
    completer = _oracle(versions)
    records = acceptance.run(blocks, args, completer, ResultLog(tmp_path / "log.jsonl"))
    summary = {"settings": {"none": {}, "fused": {}}, "meta": {}}
    acceptance.finalize(summary, records, args)
    for setting in ("none", "fused"):
        row = summary["settings"][setting]
        assert row["car"] == 1.0 and row["shown"] > 0 and 0 < row["saved_share"] <= 1.0
        # The last commit deletes lines typed in the one before: not all accepted text persists.
        assert 0.0 < row["cpr"] < 1.0
    assert any(r.segments.snippets for r in completer.requests)  # "fused" brought repository context
    assert not (repo / ".git" / "worktrees").exists() or not any((repo / ".git" / "worktrees").iterdir())

    wrong = ScriptedCompleter(lambda request: "zz_wrong()")
    records = acceptance.run(blocks[:2], make_args(**vars(args) | {"settings": ["none"]}), wrong,
                             ResultLog(tmp_path / "wrong.jsonl"))
    summary = {"settings": {"none": {}}, "meta": {}}
    acceptance.finalize(summary, records, args)
    assert summary["settings"]["none"]["car"] == 0.0 and summary["settings"]["none"]["chars_saved"] == 0


def test_cli_on_the_fake_backend_and_a_folder_that_is_not_a_repository(history, tmp_path):
    repo, _ = history
    summary = cli_summary("acceptance", str(repo), "--backend", "fake", "--limit", "2", "--settings", "none",
                          "--out", str(tmp_path / "run"))
    assert summary["settings"]["none"]["shown"] > 0 and summary["settings"]["none"]["car"] == 0.0
    (tmp_path / "plain").mkdir()
    done = run_cli("acceptance", str(tmp_path / "plain"), "--backend", "fake", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "not a git repository" in done.stderr
