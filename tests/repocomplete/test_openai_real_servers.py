"""The ``openai`` backend against real third-party OpenAI-compatible engines: separate processes, over HTTP.

The rest of the suite talks to our own stand-in (fake_openai_server.py); these tests run the engines
users deploy, with their real ``/v1/completions``, through ``repocomplete complete`` and
``repocomplete serve`` as subprocesses:

- Hugging Face ``transformers serve`` (transformers 5.x, already in the test lock) on a tiny model built
  from config: greedy completions through it equal the in-process transformers backend's on the same
  weights, word for word, JSON and streamed. Always runs (about half a minute).
- llama.cpp's ``llama-server`` running the real Qwen2.5-Coder-0.5B GGUF (pulled from the package index,
  sha256-verified): the completion of a HumanEval single-line infilling task passes HumanEval's tests.
  Needs the binary: ``scripts/build_llama_server.sh`` builds it (CI does, and sets
  REPOCOMPLETE_LLAMA_SERVER); skipped with that instruction when it is absent.

Neither engine does fill-in-the-middle from the legacy ``suffix`` field (transformers serve appends the
suffix to its answer; llama.cpp's OpenAI route ignores it), so the FIM prompt goes in ``prompt``,
formatted by us: llama-server's ``/tokenize`` tells the backend the model's FIM tokens (the template is
detected); transformers serve has no such route, so the template is named (``--template qwen``).
docs/run.md (On a GPU) says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import ProcessTracker, timeout, wait_for
from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
#: Where a CI build (scripts/build_llama_server.sh) put llama-server; PATH is searched when unset.
LLAMA_SERVER_ENV = "REPOCOMPLETE_LLAMA_SERVER"
#: Greedy Qwen2.5-Coder-0.5B (Q4_K_M) fills this hole correctly: gcd's loop body, using the suffix's `return a`.
HUMANEVAL_TASK = "SingleLineInfilling/HumanEval/13/L1"
#: A cursor in the middle of a function, with code after it: the suffix matters.
SOURCE = "def scale(values, factor):\n    result = []\n    for value in values:\n        \n    return result\n"
CURSOR = {"line": 4, "col": 9}
#: A CPU engine on a loaded 2-core machine may take longer than the default 30 s for one request.
SLOW_ENGINE = {"REPOCOMPLETE_REQUEST_TIMEOUT_S": str(timeout(300))}


@pytest.fixture
def serve(tmp_path):
    """``serve(*args)`` -> a running ``repocomplete serve`` (tests/server's helper); all stopped after the test."""
    from tests.server.conftest import start_server

    started = []
    yield lambda *args: started.append(start_server(tmp_path, *args, env=SLOW_ENGINE, wait_s=120)) or started[-1]
    for served in started:
        served.stop()


class EngineProcess:
    """A third-party engine process, started and health-polled; its whole process tree is killed at close."""

    def __init__(self, cmd: list[str], *, port: int, health: str, log: Path, what: str, seconds: float) -> None:
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log = log
        self._tracker = ProcessTracker()
        with open(log, "wb") as out:
            self.proc = self._tracker.popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            wait_for(lambda: self._ready(f"http://127.0.0.1:{port}{health}", what), seconds, f"{what} to load its model")
        except BaseException:
            self.close()
            raise

    def _ready(self, health: str, what: str) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
        try:
            return httpx.get(health, timeout=2).status_code == 200  # llama-server: 503 while loading
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self._tracker.close()


def complete_cli(path: Path, line: int, col: int, *args: str, seconds: float = 600) -> dict:
    """``repocomplete complete FILE --json --show-prompt`` as a user runs it -> its JSON reply."""
    done = subprocess.run([sys.executable, "-m", "repocomplete", "complete", str(path), "--line", str(line),
                           "--col", str(col), "--no-workspace", "--json", "--show-prompt", *args],
                          cwd=ROOT, env={**os.environ, **SLOW_ENGINE, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=seconds)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def tabby_request(served, prefix: str, suffix: str, *, stream: bool, max_tokens: int, mode: str = "auto") -> str:
    """One completion from ``repocomplete serve``'s /v1/completions; a stream's deltas are joined."""
    body = {"language": "python", "segments": {"prefix": prefix, "suffix": suffix, "filepath": "m.py"},
            "max_tokens": max_tokens, "temperature": 0.0, "mode": mode, "stream": stream}
    if not stream:
        response = httpx.post(f"{served.url}/v1/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["text"]
    pieces = []
    with httpx.stream("POST", f"{served.url}/v1/completions", json=body, timeout=300) as response:
        assert response.status_code == 200, response.read().decode()
        for line in response.iter_lines():
            data = line.removeprefix("data:").strip()
            if data and data != "[DONE]":
                pieces += [choice["text"] for choice in json.loads(data)["choices"]]
    assert len(pieces) > 1, "the stream came in one piece"
    return "".join(pieces)


# -- transformers serve: a tiny model, greedy, compared word for word -----------------------------------


@pytest.fixture(scope="module")
def transformers_serve(tiny_model_for, tmp_path_factory):
    """``transformers serve MODEL`` (the model preloaded) on a free port, until the module's tests end."""
    pytest.importorskip("torch", reason="transformers serve runs the model with torch")
    model = tiny_model_for("qwen")
    port = free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu"]
    engine = EngineProcess(cmd, port=port, health="/health", log=log, what="transformers serve", seconds=240)
    yield engine, model
    engine.close()


@pytest.fixture(scope="module")
def in_process_reference(transformers_serve, tmp_path_factory):
    """The same completion from the in-process transformers backend, on the same weights: the answer to match."""
    _, model = transformers_serve
    source = tmp_path_factory.mktemp("reference") / "m.py"
    source.write_text(SOURCE)
    reply = complete_cli(source, CURSOR["line"], CURSOR["col"], "--model", str(model), "--max-tokens", "12")
    assert reply["template"] == "qwen" and reply["text"], reply
    return reply


def test_complete_through_transformers_serve_equals_the_in_process_backend(transformers_serve, in_process_reference,
                                                                           tmp_path):
    engine, model = transformers_serve
    source = tmp_path / "m.py"
    source.write_text(SOURCE)
    reply = complete_cli(source, CURSOR["line"], CURSOR["col"], "--backend", "openai", "--openai-url", engine.url,
                         "--model", str(model), "--template", "qwen", "--max-tokens", "12")
    # the FIM prompt (Qwen's control tokens, prefix-suffix-middle) went in `prompt`, and the engine parsed them
    assert reply["prompt"] == in_process_reference["prompt"] and "<|fim_suffix|>" in reply["prompt"]
    assert reply["usage"]["prompt_tokens"] < len(reply["prompt"]) / 2, "the engine's own token count"
    assert reply["text"] == in_process_reference["text"]
    assert "POST /v1/completions" in engine.output()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_serve_over_transformers_serve_equals_the_in_process_backend(transformers_serve, in_process_reference,
                                                                     stream, serve):
    engine, model = transformers_serve
    served = serve("--backend", "openai", "--openai-url", engine.url, "--model", str(model), "--template", "qwen")
    prefix, _, rest = SOURCE.partition("for value in values:\n        ")
    text = tabby_request(served, prefix + "for value in values:\n        ", rest, stream=stream, max_tokens=12)
    assert text == in_process_reference["text"]


# -- llama.cpp's llama-server: the real 0.5B, a HumanEval task executed ---------------------------------


def llama_server_binary() -> str:
    """llama-server from REPOCOMPLETE_LLAMA_SERVER or PATH; skip (with how to build it) when there is none."""
    named = os.environ.get(LLAMA_SERVER_ENV)
    if named:
        assert os.access(named, os.X_OK), f"{LLAMA_SERVER_ENV}={named} is not an executable file"
        return str(Path(named).resolve())  # the engine starts in its own folder
    found = shutil.which("llama-server")
    if found is None:
        pytest.skip(f"llama.cpp's llama-server is not installed: build it with scripts/build_llama_server.sh "
                    f"and set {LLAMA_SERVER_ENV}=build/llama.cpp/bin/llama-server (.ci/run does)")
    return found


@pytest.fixture(scope="module")
def llama_server(request, tmp_path_factory):
    """``llama-server`` serving the pulled Qwen2.5-Coder-0.5B GGUF under its catalogue name."""
    binary = llama_server_binary()  # first: without the binary, nothing is downloaded
    gguf = request.getfixturevalue("pulled_05b").gguf("qwen2.5-coder-0.5b")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [binary, "--model", str(gguf), "--alias", "qwen2.5-coder-0.5b", "--host", "127.0.0.1", "--port", str(port),
           "--ctx-size", "4096", "--parallel", "1", "--threads", "2"]
    engine = EngineProcess(cmd, port=port, health="/health", log=log, what="llama-server", seconds=180)
    yield engine
    engine.close()


@pytest.fixture
def humaneval_hole(tmp_path):
    """HumanEval/13 L1 as a user sees it: the cursor on an empty line between the code before and after the hole."""
    from evals.humaneval import load_infilling

    task = next(t for t in load_infilling("single_line") if t.task_id == HUMANEVAL_TASK)
    source = tmp_path / "gcd.py"
    source.write_text(task.prefix + "\n" + task.suffix)
    return task, source, task.prefix.count("\n") + 1


def passes_humaneval(task, text: str):
    from evals.humaneval import python_program
    from evals.sandbox import run_python

    completed = task.prefix + text.rstrip("\n") + "\n" + task.suffix
    return run_python(python_program(completed, task.test, task.entry_point))


@pytest.mark.slow
def test_llama_server_real_05b_completes_a_humaneval_line_through_complete_and_serve(llama_server, humaneval_hole,
                                                                                      serve):
    task, source, line = humaneval_hole
    # no --template: the backend asks llama-server's /tokenize which FIM tokens the model has
    reply = complete_cli(source, line, 1, "--backend", "openai", "--openai-url", llama_server.url,
                         "--model", "qwen2.5-coder-0.5b", "--mode", "line", "--max-tokens", "32")
    assert reply["template"] == "qwen" and reply["prompt"].endswith("<|fim_middle|>")
    # llama.cpp counted the prompt with the model's own tokenizer: Qwen's FIM markers are one token each
    assert 0 < reply["usage"]["prompt_tokens"] < len(reply["prompt"]) / 2
    result = passes_humaneval(task, reply["text"])
    assert result.passed, f"{reply['text']!r} fails HumanEval's tests: {result.status} {result.stderr[-500:]}"

    # the team set-up: `repocomplete serve` in front of the engine, an editor's streamed request
    served = serve("--backend", "openai", "--openai-url", llama_server.url, "--model", "qwen2.5-coder-0.5b")
    prefix, suffix = task.prefix, "\n" + task.suffix
    streamed = tabby_request(served, prefix, suffix, stream=True, max_tokens=32, mode="line")
    assert streamed == reply["text"]


@pytest.mark.slow
def test_llama_server_tokenizer_tells_the_fim_template(llama_server):
    """Why the template is asked of the engine: llama.cpp's OpenAI route ignores `suffix` (the model would
    see only the prefix), so the FIM prompt must go in `prompt`, in the served model's own markers."""
    from repocomplete.backends.openai import OpenAIBackend
    from repocomplete.fim import detect_template

    detected = OpenAIBackend(llama_server.url, model="qwen2.5-coder-0.5b").special_tokens()
    assert {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>", "<|endoftext|>"} <= detected
    assert not detected & {"<fim_prefix>", "<PRE>", "[PREFIX]"}, "another family's markers are not one token"
    assert detect_template(detected).name == "qwen"
