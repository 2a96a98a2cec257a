"""Completion runner shared by the suites: who answers, and where the answers go.

- A :class:`Completer` turns a :class:`repocomplete.types.CompletionRequest` into text:
  :class:`EngineCompleter` runs the engine in this process; :class:`HttpCompleter` posts the
  request to a running ``repocomplete serve`` (``--server URL``), so the model loads once and
  the measured path is the one editors use.
- A :class:`ResultLog` appends one JSON line per finished sample (flushed and fsynced), so a
  crash keeps what was done and a rerun with the same ``--out`` continues where it stopped.
- :func:`run_samples` drives a suite's per-sample function with a progress bar on stderr.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from repocomplete.config import parse_adapter, parse_adapters
from repocomplete.errors import BackendUnavailableError, RepocompleteError
from repocomplete.types import CompletionRequest
from repocomplete.wire import request_to_json, result_from_json

T = TypeVar("T")


@dataclass
class CompletionOutput:
    """The first choice of one completion, with what the evals inspect besides the text."""

    text: str
    latency_ms: float
    #: Snippets the engine packed into the prompt: dicts with filepath, source, start_line, end_line.
    snippets: list[dict] = field(default_factory=list)


class Completer(Protocol):
    """Anything that completes a request: the in-process engine or a server over HTTP."""

    label: str

    def complete(self, request: CompletionRequest) -> CompletionOutput: ...


def visible_text_of(completer: Completer, prefix: str, suffix: str, max_tokens: int, filepath: str | None = None) -> str:
    """What ``completer``'s prompt window shows of ``prefix`` and ``suffix``, from its optional
    ``visible_text`` method; "" when it cannot say (retrieval then counts the whole file as visible)."""
    method = getattr(completer, "visible_text", None)
    return method(prefix, suffix, max_tokens, filepath) if method is not None else ""


def _snippet_dict(snippet: Any) -> dict:
    get = (lambda k: snippet.get(k)) if isinstance(snippet, dict) else (lambda k: getattr(snippet, k, None))
    return {k: get(k) for k in ("filepath", "source", "start_line", "end_line", "score")}


class EngineCompleter:
    """Completes with a :class:`repocomplete.engine.Engine` living in this process."""

    def __init__(self, engine: Any, label: str) -> None:
        self.engine = engine
        self.label = label

    def complete(self, request: CompletionRequest) -> CompletionOutput:
        start = time.perf_counter()
        result = self.engine.complete(request)
        latency = (time.perf_counter() - start) * 1000
        text = result.choices[0].text if result.choices else ""
        return CompletionOutput(text, latency, [_snippet_dict(s) for s in (result.snippets or [])])

    def describe(self) -> dict:
        """What answered, for a run's ``summary.json``: the model, its FIM template and order
        (psm or suffix-first spm: a measured difference, set by config or environment, not by
        the command line), and the backend's device, dtype and threads."""
        info = self.engine.info()
        return {key: info.get(key) for key in ("model_label", "template", "fim_order", "backend")}

    def visible_text(self, prefix: str, suffix: str, max_tokens: int, filepath: str | None = None) -> str:
        """The engine's own window (what its retrieval would not repeat)."""
        return self.engine.visible_text(prefix, suffix, max_tokens, filepath)


def scripted_engine(answers: list[tuple[str, str, str]], *, wrong: str | None = None,
                    label: str = "scripted fake model") -> EngineCompleter:
    """The real engine on a fake backend that answers each (prefix, suffix) with its text.

    Prompt assembly ("repocomplete" template), stop handling and post-processing all run, so
    feeding it the gold answers measures what the engine itself loses (the "ceiling" of a
    perfect model); ``wrong`` makes it answer that text instead. The fake backend counts one
    token per character: give requests a generous ``max_tokens``.
    """
    from repocomplete.backends.fake import FakeBackend
    from repocomplete.engine import Engine

    from repocomplete.fim import TEMPLATES

    template = TEMPLATES["repocomplete"]
    end = template.end_tokens[0]
    keys = [(prefix[-60:] + template.suffix_token + suffix[:30], answer + end) for prefix, suffix, answer in answers]

    def rule(prompt: str) -> str:
        if wrong is not None:
            return wrong
        return next((answer for key, answer in keys if key in prompt), end)

    return EngineCompleter(Engine(FakeBackend(rule=rule)), label)


class HttpCompleter:
    """Completes through a running server's ``POST /v1/completions``."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 120.0) -> None:
        import httpx  # only the HTTP path needs it

        self.url = url.rstrip("/")
        self.label = f"server {self.url}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self._httpx = httpx

    def check(self) -> None:
        """Fail fast, in one line, when nothing answers at the URL."""
        try:
            self._client.get("/v1/health")
        except self._httpx.HTTPError as exc:
            raise BackendUnavailableError(f"cannot reach server at {self.url}: {type(exc).__name__}") from None

    def complete(self, request: CompletionRequest) -> CompletionOutput:
        start = time.perf_counter()
        try:
            reply = self._client.post("/v1/completions", json=request_to_json(request))
        except self._httpx.HTTPError as exc:
            raise BackendUnavailableError(f"cannot reach server at {self.url}: {type(exc).__name__}") from None
        latency = (time.perf_counter() - start) * 1000
        if reply.status_code != 200:
            raise RepocompleteError(f"server answered {reply.status_code}: {reply.text[:200]}")
        result = result_from_json(reply.json())
        text = result.choices[0].text if result.choices else ""
        return CompletionOutput(text, latency, [_snippet_dict(s) for s in (result.snippets or [])])

    def visible_text(self, prefix: str, suffix: str, max_tokens: int, filepath: str | None = None) -> str:
        """Unknown: a server does not say how much of the file its model's window holds."""
        return ""


@dataclass
class ModelSpec:
    """The model side of a run, as given on the command line."""

    model: str | None = None
    backend: str | None = None
    #: ``NAME=PATH`` or ``PATH`` (the name is then the folder's name).
    adapter: str | None = None
    server: str | None = None
    token: str | None = None

    @property
    def adapter_name(self) -> str | None:
        return parse_adapter(self.adapter)[0] if self.adapter else None

    @property
    def adapter_path(self) -> str | None:
        return parse_adapter(self.adapter)[1] if self.adapter else None

    def label(self) -> str:
        base = f"server {self.server}" if self.server else f"{self.backend or 'transformers'}:{self.model or 'default'}"
        return base + (f"+{self.adapter_name}" if self.adapter else "")


def model_variants(args: Any) -> list[tuple[str, str | None]]:
    """(row-label suffix, adapter) pairs each sample is completed under: the base model, and with
    ``--adapter`` the adapter too, on the same samples with the same context (base vs adapter)."""
    name = getattr(args, "adapter_name", None)
    return [("", None)] + ([(f"+{name}", name)] if name else [])


def build_completer(spec: ModelSpec, **engine_overrides: Any) -> Completer:
    """A server client when ``spec.server`` is set, else an in-process engine from config."""
    if spec.server:
        completer = HttpCompleter(spec.server, token=spec.token)
        completer.check()
        return completer
    from repocomplete.engine import Engine

    adapters = parse_adapters([spec.adapter]) if spec.adapter else None
    engine = Engine.from_settings(model=spec.model, backend=spec.backend, adapters=adapters, **engine_overrides)
    return EngineCompleter(engine, spec.label())


class ResultLog:
    """Append-only JSONL of finished samples; the resume point of an interrupted run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict] = {}
        #: Keys of the finished work items (one item may produce several records).
        self._items: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a crash cut short: that sample simply runs again
                self._remember(record)

    def _remember(self, record: dict) -> None:
        if record.get("status") == "error":
            # The harness could not run the program (written by versions that stored such records):
            # not a result, so the sample runs again.
            return
        self._records[record["key"]] = record
        if record.get("item_done", True):  # the last record of an item marks the item finished
            self._items.add(record.get("item", record["key"]))

    def __contains__(self, item: str) -> bool:
        """Whether the work item ``item`` finished (all its records are stored)."""
        return item in self._items

    def __len__(self) -> int:
        return len(self._records)

    def append(self, *records: dict) -> None:
        """Store records (each with a unique ``key``) durably, in one write, before returning."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self._remember(record)

    def records(self, items: set[str] | None = None) -> list[dict]:
        """Stored records, only those of the work items ``items`` when given."""
        return [r for r in self._records.values() if items is None or r.get("item", r["key"]) in items]


def run_samples(
    items: Sequence[T],
    key: Callable[[T], str],
    work: Callable[[T], dict | Iterable[dict]],
    log: ResultLog,
    description: str,
    *,
    show_progress: bool = True,
) -> list[dict]:
    """Run ``work`` on every item whose key is not yet in ``log``; return all records.

    ``work`` returns a record (or several, each with its own ``key``); records are stored
    only once the whole item is done, so an interrupted item simply runs again.
    """
    todo = [item for item in items if key(item) not in log]
    with _progress(description, len(items), len(items) - len(todo), show_progress) as advance:
        for item in todo:
            produced = work(item)
            records = [produced] if isinstance(produced, dict) else list(produced)
            for index, record in enumerate(records):
                record.setdefault("key", key(item))
                record["item"] = key(item)
                record["item_done"] = index == len(records) - 1
            log.append(*records)
            advance()
    # A rerun with another --limit may leave records of samples no longer chosen: leave them out.
    return log.records({key(item) for item in items})


class _progress:
    """A rich progress bar on stderr (stdout may carry ``--json``); a no-op when disabled."""

    def __init__(self, description: str, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.args = (description, total, completed)

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        description, total, completed = self.args
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self.bar.start()
        task = self.bar.add_task(description, total=total, completed=completed)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
