"""The official ``openai`` client against ``/openai/v1`` of a real server (with a token)."""

from __future__ import annotations

import openai
import pytest

from tests.server.conftest import FAKE_TEXT
from tests.server.test_http import in_process_text

TOKEN = "openai-client-token"
PREFIX = "def add_offset(values, offset):\n    total = sum(values)\n    "


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tests.server.conftest import start_server

    adapter = tmp_path_factory.mktemp("adapter")
    served = start_server(tmp_path_factory.mktemp("openai"), "--adapter", f"myrepo={adapter}",
                          env={"REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT}, token=TOKEN)
    yield openai.OpenAI(base_url=f"{served.url}/openai/v1", api_key=TOKEN, max_retries=0)
    served.stop()


def test_plain_completion(client):
    completion = client.completions.create(model="default", prompt=PREFIX, suffix="\n", max_tokens=32)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == in_process_text(PREFIX)
    assert completion.usage.completion_tokens > 0


def test_streaming_completion_adds_up(client):
    stream = client.completions.create(model="default", prompt=PREFIX, suffix="\n", max_tokens=32, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].text for c in chunks) == in_process_text(PREFIX)


def test_stop_and_n(client):
    completion = client.completions.create(model="default", prompt=PREFIX, max_tokens=32, n=2, stop=["+"])
    assert [c.index for c in completion.choices] == [0, 1]
    assert all("+" not in c.text for c in completion.choices)


def test_models_lists_the_model_and_adapters(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "fake" and "myrepo" in ids
    assert client.completions.create(model="myrepo", prompt=PREFIX, max_tokens=8).choices[0].text


def test_wrong_key_is_an_authentication_error(client):
    bad = openai.OpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="default", prompt="x", max_tokens=4)


def test_an_unknown_model_is_404_model_not_found_like_vllm(client):
    """Issue 24.7: "gpt-4" was served silently by the local model."""
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="gpt-4", prompt=PREFIX, max_tokens=8)
    assert raised.value.status_code == 404
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    assert "gpt-4" in raised.value.message
    for name in ("fake", "default", "myrepo"):  # the served model's names and the adapters still work
        assert client.completions.create(model=name, prompt=PREFIX, max_tokens=8).choices[0].text
