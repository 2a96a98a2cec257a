"""The engine end to end on a real (tiny, random) transformers model."""

from __future__ import annotations

import pytest

from repocomplete.config import EngineConfig
from repocomplete.engine import Engine
from repocomplete.errors import TemplateMismatchError
from repocomplete.types import CompletionRequest, DebugOptions, Segments


def test_random_model_never_leaks_special_tokens(tiny_backend):
    """An untrained model emits sentinels all the time; none may reach the user."""
    engine = Engine(tiny_backend)
    specials = tiny_backend.special_tokens()
    prefixes = ["def f(x):\n    ", "class A:\n    def m(self):\n        return "]
    for i, prefix in enumerate(prefixes):
        for mode in ("line", "multiline"):
            req = CompletionRequest(segments=Segments(prefix=prefix, suffix="\n", filepath="a.py"), mode=mode,
                                    max_tokens=16, temperature=1.0, seed=i, n=2,
                                    debug_options=DebugOptions(return_prompt=True))
            result = engine.complete(req)
            assert result.prompt.endswith("<|rc:middle|>")
            for choice in result.choices:
                assert not any(token in choice.text for token in specials), choice.text
            streamed = "".join(engine.stream(req))
            assert not any(token in streamed for token in specials)


def test_stream_equals_complete_on_a_real_model(tiny_backend):
    engine = Engine(tiny_backend)
    for prefix in ("def f(x):\n    ", "import os\nvalue = "):
        req = CompletionRequest(segments=Segments(prefix=prefix, suffix="", filepath="a.py"), max_tokens=16,
                                mode="multiline")
        assert "".join(engine.stream(req)) == engine.complete(req).choices[0].text


def test_from_config_and_template_detection(tiny_model_dir, tiny_model_for):
    engine = Engine.from_config(EngineConfig(model=str(tiny_model_dir)))
    assert engine.template.name == "repocomplete" and "tiny untrained" in engine.info()["model_label"]
    starcoder = Engine.from_config(EngineConfig(model=str(tiny_model_for("starcoder"))))
    assert starcoder.template.name == "starcoder"
    result = starcoder.complete(CompletionRequest(segments=Segments(prefix="x = ", filepath="a.py"),
                                                  debug_options=DebugOptions(return_prompt=True)))
    assert "<fim_prefix>" in result.prompt and result.usage.prompt_tokens > 0
    with pytest.raises(TemplateMismatchError):
        Engine.from_config(EngineConfig(model=str(tiny_model_dir), template="deepseek"))
