"""`repocomplete complete` as a user runs it: a real subprocess, real files, a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "import os\n\n\ndef join_all(parts):\n    return os.path.join(*parts)\n"


def run(*args: str, env_extra: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    env.pop("REPOCOMPLETE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "repocomplete", "complete", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def source_file(tmp_path) -> Path:
    path = tmp_path / "proj" / "paths.py"
    path.parent.mkdir()
    path.write_text(SOURCE)
    (tmp_path / "proj" / "helpers.py").write_text("def make_parts(root):\n    return [root, 'a', 'b']\n")
    return path


def test_complete_json_with_prompt_on_the_tiny_model(tiny_model_dir, source_file):
    out = run(str(source_file), "--line", "5", "--col", "11", "--model", str(tiny_model_dir), "--max-tokens", "8",
              "--json", "--show-prompt", "--workspace", str(source_file.parent),
              env_extra={"REPOCOMPLETE_CACHE_DIR": str(source_file.parent.parent / "cache")})
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["id"].startswith("cmpl-") and payload["template"] == "repocomplete"
    assert payload["timings"]["total_ms"] > 0 and "tiny untrained" in payload["model_label"]
    prompt = payload["prompt"]
    assert "<|rc:prefix|>import os\n\n\ndef join_all(parts):\n    return<|rc:suffix|> os.path.join(*parts)\n" in prompt
    assert "<|rc:file|>paths.py\n" in prompt and prompt.startswith("<|rc:repo|>proj\n")
    assert not any(t in payload["text"] for t in ("<|rc:", "<|rc:end|>"))


def test_plain_output_on_the_fake_backend(source_file):
    out = run(str(source_file), "--line", "5", "--col", "5", "--backend", "fake", "--show-prompt",
              env_extra={"REPOCOMPLETE_FAKE_TEXT": "return 42\n"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("--- completion ---\nreturn 42")


def test_missing_model_path(source_file, tmp_path):
    out = run(str(source_file), "--line", "1", "--col", "1", "--model", str(tmp_path / "no-such-model"))
    assert_one_line_error(out, "no-such-model")


def test_forcing_a_template_the_model_lacks(source_file, tiny_model_dir):
    out = run(str(source_file), "--line", "1", "--col", "1", "--model", str(tiny_model_dir), "--template", "starcoder")
    assert_one_line_error(out, "starcoder", "<fim_prefix>")


@pytest.mark.parametrize(
    ("content", "line", "col", "needle"),
    [(b"", 1, 1, "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\x00", 1, 1, "binary"), (b"\xff\xfe bad utf8", 1, 1, "binary"),
     (SOURCE.encode(), 99, 1, "line 99 is outside"), (SOURCE.encode(), 4, 40, "column 40 is outside"),
     (SOURCE.encode(), 0, 1, "line 0"), (SOURCE.encode(), 1, 0, "column 0")],
)
def test_bad_files_and_positions(tmp_path, content, line, col, needle):
    path = tmp_path / "input.py"
    path.write_bytes(content)
    out = run(str(path), "--line", str(line), "--col", str(col), "--backend", "fake")
    assert_one_line_error(out, needle)


def test_missing_file(tmp_path):
    assert_one_line_error(run(str(tmp_path / "nope.py"), "--line", "1", "--col", "1"), "no such file")


@pytest.mark.slow
def test_adapter_for_another_base_model(source_file, tiny_model_dir, tmp_path):
    from tests.tiny_model import build_tiny_model

    from .conftest import make_lora_adapter

    other = build_tiny_model(tmp_path / "other-base", hidden_size=96)
    adapter = make_lora_adapter(other, tmp_path / "other-adapter", seed=1)
    out = run(str(source_file), "--line", "1", "--col", "1", "--model", str(tiny_model_dir), "--adapter", str(adapter))
    assert_one_line_error(out, "other-adapter")


def test_help_lists_the_options():
    out = run("--help")
    assert out.returncode == 0
    for option in ("--line", "--col", "--model", "--adapter", "--workspace", "--json", "--show-prompt", "--template"):
        assert option in out.stdout


def test_openai_backend_down_and_up(source_file):
    import socket

    from .fake_openai_server import FakeOpenAIServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = (str(source_file), "--line", "5", "--col", "11", "--backend", "openai")
    down = run(*args, "--openai-url", f"http://127.0.0.1:{port}/v1", env_extra={"REPOCOMPLETE_MAX_RETRIES": "1"})
    assert_one_line_error(down, "unavailable", str(port))
    with FakeOpenAIServer("os.path.join(*parts)\nmore") as server:
        up = run(*args, "--openai-url", server.url, "--json", env_extra={"REPOCOMPLETE_OPENAI_MODEL": "tiny"})
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["text"] == "os.path.join(*parts)"
        assert server.requests[-1]["suffix"] == " os.path.join(*parts)\n"


def test_the_files_git_repository_is_the_workspace_unless_told_otherwise(source_file):
    """Like `context`: no --workspace needed inside a git repository; --no-workspace turns retrieval off."""
    (source_file.parent / ".git").mkdir()
    source_file.write_text("import os\n\nparts = make_parts(root)\n\n\ndef join_all(parts):\n    return os.path.join(*parts)\n")
    env = {"REPOCOMPLETE_FAKE_TEXT": "return 42\n", "REPOCOMPLETE_CACHE_DIR": str(source_file.parent.parent / "cache")}
    found = run(str(source_file), "--line", "7", "--col", "5", "--backend", "fake", "--json", env_extra=env)
    assert found.returncode == 0, found.stderr
    assert "loading model default ..." in found.stderr.splitlines()[0]
    snippets = json.loads(found.stdout)["snippets"]
    assert any(s["filepath"] == "helpers.py" and "def make_parts" in s["body"] for s in snippets), snippets
    alone = run(str(source_file), "--line", "7", "--col", "5", "--backend", "fake", "--json", "--no-workspace", env_extra=env)
    assert alone.returncode == 0 and not any(s["filepath"] == "helpers.py" for s in json.loads(alone.stdout)["snippets"])


@pytest.mark.slow
def test_adapter_changes_the_completion(source_file, tiny_model_dir, lora_adapters, tmp_path):
    """`complete --adapter` applies the LoRA (issue 23.3): each adapter, and none, its own greedy text."""
    def text(*adapter: str) -> str:
        out = run(str(source_file), "--line", "5", "--col", "11", "--model", str(tiny_model_dir), "--max-tokens", "12",
                  "--mode", "multiline", "--no-workspace", "--json", *adapter,
                  env_extra={"REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")})
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["text"]

    texts = {name: text(*(["--adapter", f"{name}={lora_adapters[name]}"] if name else [])) for name in (None, "one", "two")}
    assert len(set(texts.values())) == 3, texts
    assert text("--adapter", str(lora_adapters["one"])) == texts["one"]  # a bare directory works too
