"""Every suite end to end: on the tiny model built from config, and through a real server over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evals import acceptance, coderag, fim, lowres, repo
from evals.report import summarize
from evals.runner import ModelSpec, ResultLog, build_completer
from tests.conftest import skip_or_fail_without
from tests.evals.conftest import ROOT, cli_summary
from tests.evals.test_acceptance import history  # noqa: F401 - the fixture
from tests.evals.test_repo import JSON_PACKAGE

SENTINEL = "<|rc:"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return build_completer(ModelSpec(model=str(tiny_model_dir)))


def _check(records: list[dict]) -> dict:
    """The tiny model is untrained: its scores are whatever they are, but they are scores,
    and no FIM sentinel ever reaches a completion."""
    assert records
    for record in records:
        assert SENTINEL not in record.get("completion", "")
        assert all(value is None or 0.0 <= value <= 1.0 for value in record["metrics"].values())
    return summarize(records)


@pytest.mark.slow
def test_fim_repo_coderag_on_the_tiny_model(tiny, make_args, tmp_path):
    args = make_args(subsets=["single_line", "random_span"], limit=1, timeout=10.0)
    table = _check(fim.run(fim.load(args), args, tiny, ResultLog(tmp_path / "fim.jsonl")))
    assert set(table) == {"single_line", "random_span"}

    args = make_args(root=JSON_PACKAGE, kinds=["cross_file", "rest_of_line"], languages=["python"],
                     settings=["none", "fused", "oracle"], sources=None, context_budget=256, max_tokens=16, limit=1,
                     run_dir=tmp_path / "repo")
    table = _check(repo.run(repo.load(args), args, tiny, ResultLog(tmp_path / "repo.jsonl")))
    assert "cross_file/oracle" in table

    args = make_args(tasks=["humaneval"], repo=None, retrievers=["fused"], generation=["none", "retrieved"],
                     retrieval_only=False, top_docs=2, timeout=10.0, limit=None, run_dir=tmp_path / "rag", max_tokens=24)
    tasks = [t for t in coderag.load(args) if t.gold][:1]
    table = _check(coderag.run(tasks, args, tiny, ResultLog(tmp_path / "rag.jsonl")))
    assert {"humaneval/generation:none", "humaneval/generation:retrieved", "humaneval/retrieval:fused"} <= set(table)


@pytest.mark.slow
def test_lowres_and_acceptance_on_the_tiny_model(tiny, make_args, tmp_path, history):  # noqa: F811
    skip_or_fail_without("Rscript")
    skip_or_fail_without("racket")
    args = make_args(languages=["r", "racket"], variants=["docs"], timeout=20.0, limit=1, max_tokens=24)
    table = _check(lowres.run(lowres.load(args), args, tiny, ResultLog(tmp_path / "lowres.jsonl")))
    assert set(table) == {"r/docs", "racket/docs"}

    repository, _ = history
    args = make_args(root=repository, commits=10, settings=["none"], languages=["python"], max_chars=60,
                     persistence=1, debounce_ms=75.0, char_ms=60.0, pause_ms=400.0, max_tokens=8, limit=1,
                     run_dir=tmp_path / "acc")
    records = acceptance.run(acceptance.load(args), args, tiny, ResultLog(tmp_path / "acc.jsonl"))
    assert records[0]["metrics"]["triggers"] >= records[0]["metrics"]["shown"] >= records[0]["metrics"]["accepted"]


@pytest.mark.slow
def test_cli_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCOMPLETE_FIM_ORDER", "spm")
    summary = cli_summary("fim", "--model", str(tiny_model_dir), "--limit", "1", "--subsets", "single_line",
                          "--out", str(tmp_path / "run"))
    assert summary["settings"]["single_line"]["n"] == 1
    assert summary["label"].endswith(str(tiny_model_dir))
    # The run records what answered: the FIM layout is set by config or environment, not the command.
    engine = summary["meta"]["engine"]
    assert engine["fim_order"] == "spm" and engine["template"]
    assert engine["backend"]["backend"] == "transformers"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``repocomplete serve --backend fake`` in a real process."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "serve", "--no-workspace", "--backend", "fake", "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start: " + Path(log.name).read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_server_mode_matches_the_in_process_engine(server, tmp_path):
    remote = cli_summary("fim", "--server", server, "--limit", "3", "--subsets", "single_line", "--out", str(tmp_path / "a"))
    local = cli_summary("fim", "--backend", "fake", "--limit", "3", "--subsets", "single_line", "--out", str(tmp_path / "b"))
    assert remote["label"] == f"server {server}"
    assert remote["settings"] == local["settings"]
    assert len((tmp_path / "a" / "samples.jsonl").read_text().splitlines()) == 3

    # Retrieved context travels to the server as client snippets.
    remote = cli_summary("repo", str(JSON_PACKAGE), "--server", server, "--limit", "1", "--kinds", "cross_file",
                         "--settings", "fused", "--out", str(tmp_path / "c"))
    assert remote["settings"]["cross_file/fused"]["n"] == 1
