"""The completion engine: request -> retrieval -> FIM prompt -> backend -> post-processing.

Every front-end (CLI, HTTP server, language server) hands a :class:`CompletionRequest`
to one :class:`Engine`; retrieval, prompt formatting and post-processing exist only here.
``complete`` blocks: async code runs it in a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.retrieve.sources import CLIENT, DEFAULT_SOURCES, check_sources
from indexer.errors import RetrievalCancelled
from indexer.types import RetrievalQuery, Snippet
from repocomplete.backends.base import Backend, GenerationRequest
from repocomplete.config import EngineConfig
from repocomplete.errors import (
    AdapterError,
    CancelledError,
    ConfigError,
    InvalidRequestError,
    RepocompleteError,
    RequestTooLargeError,
)
from repocomplete.indexing import IndexJobs
from repocomplete.fim import FimOrder, FimTemplate, SuffixParamTemplate, check_compatible, detect_template, get_template
from repocomplete.postprocess import infer_mode, postprocess
from repocomplete.prompt import PREFIX_SHARE, SUFFIX_SHARE, assemble_prompt, check_shares, window_text
from repocomplete.snippet_memo import SnippetMemo
from repocomplete.types import MAX_CHOICES, MAX_TEMPERATURE, Choice, CompletionRequest, CompletionResult, Timings, Usage
from repocomplete.workspace_registry import WorkspaceRegistry

log = logging.getLogger(__name__)



@dataclass
class _Prepared:
    """A request turned into a generation call, plus what the answer needs."""

    generation: GenerationRequest
    prefix: str
    suffix: str
    language: str | None
    mode: str
    stops: list[str]
    prompt_tokens: int
    snippets: list[Snippet]
    timings: Timings
    started: float


class Engine:
    """Repository-aware completion on one backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        template: FimTemplate | str | None = None,
        workspaces: WorkspaceRegistry | None = None,
        config: EngineConfig | None = None,
        model_label: str | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self.workspaces = workspaces or WorkspaceRegistry(cache_dir=self.config.cache_dir)
        # The prompt's layout: the config's, else what the model's catalogue entry measured, else ours.
        layout = getattr(backend, "prompt_layout", None)
        self.prefix_share: float = _first_set(self.config.prefix_share, layout and layout.prefix_share, PREFIX_SHARE)
        self.suffix_share: float = _first_set(self.config.suffix_share, layout and layout.suffix_share, SUFFIX_SHARE)
        try:
            check_shares(self.prefix_share, self.suffix_share)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.template = self._choose_template(template if template is not None else self.config.template)
        #: The FIM order prompts are rendered in: the config's, else the model's own, else PSM.
        self.fim_order: FimOrder = (self.config.fim_order if self.config.fim_order != "auto"
                                    else getattr(backend, "fim_order", None) or "psm")
        #: How the model is described to users (e.g. "tiny untrained model (...)").
        self.model_label = model_label or backend.model_name
        self._adapter_lock = threading.Lock()
        #: The prompt budget when the config names none (device and size do not change while serving).
        self._default_budget = default_prompt_budget(backend.info(), layout.cpu_budget if layout else None)
        self._snippet_memo = SnippetMemo()
        #: Background indexing of this engine's workspaces (:mod:`repocomplete.indexing`).
        self.indexing = IndexJobs(self)

    @classmethod
    def from_settings(cls, config_file: str | Path | None = None, **overrides) -> Engine:
        """The engine every front-end builds: ``[engine]`` of ``config_file`` < env < ``overrides``
        (None values: not given; see :func:`repocomplete.config.load_engine_config`)."""
        from repocomplete.config import load_engine_config

        return cls.from_config(load_engine_config(config_file, **overrides))

    @classmethod
    def from_config(cls, config: EngineConfig) -> Engine:
        """Build the backend (resolving the model) and the engine from one config."""
        from repocomplete.backends import create_backend

        backend = create_backend(config)
        label = backend.info().get("label")
        return cls(backend, config=config, model_label=label)

    # -- public API --------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Complete one request (blocking)."""
        prepared = self._prepare(request)
        start = time.perf_counter()
        result = self.backend.generate(prepared.generation)
        prepared.timings.generate_ms = _ms(start)
        self._raise_if_cancelled(request)
        choices = []
        for index, raw in enumerate(result.texts):
            text = self._finish(raw, prepared)
            reason = result.finish_reasons[index] if index < len(result.finish_reasons) else "stop"
            choices.append(Choice(index=index, text=text, finish_reason=reason))
        prepared.timings.total_ms = _ms(prepared.started)
        return CompletionResult(
            id=_completion_id(),
            choices=choices,
            model=self.backend.model_name,
            timings=prepared.timings,
            usage=Usage(prompt_tokens=result.prompt_tokens or prepared.prompt_tokens,
                        completion_tokens=result.completion_tokens, cached_tokens=result.cached_tokens),
            prompt=prepared.generation.prompt if request.debug_options.return_prompt else None,
            snippets=prepared.snippets if request.debug_options.return_snippets else None,
        )

    def stream(
        self,
        request: CompletionRequest,
        on_done: Callable[[Timings, Usage], None] | None = None,
    ) -> Iterator[str]:
        """Yield post-processed text deltas of one completion as the model produces them.

        Complete lines are released at once, the last line a few characters behind the
        model (post-processing may still cut its tail against the suffix); the concatenated
        deltas equal ``complete``'s text. Close the iterator when abandoning it early: that
        releases the model for the next request. ``on_done`` receives the stage timings and
        token usage once the stream has finished (metrics of streamed requests).
        """
        prepared = self._prepare(request)
        hold = len(prepared.suffix.split("\n", 1)[0]) + 8
        raw, emitted = "", ""
        generate_start = time.perf_counter()
        for delta in self.backend.stream(prepared.generation):
            raw += delta
            stable = self._finish(raw, prepared)
            # The tail may still be cut (suffix overlap, brackets, blank): hold it back.
            stable = stable[: max(stable.rfind("\n") + 1, len(stable) - hold)]
            if len(stable) > len(emitted) and stable.startswith(emitted):
                yield stable[len(emitted):]
                emitted = stable
        self._raise_if_cancelled(request)
        final = self._finish(raw, prepared)
        if final.startswith(emitted) and len(final) > len(emitted):
            yield final[len(emitted):]
        if on_done is not None:
            prepared.timings.generate_ms = _ms(generate_start)
            prepared.timings.total_ms = _ms(prepared.started)
            on_done(prepared.timings, Usage(prompt_tokens=prepared.prompt_tokens,
                                            completion_tokens=self.backend.count_tokens(raw)))

    def prefetch(self, request: CompletionRequest) -> int:
        """Process ``request``'s prompt ahead of time, generating nothing; the prompt tokens cached.

        Called when the cursor lands somewhere (before the user types there): the completion
        that follows at that cursor, or a few keystrokes on, finds its prompt's keys and values
        already computed and pays only for the difference and the decoding. 0 when the backend
        keeps no prompt cache (a remote engine) or ``request.cancel`` was set first.
        """
        prefill = getattr(self.backend, "prefill", None)
        if prefill is None:
            return 0
        return prefill(self._prepare(request).generation)

    def prompt_for(self, request: CompletionRequest) -> str:
        """The prompt ``request`` would be sent to the model as (benchmarks, debugging)."""
        return self._prepare(request).generation.prompt

    def load_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter into the backend under ``name``."""
        self.backend.load_adapter(name, path)

    def info(self) -> dict:
        """Model, template, backend details and workspaces (for health endpoints and `--json`)."""
        return {
            "model": self.backend.model_name,
            "model_label": self.model_label,
            "template": self.template.name,
            "fim_order": "spm" if self.template.suffix_first else self.fim_order,
            "backend": self.backend.info(),
            "adapters": self.backend.adapters(),
            "context_length": self.backend.context_length,
            # the prompt's layout: budget (before the completion's tokens) and the file window's shares
            "prompt": {"budget": self._configured_budget(),
                       "prefix_share": self.prefix_share, "suffix_share": self.suffix_share},
            "workspaces": self.workspaces.list(),
        }

    def summary(self) -> str:
        """One line for start-up messages: model, backend, device, dtype and CPU threads (with why)."""
        info = self.backend.info()
        parts = [str(info.get("backend") or type(self.backend).__name__)]
        parts += [str(info[k]) for k in ("device", "dtype") if info.get(k)]
        if info.get("prefill_dtype"):
            parts.append(f"prompt in {info['prefill_dtype']}")
        if info.get("decode_weights"):
            parts.append(f"decoding in {info['decode_weights']}")
        if info.get("threads"):
            threads = info["threads"]
            parts.append(f"{threads} thread{'s' if threads != 1 else ''}"
                         + (f" ({info['threads_reason']})" if info.get("threads_reason") else ""))
        return f"{self.model_label} [{', '.join(parts)}]"

    def close(self) -> None:
        self.workspaces.close()

    # -- stages ------------------------------------------------------------------------

    def _choose_template(self, template: FimTemplate | str | None):
        tokens = self.backend.special_tokens()
        if isinstance(template, str) and template != "auto":
            template = get_template(template)
        if template is None or template == "auto":
            if not tokens:
                return SuffixParamTemplate()
            return detect_template(tokens)
        if tokens:  # a remote engine exposes no tokenizer: trust the named template
            check_compatible(template, tokens)
        return template

    def _prepare(self, request: CompletionRequest) -> _Prepared:
        started = time.perf_counter()
        self._validate(request)
        segments = request.segments
        timings = Timings()
        adapter = self._adapter_name(request.adapter)
        language = request.language or _language_for(segments.filepath)

        start = time.perf_counter()
        workspace = None
        if not request.debug_options.disable_retrieval:
            workspace = self.workspaces.resolve(request.workspace, segments.filepath, segments.git_url)
        snippets = self._client_snippets(request) + self._retrieve(request, workspace, language)
        timings.retrieval_ms = _ms(start)

        start = time.perf_counter()
        max_tokens = request.max_tokens
        budget = self._prompt_budget(max_tokens)
        if request.debug_options.raw_prompt:
            prompt_text, prompt_tokens, packed = segments.prefix, self.backend.count_tokens(segments.prefix), []
            suffix_param = cursor_prefix = None
        else:
            if budget < 16:
                raise InvalidRequestError(
                    f"max_tokens {max_tokens} leaves no room for a prompt in the model's {self.backend.context_length}-token context")
            filepath = _relative_path(segments.filepath, workspace)
            assembled = assemble_prompt(
                self.template, prefix=segments.prefix, suffix=segments.suffix, snippets=snippets,
                count_tokens=self.backend.count_tokens, budget_tokens=budget, filepath=filepath,
                repo_name=self.workspaces.name_of(workspace) if workspace is not None else None,
                order=self.fim_order, prefix_share=self.prefix_share, suffix_share=self.suffix_share,
            )
            prompt_text, prompt_tokens, packed = assembled.text, assembled.prompt_tokens, assembled.snippets
            suffix_param = assembled.suffix if isinstance(self.template, SuffixParamTemplate) else None
            cursor_prefix = assembled.prefix
        timings.prompt_ms = _ms(start)

        mode = infer_mode(segments.prefix, segments.suffix, language) if request.mode == "auto" else request.mode
        stops = self._stops(request)
        generation_stops = list(stops)
        on_text = bool(segments.prefix.rsplit("\n", 1)[-1].strip())
        if mode == "line" and on_text:
            generation_stops.append("\n")  # only the rest of this line is wanted: stop generating there
        generation = GenerationRequest(
            prompt=prompt_text, max_tokens=max_tokens, temperature=request.temperature, top_p=request.top_p,
            n=request.n, seed=request.seed, stop=generation_stops, adapter=adapter, suffix=suffix_param,
            cursor_prefix=cursor_prefix, cancel=request.cancel,
            # on an empty line: one line is wanted, perhaps after newlines (limit_to_line keeps no more)
            stop_after_line=mode == "line" and not on_text,
        )
        return _Prepared(generation, segments.prefix, segments.suffix, language, mode, stops,
                         prompt_tokens, packed, timings, started)

    def visible_text(self, prefix: str, suffix: str, max_tokens: int, filepath: str | None = None,
                     repo_name: str | None = None) -> str:
        """The prefix and suffix text this engine's prompt shows at least, for a completion of
        ``max_tokens`` (what retrieval need not repeat; the evals retrieve against it too)."""
        return window_text(self.template, prefix, suffix, count_tokens=self.backend.count_tokens,
                           budget_tokens=self._prompt_budget(max_tokens), filepath=filepath, repo_name=repo_name,
                           order=self.fim_order, prefix_share=self.prefix_share, suffix_share=self.suffix_share)

    def _prompt_budget(self, max_tokens: int) -> int:
        """Prompt tokens available: the configured budget within the model's window less the completion."""
        return min(self._configured_budget(), self.backend.context_length - max_tokens)

    def _configured_budget(self) -> int:
        """The prompt budget: the config's, else the model's measured one, else the default for its size."""
        return self.config.context_tokens or self._default_budget

    def _validate(self, request: CompletionRequest) -> None:
        segments = request.segments
        if not isinstance(segments.prefix, str) or not isinstance(segments.suffix, str):
            raise InvalidRequestError("segments.prefix and segments.suffix must be strings")
        size = len(segments.prefix) + len(segments.suffix)
        if size > self.config.max_input_chars:
            raise RequestTooLargeError(f"prefix + suffix is {size} characters; the limit is {self.config.max_input_chars}")
        if not 1 <= request.max_tokens <= self.config.max_tokens_limit:
            raise InvalidRequestError(f"max_tokens must be between 1 and {self.config.max_tokens_limit}, got {request.max_tokens}")
        if not 1 <= request.n <= MAX_CHOICES:
            raise InvalidRequestError(f"n must be between 1 and {MAX_CHOICES}, got {request.n}")
        if not 0 <= request.temperature <= MAX_TEMPERATURE or not 0 < request.top_p <= 1:
            raise InvalidRequestError(f"temperature must be in [0, {MAX_TEMPERATURE}] and top_p in (0, 1]")
        if request.mode not in ("auto", "line", "multiline"):
            raise InvalidRequestError(f"mode must be auto, line or multiline, got {request.mode!r}")
        try:
            check_sources(request.sources or ())
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None

    def _adapter_name(self, adapter: str | None) -> str | None:
        """A loaded adapter's name; a path to an adapter directory is loaded on first use."""
        if not adapter:
            return None
        with self._adapter_lock:
            if adapter in self.backend.adapters():
                return adapter
            for name, path in self.config.adapters.items():  # a configured adapter named by its path
                if _same_path(path, adapter) and name in self.backend.adapters():
                    return name
            if Path(adapter).expanduser().is_dir():
                self.backend.load_adapter(adapter, str(Path(adapter).expanduser()))
                return adapter
        loaded = ", ".join(self.backend.adapters()) or "none"
        raise AdapterError(f"unknown adapter {adapter!r} (loaded: {loaded}; or pass an adapter directory)")

    def _sources(self, request: CompletionRequest) -> tuple[str, ...]:
        return tuple(request.sources if request.sources is not None else (self.config.sources or (*DEFAULT_SOURCES, CLIENT)))

    def _client_snippets(self, request: CompletionRequest) -> list[Snippet]:
        """Client-supplied declarations and snippets, as source "client" (best first)."""
        if CLIENT not in self._sources(request) and request.sources is not None:
            return []
        segments = request.segments
        declarations = [Snippet(filepath=d.filepath, body=d.body, source=CLIENT, score=1.0, kind="declaration")
                        for d in segments.declarations if d.body.strip()]
        snippets = sorted((Snippet(filepath=s.filepath, body=s.body, source=CLIENT, score=s.score)
                           for s in segments.snippets if s.body.strip()), key=lambda s: -s.score)
        return declarations + snippets

    def _retrieve(self, request: CompletionRequest, workspace, language: str | None) -> list[Snippet]:
        """Repository context from the workspace index; empty when there is none or it fails."""
        if workspace is None:
            return []
        segments = request.segments
        sources = tuple(s for s in self._sources(request) if s != CLIENT)
        if not sources:
            return []
        filepath, repo_name = _relative_path(segments.filepath, workspace), self.workspaces.name_of(workspace)
        key = (repo_name, filepath or "", sources, language)
        remembered = self._snippet_memo.get(key, segments.prefix, segments.suffix)
        if remembered is not None:  # typing on within the same line: no retrieval, no window to measure
            return remembered
        query = RetrievalQuery(
            filepath=filepath or "",
            prefix=segments.prefix, suffix=segments.suffix, language=language,
            budget_tokens=self.config.retrieval_budget_tokens, sources=sources,
            count_tokens=self.backend.count_tokens,
            # What the prompt window will show, so retrieval neither spends the budget on lines
            # the model sees anyway nor drops the file's own lines that fall outside it.
            visible_text=self.visible_text(segments.prefix, segments.suffix, request.max_tokens, filepath, repo_name),
            # Expensive sources (dense embeddings) stop when the request is cancelled or times out,
            # so abandoned work frees its generation slot instead of running on.
            should_stop=request.cancel.is_set if request.cancel is not None else None,
        )
        try:
            snippets = list(workspace.retrieve(query))
            self._snippet_memo.put(key, segments.prefix, segments.suffix, snippets)
            return snippets
        except RepocompleteError:
            raise
        except RetrievalCancelled:
            raise CancelledError("the request was cancelled during retrieval") from None
        except Exception as exc:  # noqa: BLE001 - a broken index must not break completion
            log.warning("retrieval failed, completing without repository context: %s", exc)
            return []

    def _stops(self, request: CompletionRequest) -> list[str]:
        # Every special token of the tokenizer stops generation, not only the template's:
        # whatever the model emits, no sentinel can reach the user.
        special = set(self.template.stop) | set(self.backend.special_tokens())
        return sorted(special, key=lambda s: (-len(s), s)) + [s for s in request.stop if s]

    def _finish(self, raw: str, prepared: _Prepared) -> str:
        text = postprocess(raw, prefix=prepared.prefix, suffix=prepared.suffix, mode=prepared.mode,
                           language=prepared.language, stop=prepared.stops)
        for token in self.backend.special_tokens() | set(self.template.special_tokens):
            text = text.replace(token, "")  # belt and braces: a stop cut already removed them
        return text

    @staticmethod
    def _raise_if_cancelled(request: CompletionRequest) -> None:
        if request.cancel is not None and request.cancel.is_set():
            raise CancelledError("the request was cancelled")


#: Prompt budgets when none is configured: a real model on CPU, and everything else. On CPU
#: every prompt token is processed before the first completion token, so the budget is the
#: latency, but on real repository code every halving costs exact matches (the 0.5B with fused
#: context on held-out code: 0.82x at 512, 0.53x at 256; docs/MODELS.md, "The prompt budget on CPU").
CPU_PROMPT_BUDGET, PROMPT_BUDGET = 1024, 2048


def default_prompt_budget(backend_info: dict, cpu_budget: int | None = None) -> int:
    """The prompt budget for a backend described by its ``info()`` when the config names none
    (``cpu_budget``: the one measured for this model on CPU, from its catalogue entry)."""
    from repocomplete.threads import SMALL_MODEL_PARAMETERS

    on_cpu = str(backend_info.get("device", "")).startswith("cpu")
    large = int(backend_info.get("parameters") or 0) >= SMALL_MODEL_PARAMETERS
    return (cpu_budget or CPU_PROMPT_BUDGET) if on_cpu and large else PROMPT_BUDGET


def _first_set(*values):
    """The first of ``values`` that is not None (falsy numbers included)."""
    return next(v for v in values if v is not None)


def _completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _language_for(filepath: str | None) -> str | None:
    if not filepath:
        return None
    from indexer.languages import language_for_path

    return language_for_path(filepath)


def _same_path(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _relative_path(filepath: str | None, workspace) -> str | None:
    """``filepath`` relative to the workspace root when it lies inside it."""
    if not filepath or workspace is None or not Path(filepath).is_absolute():
        return filepath
    try:
        return Path(filepath).resolve().relative_to(Path(workspace.root).resolve()).as_posix()
    except ValueError:
        return filepath
