"""LoRA adapters served per request by one real server process (issue 23.3).

One uvicorn process holds the tiny base model and two random LoRA adapters (non-zero B, so
each changes the outputs); the request's ``adapter`` field (Tabby route) or ``model`` (OpenAI
route, as vLLM) chooses. With ``--backend openai`` the adapter name travels as the remote
engine's model name: what vLLM's ``--lora-modules name=path`` serves.
"""

from __future__ import annotations

import httpx
import pytest

from tests.repocomplete.conftest import make_lora_adapter
from tests.repocomplete.fake_openai_server import FakeOpenAIServer
from tests.tiny_model import build_tiny_model

PREFIX = "".join(f"value_{i} = compute({i})\n" for i in range(12)) + "def total(values):\n    "
BODY = {"language": "python", "segments": {"prefix": PREFIX, "suffix": "\n", "filepath": "calc.py"},
        "max_tokens": 12, "temperature": 0.0}
ADAPTERS = (None, "one", "two")


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("served-adapters")
    return {name: make_lora_adapter(tiny_model_dir, root / name, seed=seed) for name, seed in (("one", 11), ("two", 12))}


@pytest.fixture(scope="module")
def served(tiny_model_dir, adapters, tmp_path_factory):
    from tests.server.conftest import start_server

    server = start_server(tmp_path_factory.mktemp("lora-server"), "--backend", "transformers",
                          "--model", str(tiny_model_dir), *[f"--adapter={n}={p}" for n, p in adapters.items()],
                          wait_s=180)
    yield server
    server.stop()


def tabby(served, adapter: str | None) -> str:
    body = BODY if adapter is None else {**BODY, "adapter": adapter}
    response = httpx.post(f"{served.url}/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


def openai_route(served, model: str | None) -> str:
    body = {"prompt": PREFIX, "suffix": "\n", "max_tokens": 12, "temperature": 0.0}
    response = httpx.post(f"{served.url}/openai/v1/completions", json=body | ({"model": model} if model else {}), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


@pytest.mark.parametrize("route", [tabby, openai_route], ids=["tabby", "openai"])
def test_two_adapters_and_the_base_give_three_greedy_outputs_in_one_process(served, route):
    first = {name: route(served, name) for name in ADAPTERS}
    assert len(set(first.values())) == 3, first
    # interleaved again (each switch meets another adapter's KV cache entry): the same texts
    for name in ("two", None, "one", "one", None, "two"):
        assert route(served, name) == first[name], name


def test_health_lists_the_adapters_and_an_unknown_one_is_404(served):
    assert httpx.get(f"{served.url}/v1/health", timeout=10).json()["adapters"] == ["one", "two"]
    response = httpx.post(f"{served.url}/v1/completions", json={**BODY, "adapter": "three"}, timeout=30)
    assert response.status_code == 404 and response.json()["error"]["type"] == "adapter_error"
    models = [m["id"] for m in httpx.get(f"{served.url}/openai/v1/models", timeout=10).json()["data"]]
    assert {"one", "two"} <= set(models)


def test_an_adapter_for_another_base_is_refused_at_start_with_one_line(serve, tiny_model_dir, tmp_path):
    other = build_tiny_model(tmp_path / "wider", hidden_size=96)
    adapter = make_lora_adapter(other, tmp_path / "wider-adapter", seed=3)
    with pytest.raises(RuntimeError, match="exited") as raised:
        serve("--backend", "transformers", "--model", str(tiny_model_dir), f"--adapter=wider={adapter}", wait_s=120)
    output = str(raised.value)
    assert "wider-adapter" in output and ("another base model" in output or "trained for" in output)
    assert "Traceback" not in output


def test_openai_backend_sends_the_adapter_as_the_model_name(serve, tmp_path):
    """The vLLM multi-LoRA set-up of docs/finetuning.md, against a fake OpenAI-compatible engine."""
    with FakeOpenAIServer("return total\n") as engine:
        served = serve("--backend", "openai", "--openai-url", engine.url, "--model", "tiny",
                       "--adapter", f"my-lora={tmp_path}")
        assert tabby(served, "my-lora") and engine.requests[-1]["model"] == "my-lora"
        assert tabby(served, None) and engine.requests[-1]["model"] == "tiny"
        assert openai_route(served, "my-lora") and engine.requests[-1]["model"] == "my-lora"
