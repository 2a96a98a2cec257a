"""The completion contract on the wire: one definition, both directions, golden cases."""

from __future__ import annotations

import dataclasses

from indexer.types import Snippet
from repocomplete.types import (
    Choice,
    ClientSnippet,
    CompletionRequest,
    CompletionResult,
    DebugOptions,
    Declaration,
    Segments,
    Timings,
)
from repocomplete.wire import LOCAL_ONLY, request_from_json, request_to_json, result_from_json, result_to_json


def full_request() -> CompletionRequest:
    """Every field set to something other than its default."""
    return CompletionRequest(
        segments=Segments(prefix="def f(x):\n    return ", suffix="\n", filepath="pkg/mod.py", git_url="git@host:r.git",
                          declarations=[Declaration("pkg/a.py", "def a(): ...")],
                          snippets=[ClientSnippet("pkg/b.py", "B = 2", 0.5)], clipboard="clip"),
        language="python", workspace="repo", adapter="lora", max_tokens=17, temperature=0.4, top_p=0.9, n=3,
        seed=7, mode="multiline", stop=["\n\n"], sources=["bm25", "client"],
        debug_options=DebugOptions(return_prompt=True, return_snippets=True, disable_retrieval=True),
    )


def wire_fields(request: CompletionRequest) -> dict:
    local = dict.fromkeys(LOCAL_ONLY)  # (a threading.Event cannot be copied by asdict)
    return {k: v for k, v in dataclasses.asdict(dataclasses.replace(request, **local)).items() if k not in LOCAL_ONLY}


def test_a_request_survives_the_wire_field_for_field():
    request = full_request()
    assert wire_fields(request_from_json(request_to_json(request))) == wire_fields(request)
    assert wire_fields(request_from_json(request_to_json(CompletionRequest(Segments("x"))))) == \
        wire_fields(CompletionRequest(Segments("x")))


def test_every_request_field_travels_or_is_declared_local():
    body = request_to_json(full_request())
    travelling = set(body) | set(body["segments"]) | set(body["debug_options"])
    for cls in (CompletionRequest, Segments, DebugOptions):
        missing = {f.name for f in dataclasses.fields(cls)} - travelling - LOCAL_ONLY - {"segments", "debug_options"}
        assert not missing, f"{cls.__name__} fields not on the wire: {missing}"


def test_tabby_names_decode_onto_ours():
    body = {"segments": {"prefix": "p", "relevant_snippets_from_changed_files": [{"filepath": "a", "body": "A"}],
                         "relevant_snippets_from_recently_opened_files": [{"filepath": "b", "body": "B", "score": 1}]},
            "debug_options": {"disable_retrieval_augmented_code_completion": True}}
    request = request_from_json(body)
    assert [(s.filepath, s.body, s.score) for s in request.segments.snippets] == [("a", "A", 0.0), ("b", "B", 1)]
    assert request.debug_options.disable_retrieval and request.max_tokens == 64
    raw = request_from_json({"segments": {"prefix": "ignored"}, "debug_options": {"raw_prompt": "RAW"}})
    assert raw.segments.prefix == "RAW" and raw.debug_options.raw_prompt


def test_a_result_survives_the_wire():
    result = CompletionResult(id="cmpl-1", choices=[Choice(0, "a"), Choice(1, "b", "length")], model="m",
                              timings=Timings(1.0, 2.0, 3.0, 6.0), prompt="PROMPT",
                              snippets=[Snippet("a.py", "A", "bm25", 0.5, 1, 3)])
    back = result_from_json(result_to_json(result))
    assert back.choices == result.choices and back.timings == result.timings and back.prompt == "PROMPT"
    assert [(s.filepath, s.body, s.source, s.score, s.start_line, s.end_line) for s in back.snippets] == \
        [("a.py", "A", "bm25", 0.5, 1, 3)]
    plain = result_to_json(dataclasses.replace(result, prompt=None, snippets=None))
    assert "debug_data" not in plain and result_from_json(plain).snippets is None


def test_the_http_schema_accepts_every_field_the_wire_sends():
    from server.schemas import CompletionIn

    body = request_to_json(full_request())
    validated = CompletionIn.model_validate(body).model_dump(exclude_none=True)
    assert wire_fields(request_from_json(validated)) == wire_fields(full_request())
