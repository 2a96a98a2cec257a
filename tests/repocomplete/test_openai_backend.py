"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest

from repocomplete.backends import create_backend
from repocomplete.backends.base import GenerationRequest
from repocomplete.backends.openai import OpenAIBackend
from repocomplete.config import EngineConfig
from repocomplete.engine import Engine
from repocomplete.errors import BackendUnavailableError, ModelNotFoundError
from repocomplete.types import CompletionRequest, DebugOptions, Segments

from .fake_openai_server import FakeOpenAIServer


def backend_for(server: FakeOpenAIServer, **kwargs) -> OpenAIBackend:
    return OpenAIBackend(server.url, model=kwargs.pop("model", "tiny"), backoff_s=0.01, **kwargs)


def test_generate_sends_prompt_suffix_stop_and_key():
    with FakeOpenAIServer("sum(values)\n    x") as server:
        backend = backend_for(server, api_key="sekret")
        result = backend.generate(GenerationRequest(prompt="def f", suffix="\n", max_tokens=20, n=2, stop=["\n"], seed=3))
        assert result.texts == ["sum(values)", "sum(values)"] and result.prompt_tokens == 11
        sent = server.requests[-1]
        assert (sent["prompt"], sent["suffix"], sent["stop"], sent["n"], sent["seed"]) == ("def f", "\n", ["\n"], 2, 3)
        assert sent["authorization"] == "Bearer sekret"


def test_stream_yields_deltas_and_cuts_at_stop():
    with FakeOpenAIServer("alpha beta<|stop|>gamma") as server:
        deltas = list(backend_for(server).stream(GenerationRequest(prompt="p", max_tokens=50, stop=["<|stop|>"])))
        assert len(deltas) > 1 and "".join(deltas) == "alpha beta"
        assert server.requests[-1]["stream"] is True


def test_retries_5xx_then_succeeds():
    with FakeOpenAIServer("ok", fail_first=2) as server:
        backend = backend_for(server, max_retries=2)
        assert backend.generate(GenerationRequest(prompt="p")).texts == ["ok"] and server.attempts == 3


def test_gives_up_after_bounded_retries():
    with FakeOpenAIServer("ok", fail_first=10, fail_status=502) as server:
        with pytest.raises(BackendUnavailableError, match="HTTP 502; 3 attempts"):
            backend_for(server, max_retries=2).generate(GenerationRequest(prompt="p"))
        assert server.attempts == 3


def test_down_server_is_a_clear_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}", model="tiny", max_retries=1, backoff_s=0.01)
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError) as err:
        backend.generate(GenerationRequest(prompt="p"))
    assert f"127.0.0.1:{port}/v1 is unavailable" in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - start < 5


def test_unknown_remote_model_and_adapter_names():
    with FakeOpenAIServer("x") as server:
        with pytest.raises(ModelNotFoundError, match="does not exist"):
            backend_for(server, model="other").generate(GenerationRequest(prompt="p"))
        backend = backend_for(server)
        backend.load_adapter("my-lora", "/adapters/my-lora")
        backend.generate(GenerationRequest(prompt="p", adapter="my-lora"))
        assert server.requests[-1]["model"] == "my-lora"


def test_engine_over_openai_sends_suffix_separately_or_a_named_template():
    with FakeOpenAIServer("helper(1)\nrest") as server:
        config = EngineConfig(backend="openai", openai_url=server.url, openai_model="tiny", max_retries=0)
        engine = Engine.from_config(config)
        req = CompletionRequest(segments=Segments(prefix="x = ", suffix="\nprint(x)\n", filepath="a.py"),
                                debug_options=DebugOptions(return_prompt=True))
        result = engine.complete(req)
        assert result.choices[0].text == "helper(1)"
        assert server.requests[-1]["prompt"].endswith("x = ") and server.requests[-1]["suffix"] == "\nprint(x)\n"
        assert "".join(engine.stream(req)) == "helper(1)"

        qwen = Engine(create_backend(config), template="qwen", config=config)
        qwen.complete(req)
        assert "<|fim_prefix|>" in server.requests[-1]["prompt"] and "suffix" not in server.requests[-1]


QWEN_VOCAB = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
              "<|file_sep|>", "<|im_start|>", "<|im_end|>"}


def test_engine_over_openai_asks_the_engines_tokenizer_for_the_fim_template():
    """llama.cpp's and vLLM's /tokenize tell which FIM sentinels the served model has as single tokens:
    the template is detected, and the FIM prompt goes in `prompt` (neither engine does FIM from `suffix`)."""
    with FakeOpenAIServer("helper(1)<|fim_pad|>\nrest", vocab=QWEN_VOCAB) as server:
        config = EngineConfig(backend="openai", openai_url=server.url, openai_model="tiny", max_retries=0)
        engine = Engine.from_config(config)
        assert engine.template.name == "qwen"
        assert engine.backend.special_tokens() == QWEN_VOCAB & {t for t in server.tokenized}
        assert "asked http://127.0.0.1" in engine.backend.info()["tokenizer"]
        asked = len(server.tokenized)
        req = CompletionRequest(segments=Segments(prefix="x = ", suffix="\nprint(x)\n", filepath="a.py"))
        assert engine.complete(req).choices[0].text == "helper(1)"
        sent = server.requests[-1]
        assert sent["prompt"].endswith("<|fim_prefix|>x = <|fim_suffix|>\nprint(x)\n<|fim_middle|>")
        assert "suffix" not in sent and "<|fim_pad|>" in sent["stop"]
        assert len(server.tokenized) == asked, "the tokenizer is asked once, at start"


def test_a_named_template_the_remote_model_lacks_is_refused_at_start():
    from repocomplete.errors import TemplateMismatchError

    with FakeOpenAIServer("x", vocab=QWEN_VOCAB) as server:
        config = EngineConfig(backend="openai", openai_url=server.url, openai_model="tiny", template="starcoder")
        with pytest.raises(TemplateMismatchError, match="needs tokens the model lacks"):
            Engine.from_config(config)


def test_no_tokenizer_route_or_no_engine_leaves_the_suffix_to_the_engine():
    with FakeOpenAIServer("x") as server:  # no /tokenize (Ollama, transformers serve): 404
        backend = backend_for(server)
        assert backend.special_tokens() == set() and "HTTP 404: no tokenizer route" in backend.info()["tokenizer"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = OpenAIBackend(f"http://127.0.0.1:{port}", model="tiny")
    assert down.special_tokens() == set() and "could not be asked (ConnectError)" in down.info()["tokenizer"]
    assert OpenAIBackend(f"http://127.0.0.1:{port}", model="tiny", special_tokens={"<a>"}).special_tokens() == {"<a>"}


@pytest.mark.parametrize("status", [400, 500], ids=["vllm", "older-llama.cpp"])
def test_an_engine_refusing_suffix_is_told_to_name_the_template_without_retries(status):
    from repocomplete.errors import InvalidRequestError

    with FakeOpenAIServer("x", refuse_suffix=status) as server:
        with pytest.raises(InvalidRequestError, match=r"refuses OpenAI's `suffix` field .*--template NAME") as err:
            backend_for(server, max_retries=2).generate(GenerationRequest(prompt="p", suffix="\n"))
        assert server.attempts == 1 and "\n" not in str(err.value)
        assert backend_for(server).generate(GenerationRequest(prompt="p")).texts == ["x"]
