"""Stop-string scanning (golden cases) and the fake backend's contract."""

from __future__ import annotations

import threading

import pytest

from repocomplete.backends import create_backend
from repocomplete.backends.base import Backend, GenerationRequest
from repocomplete.backends.fake import FakeBackend
from repocomplete.backends.stopping import StopScanner
from repocomplete.postprocess import cut_at_stops
from repocomplete.config import EngineConfig
from repocomplete.errors import AdapterError


@pytest.mark.parametrize(
    ("deltas", "stops", "emitted", "stopped"),
    [
        (["ab", "c<|e", "nd|>tail"], ["<|end|>"], ["ab", "c", ""], True),
        (["x<", "y"], ["<|end|>"], ["x", "<y"], False),
        (["a\n", "b"], ["\n"], ["a"], True),
        (["hello wor", "ld"], ["world", "or"], ["hello w"], True),
        (["<|", "en"], ["<|end|>"], ["", ""], False),
    ],
)
def test_stop_scanner_golden(deltas, stops, emitted, stopped):
    scanner = StopScanner(stops)
    out = []
    for delta in deltas:
        out.append(scanner.feed(delta))
        if scanner.stopped:
            break
    assert out == emitted and scanner.stopped is stopped
    if not stopped:
        assert "".join(out) + scanner.flush() == "".join(deltas)


def test_cut_at_stops():
    assert cut_at_stops("foo<EOT>bar", ["bar", "<EOT>"]) == ("foo", True)
    assert cut_at_stops("foo<EOT>bar", ["<EOT>"]) == ("foo", True)
    assert cut_at_stops("foo", []) == ("foo", False)


def test_fake_backend_is_a_backend_and_counts_characters():
    backend = FakeBackend("abc")
    assert isinstance(backend, Backend)
    assert backend.count_tokens("hello") == 5 and "<|rc:middle|>" in backend.special_tokens()


def test_fake_generate_stream_stop_n_and_limits():
    backend = FakeBackend("one two<|rc:end|>three")
    result = backend.generate(GenerationRequest(prompt="p", n=2, stop=["<|rc:end|>"]))
    assert result.texts == ["one two", "one two"] and result.finish_reasons == ["stop", "stop"]
    assert "".join(backend.stream(GenerationRequest(prompt="p", stop=["<|rc:end|>"]))) == "one two"
    short = backend.generate(GenerationRequest(prompt="p", max_tokens=3))
    assert short.texts == ["one"] and short.finish_reasons == ["length"]


def test_fake_scripted_responses_rule_and_adapters(tmp_path):
    backend = FakeBackend("default", responses=["first", "second"])
    texts = [backend.generate(GenerationRequest(prompt="p")).texts[0] for _ in range(3)]
    assert texts == ["first", "second", "default"]
    echo = FakeBackend(rule=lambda prompt: prompt.upper())
    assert echo.generate(GenerationRequest(prompt="abc")).texts == ["ABC"]
    with pytest.raises(AdapterError):
        backend.load_adapter("x", str(tmp_path / "missing"))
    with pytest.raises(AdapterError, match="unknown adapter"):
        backend.generate(GenerationRequest(prompt="p", adapter="x"))


def test_fake_honours_cancel():
    cancel = threading.Event()
    backend = FakeBackend("z" * 1000, delay_s=0.002)
    threading.Timer(0.02, cancel.set).start()
    result = backend.generate(GenerationRequest(prompt="p", max_tokens=1000, cancel=cancel))
    assert result.finish_reasons == ["cancelled"] and 0 < len(result.texts[0]) < 1000


def test_create_backend_fake_from_config(tmp_path):
    backend = create_backend(EngineConfig(backend="fake", fake_text="hi", adapters={"a": str(tmp_path)}))
    assert backend.generate(GenerationRequest(prompt="p")).texts == ["hi"] and backend.adapters() == ["a"]
