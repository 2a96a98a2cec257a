"""``repocomplete index`` and ``repocomplete context`` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.indexer.stdlib_repos import copy_stdlib


def run(*args, env_extra=None, check_rc=None):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "repocomplete", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return copy_stdlib(root / "repo", "json"), root / "cache"


def test_index_prints_progress_and_a_summary(repo):
    path, cache = repo
    proc = run("index", str(path), "--cache-dir", str(cache), check_rc=0)
    assert "files: python" in proc.stdout and "symbols" in proc.stdout and "chunks" in proc.stdout
    assert "indexing" in proc.stderr and "MB" in proc.stderr
    again = json.loads(run("index", str(path), "--cache-dir", str(cache), "--json", check_rc=0).stdout)
    assert again["files_indexed"] == 0
    assert again["files_unchanged"] == again["files_by_language"]["python"] == len(list(path.rglob("*.py")))
    assert again["symbols"] > 50 and again["chunks"] > 100
    assert again["database"].startswith(str(cache))


def test_context_prints_snippets_with_source_and_score(repo):
    path, cache = repo
    text = (path / "json" / "__init__.py").read_text().split("\n")
    line = next(i for i, s in enumerate(text, 1) if "_default_decoder.decode(" in s)
    col = text[line - 1].index("decode(") + 1
    args = ["context", str(path / "json" / "__init__.py"), "--line", str(line), "--col", str(col),
            "--cache-dir", str(cache)]
    data = json.loads(run(*args, "--json", check_rc=0).stdout)
    assert data["file"] == "json/__init__.py" and data["line"] == line
    snippets = data["snippets"]
    assert snippets and all({"source", "score", "filepath", "start_line", "body"} <= set(s) for s in snippets)
    assert any(s["filepath"] == "json/decoder.py" for s in snippets)
    human = run(*args, "--sources", "definition", check_rc=0).stdout
    assert "definition" in human and "score=" in human and "json/decoder.py:" in human
    only = json.loads(run(*args, "--sources", "bm25", "--json", check_rc=0).stdout)["snippets"]
    assert only and {s["source"] for s in only} == {"bm25"}


@pytest.mark.parametrize("case", ["not_a_dir", "line_outside", "col_outside", "outside_workspace",
                                  "bad_source", "missing_file"])
def test_bad_input_is_one_line_and_exit_2(repo, tmp_path, case):
    path, cache = repo
    target = str(path / "json" / "tool.py")
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    args = {
        "not_a_dir": ["index", target, "--cache-dir", str(cache)],
        "line_outside": ["context", target, "--line", "9999", "--cache-dir", str(cache)],
        "col_outside": ["context", target, "--line", "1", "--col", "500", "--cache-dir", str(cache)],
        "outside_workspace": ["context", str(tmp_path / "elsewhere.py"), "--line", "1",
                              "--workspace", str(path), "--cache-dir", str(cache)],
        "bad_source": ["context", target, "--line", "1", "--sources", "nope", "--cache-dir", str(cache)],
        "missing_file": ["context", str(path / "nope.py"), "--line", "1", "--cache-dir", str(cache)],
    }[case]
    proc = run(*args, check_rc=2)
    lines = proc.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_watch_reindexes_changed_files(repo):
    path, cache = repo
    proc = subprocess.Popen([sys.executable, "-m", "repocomplete", "index", str(path), "--cache-dir", str(cache),
                             "--watch", "--interval", "0.2", "--json"], stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["files_indexed"] == 0 or first["files_unchanged"] >= 0
        time.sleep(0.3)
        (path / "json" / "watched.py").write_text("def appeared_while_watching():\n    return 1\n")
        second = json.loads(proc.stdout.readline())
        assert second["files_indexed"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        (path / "json" / "watched.py").unlink(missing_ok=True)


def test_planted_secret_variants_reach_neither_the_store_nor_the_context_output(tmp_path):
    """Issue 21.8 as the review did it: realistic secrets planted in a repository, then
    ``repocomplete index`` and ``repocomplete context`` at a cursor that retrieves them."""
    from indexer.workspace import Workspace
    from tests.indexer.test_secrets import AWS_ID, DOCKER_AUTH, FERNET, HMAC_HEX, KUBE_KEY, SLACK_HOOK

    planted = {
        "FERNET": FERNET, "HMAC": HMAC_HEX, "JWT": "q8Zr3Lx0Vb7Nm2Kt5Wp9Yc4Hd6Js1Fg", "DB": "hunter22",
        "API": "k9x2m4q7", "SLACK": SLACK_HOOK.split("services/")[1], "DOCKER": DOCKER_AUTH,
        "KUBE": KUBE_KEY[20:], "AWS": AWS_ID[4:],
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "settings.py").write_text(
        f'FERNET_KEY = "{FERNET}"\nHMAC_KEY = "{HMAC_HEX}"\nJWT_SIGNING_KEY = "{planted["JWT"]}"\n'
        f'DB_PASS = "{planted["DB"]}"\napi_key = "{planted["API"]}"\nSLACK_WEBHOOK = "{SLACK_HOOK}"\n'
        f'DOCKER_CONFIG = {{"auths": {{"registry.example.com": {{"auth": "{DOCKER_AUTH}"}}}}}}\n'
        f'KUBECONFIG = """\nusers:\n- user:\n    client-key-data: {KUBE_KEY}\n"""\n'
        f'AWS_IDS = "primary{AWS_ID}backup"\n\n\ndef connect_to_services():\n    return FERNET_KEY, HMAC_KEY, DB_PASS\n')
    (repo / "app.py").write_text("from settings import FERNET_KEY, HMAC_KEY, DB_PASS, api_key\n\n\n"
                                 "def start():\n    keys = connect_to_services()\n    return keys\n")
    cache = tmp_path / "cache"
    run("index", str(repo), "--cache-dir", str(cache), check_rc=0)
    context = run("context", str(repo / "app.py"), "--line", "5", "--col", "12", "--cache-dir", str(cache),
                  "--json", "--sources", "import,definition,bm25,jaccard,sibling,similar_name", check_rc=0).stdout
    assert "settings.py" in context, "the cursor must retrieve the planted file, or the test proves nothing"
    with Workspace(repo, cache_dir=cache) as index:
        stored = "\n".join(row[0] for row in index.store.conn.execute("SELECT body FROM chunks"))
    assert "FERNET_KEY" in stored
    for name, secret in planted.items():
        assert secret not in stored, f"{name} reached the store"
        assert secret not in context, f"{name} reached the context output"
