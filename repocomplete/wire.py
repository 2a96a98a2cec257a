"""The completion request and response on the wire (DESIGN.md's contract), defined once.

JSON objects <-> the engine's dataclasses (:mod:`repocomplete.types`). Every encoder and
decoder of ``POST /v1/completions`` uses these four functions: the server decodes validated
bodies with :func:`request_from_json` and encodes answers with :func:`result_to_json`; the
language server's and the evals' HTTP clients encode with :func:`request_to_json` and decode
replies with :func:`result_from_json`. So a request crosses HTTP field for field, exactly as
it would reach the engine in-process.

Decoding accepts Tabby's names too (``relevant_snippets_from_changed_files``,
``relevant_snippets_from_recently_opened_files``, ``disable_retrieval_augmented_code_completion``,
a string ``raw_prompt``). It checks no ranges: the HTTP schema (``server/schemas.py``) and
the engine's validation do.

To add a field: add it to the dataclass in ``repocomplete/types.py``, to both directions
here, and to ``server/schemas.py``'s ``CompletionIn``; ``tests/repocomplete/test_wire.py``
fails until the three agree.
"""

from __future__ import annotations

from typing import Any

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
    Usage,
)

#: Request fields that travel as-is (scalars and lists of strings), in the dataclass's order.
_SCALARS = ("language", "workspace", "adapter", "max_tokens", "temperature", "top_p", "n", "seed", "mode",
            "stop", "sources")
#: Tabby's extra names for client-side snippets.
_TABBY_SNIPPET_LISTS = ("relevant_snippets_from_changed_files", "relevant_snippets_from_recently_opened_files")
#: Dataclass fields that never travel: a threading.Event set by the front-end.
LOCAL_ONLY = frozenset({"cancel"})


def request_to_json(request: CompletionRequest) -> dict[str, Any]:
    """The ``/v1/completions`` body for ``request``: every field, None values left out."""
    seg = request.segments
    segments: dict[str, Any] = {
        "prefix": seg.prefix,
        "suffix": seg.suffix,
        "filepath": seg.filepath,
        "git_url": seg.git_url,
        "declarations": [{"filepath": d.filepath, "body": d.body} for d in seg.declarations],
        "snippets": [{"filepath": s.filepath, "body": s.body, "score": s.score} for s in seg.snippets],
        "clipboard": seg.clipboard,
    }
    debug = request.debug_options
    body: dict[str, Any] = {
        **{name: getattr(request, name) for name in _SCALARS},
        "segments": {k: v for k, v in segments.items() if v is not None},
        "debug_options": {"return_prompt": debug.return_prompt, "return_snippets": debug.return_snippets,
                          "disable_retrieval": debug.disable_retrieval, "raw_prompt": debug.raw_prompt},
    }
    return {k: v for k, v in body.items() if v is not None}


def request_from_json(body: dict[str, Any]) -> CompletionRequest:
    """The engine's request for a (validated) ``/v1/completions`` body; absent fields take the
    dataclass defaults."""
    seg = body.get("segments") or {}
    debug = body.get("debug_options") or {}
    raw_prompt = debug.get("raw_prompt")
    if isinstance(raw_prompt, str):
        # Tabby: a raw prompt replaces the segments and goes to the model unformatted.
        segments = Segments(prefix=raw_prompt)
    else:
        snippets = [s for key in ("snippets", *_TABBY_SNIPPET_LISTS) for s in seg.get(key) or ()]
        segments = Segments(
            prefix=seg.get("prefix") or "",
            suffix=seg.get("suffix") or "",
            filepath=seg.get("filepath"),
            git_url=seg.get("git_url"),
            declarations=[Declaration(d.get("filepath", ""), d["body"]) for d in seg.get("declarations") or ()],
            snippets=[ClientSnippet(s.get("filepath", ""), s["body"], s.get("score", 0.0)) for s in snippets],
            clipboard=seg.get("clipboard"),
        )
    request = CompletionRequest(
        segments=segments,
        debug_options=DebugOptions(
            return_prompt=bool(debug.get("return_prompt")),
            return_snippets=bool(debug.get("return_snippets")),
            disable_retrieval=bool(debug.get("disable_retrieval")
                                   or debug.get("disable_retrieval_augmented_code_completion")),
            raw_prompt=bool(raw_prompt),
        ),
    )
    for name in _SCALARS:
        if body.get(name) is not None:
            value = body[name]
            setattr(request, name, list(value) if isinstance(value, (list, tuple)) else value)
    return request


def _snippet_to_json(s: Snippet) -> dict[str, Any]:
    return {"filepath": s.filepath, "body": s.body, "source": s.source, "score": s.score,
            "start_line": s.start_line, "end_line": s.end_line}


def result_to_json(result: CompletionResult) -> dict[str, Any]:
    """The ``/v1/completions`` reply for ``result`` (``debug_data`` only when asked for)."""
    t = result.timings
    out: dict[str, Any] = {
        "id": result.id,
        "choices": [{"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in result.choices],
        "model": result.model,
        "timings": {"retrieval_ms": t.retrieval_ms, "prompt_ms": t.prompt_ms, "generate_ms": t.generate_ms,
                    "total_ms": t.total_ms},
    }
    if result.prompt is not None or result.snippets is not None:
        out["debug_data"] = {
            "prompt": result.prompt,
            "snippets": None if result.snippets is None else [_snippet_to_json(s) for s in result.snippets],
        }
    return out


def result_from_json(data: dict[str, Any]) -> CompletionResult:
    """A :class:`CompletionResult` from a ``/v1/completions`` reply (tolerant of missing fields)."""
    choices = [Choice(index=int(c.get("index", i)), text=str(c.get("text", "")),
                      finish_reason=str(c.get("finish_reason") or "stop"))
               for i, c in enumerate(data.get("choices") or [])]
    timings = Timings(**{k: float(v) for k, v in (data.get("timings") or {}).items()
                         if k in Timings.__dataclass_fields__ and v is not None})
    debug = data.get("debug_data") or {}
    snippets = debug.get("snippets")
    return CompletionResult(
        id=str(data.get("id", "")),
        choices=choices,
        model=str(data.get("model") or ""),
        timings=timings,
        usage=Usage(),
        prompt=debug.get("prompt"),
        snippets=None if snippets is None else [
            Snippet(filepath=s.get("filepath", ""), body=s.get("body", ""), source=s.get("source", ""),
                    score=float(s.get("score") or 0.0), start_line=int(s.get("start_line") or 0),
                    end_line=int(s.get("end_line") or 0)) for s in snippets],
    )
