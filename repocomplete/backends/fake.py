"""A deterministic backend for tests of everything above the model.

It "generates" a configured text once (or scripted responses, or a rule of the prompt),
one character per token, up to ``max_tokens``, optionally sleeping per token so load tests see real
latency, and it honours stop strings and cancellation like a real backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from repocomplete.backends.base import GenerationRequest, GenerationResult
from repocomplete.backends.stopping import StopScanner
from repocomplete.errors import AdapterError
from repocomplete.fim import TEMPLATES

#: The embedded default model's sentinels: with these the engine picks the "repocomplete" template.
DEFAULT_SPECIAL_TOKENS = frozenset(TEMPLATES["repocomplete"].tokenizer_tokens)


class FakeBackend:
    """Character-level fake model.

    ``text``: what every request generates (cut at ``max_tokens`` characters);
    ``responses``: scripted texts used in order before falling back to ``text``;
    ``rule``: a function prompt -> text that overrides both; ``adapter_texts``: text per
    adapter name (an adapter loaded without one generates ``text``);
    ``delay_s``: sleep per generated character.
    """

    def __init__(
        self,
        text: str = "pass\n",
        *,
        responses: Sequence[str] = (),
        rule: Callable[[str], str] | None = None,
        delay_s: float = 0.0,
        special_tokens: Sequence[str] | None = None,
        context_length: int = 8192,
        model_name: str = "fake",
        fim_order: str | None = None,
        adapter_texts: dict[str, str] | None = None,
    ) -> None:
        self.text = text
        self.rule = rule
        self.delay_s = delay_s
        self.context_length = context_length
        self.fim_order = fim_order
        self.model_name = model_name
        self._special = set(DEFAULT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
        self._responses = list(responses)
        self._adapters: dict[str, str] = {}
        self._adapter_texts = dict(adapter_texts or {})
        self._lock = threading.Lock()
        #: Every request received, for assertions in tests.
        self.requests: list[GenerationRequest] = []
        #: Requests whose prompt was processed ahead of time (:meth:`prefill`).
        self.prefills: list[GenerationRequest] = []

    @classmethod
    def from_config(cls, config) -> FakeBackend:
        """The fake backend an ``EngineConfig`` describes (``fake_text``, ``fake_delay_s``)."""
        return cls(config.fake_text, delay_s=config.fake_delay_s)

    def count_tokens(self, text: str) -> int:
        return len(text)

    def special_tokens(self) -> set[str]:
        return set(self._special)

    def load_adapter(self, name: str, path: str) -> None:
        if not Path(path).exists():
            raise AdapterError(f"adapter path not found: {path}")
        self._adapters[name] = str(path)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def info(self) -> dict:
        return {"backend": "fake", "model": self.model_name, "device": "cpu", "dtype": "none",
                "adapters": self.adapters(), "delay_s": self.delay_s}

    def generate(self, request: GenerationRequest) -> GenerationResult:
        texts, reasons = [], []
        for _ in range(max(1, request.n)):
            pieces = list(self._run(request))
            texts.append("".join(p for p, _ in pieces))
            reasons.append(pieces[-1][1] if pieces else "stop")
        return GenerationResult(
            texts=texts,
            prompt_tokens=self.count_tokens(request.prompt),
            completion_tokens=sum(len(t) for t in texts),
            finish_reasons=reasons,
        )

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        for piece, _ in self._run(request):
            if piece:
                yield piece

    def prefill(self, request: GenerationRequest) -> int:
        """Record an ahead-of-time prompt (cancelled ones too); its token count, 0 when cancelled."""
        with self._lock:
            self.prefills.append(request)
        if request.cancel is not None and request.cancel.is_set():
            return 0
        return self.count_tokens(request.prompt)

    def _target(self, request: GenerationRequest) -> str:
        """The text this request generates."""
        if request.adapter is not None and request.adapter not in self._adapters:
            raise AdapterError(f"unknown adapter {request.adapter!r}; loaded: {', '.join(self.adapters()) or 'none'}")
        with self._lock:
            self.requests.append(request)
            if self.rule is not None:
                return self.rule(request.prompt)
            if self._responses:
                return self._responses.pop(0)
        if request.adapter is not None:
            return self._adapter_texts.get(request.adapter, self.text)
        return self.text

    def _run(self, request: GenerationRequest) -> Iterator[tuple[str, str]]:
        """Yield (delta, finish_reason) per generated character; the last pair's reason is final."""
        target = self._target(request)
        length = min(len(target), request.max_tokens)
        scanner = StopScanner(request.stop)
        for i in range(length):
            if request.cancel is not None and request.cancel.is_set():
                yield scanner.flush(), "cancelled"
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            delta = scanner.feed(target[i])
            if scanner.stopped:
                yield delta, "stop"
                return
            yield delta, "length"
        yield scanner.flush(), "length" if len(target) > request.max_tokens else "stop"
