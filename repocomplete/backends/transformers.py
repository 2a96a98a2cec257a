"""Local models with Hugging Face transformers: CPU or CUDA, bitsandbytes 4/8-bit, PEFT LoRA.

Decoding is our own loop rather than ``model.generate`` so that one request can reuse
the KV cache of the previous request's prompt prefix (the keystroke case), check the
cancel event and stop strings after every forward pass, and stream text. Several LoRA
adapters live on one base model; each request picks one (or none) without reloading.
One lock serialises use of the model: requests are answered one at a time.

On CPU two more levers, both measured in ``bench/cpu_engines.py`` (docs/MODELS.md):

- mixed precision: on a CPU with native bf16 matrix units (AMX / AVX512-BF16) a bf16 copy
  of the model processes long prompt chunks (≈3× fp32's prefill speed there), while
  decoding stays in fp32 activations (batch-1 bf16 matrix-vector products are slower than
  fp32's); the KV cache is cast between the two; a request with a LoRA adapter runs its long
  chunks on the adapted model under bf16 autocast instead (the copy has no LoRA weights);
- int8 decoding weights (``decode_weights``): the decoding model's large linear layers,
  output layer included, hold int8 weights (:mod:`repocomplete.backends.int8`): batch-1
  decoding reads every weight once per token, and int8 reads a quarter of fp32's bytes;
- prompt-lookup speculative decoding (greedy requests): drafts copied from the prompt,
  verified in one forward pass (:mod:`repocomplete.backends.prompt_lookup`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repocomplete.adapter_metadata import recorded_base
from repocomplete.backends.base import GenerationRequest, GenerationResult
from repocomplete.backends.context_copy import CopySettings, TokenTexts, mix_copy, propose_copy
from repocomplete.backends.prompt_cache import PromptCache, cast_cache, crop_cache
from repocomplete.backends.prompt_lookup import SpeculationStats, accepted_length, draft_tokens
from repocomplete.backends.stopping import StopScanner
from repocomplete.backends.token_healing import TokenHealer, advance, special_token_ids, vocabulary_texts
from repocomplete.errors import AdapterError, ConfigError, InvalidRequestError, ModelNotFoundError, RequestTooLargeError
from repocomplete.fim import declared_fim_order
from repocomplete.threads import SMALL_MODEL_PARAMETERS, ThreadChoice, resolve_threads

if TYPE_CHECKING:
    from repocomplete.catalog import PromptLayout
    from repocomplete.config import EngineConfig

log = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16", "float16")
#: ``prefill_dtype`` values: auto (bf16 prefill where it pays, see :func:`_resolve_prefill_dtype`), off, bfloat16.
PREFILL_DTYPES = ("auto", "off", "bfloat16")
#: ``decode_weights`` values: auto (int8 where it pays, see :func:`_resolve_decode_weights`), int8, off.
DECODE_WEIGHTS = ("auto", "int8", "off")
#: Chunks shorter than this run on the decoding model: casting the KV cache costs more than they save.
MIXED_PREFILL_MIN_TOKENS = 16
#: Chunk size of :meth:`TransformersBackend.prefill` (ahead-of-time prompt processing).
PREFILL_CHUNK_TOKENS = 256
#: ``prefill`` of an adapted request: its long chunks run on the adapted fp32 model under bf16
#: autocast (the bf16 copy holds the plain base weights).
AUTOCAST = "autocast"


def ignore_known_library_deprecations() -> None:
    """Hide deprecation warnings our pinned libraries raise at each other, not at our code.

    peft 0.21 reads ``model.is_gradient_checkpointing`` whenever an adapter is attached,
    which transformers 5 deprecated with a FutureWarning printed on every adapter load and
    fine-tune; there is nothing a user (or we) can change about it. Matched by message, so
    any other warning still shows.
    """
    import warnings

    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)


ignore_known_library_deprecations()


class TransformersBackend:
    """A causal LM from a local directory, with optional quantization and LoRA adapters."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        load_in_4bit: bool = False,
        load_in_8bit: bool = False,
        kv_cache: bool = True,
        label: str | None = None,
        name: str | None = None,
        threads: int | None = None,
        context_copy: float | None = None,
        context_copy_min_chars: int = 8,
        prefill_dtype: str = "auto",
        speculative_tokens: int = 0,
        source_sha256: str | None = None,
        decode_weights: str = "auto",
        fim_order: str | None = None,
        token_healing: bool = True,
        prompt_layout: PromptLayout | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if prefill_dtype not in PREFILL_DTYPES:
            raise ConfigError(f"unknown prefill_dtype {prefill_dtype!r}; choose from: {', '.join(PREFILL_DTYPES)}")
        if decode_weights not in DECODE_WEIGHTS:
            raise ConfigError(f"unknown decode_weights {decode_weights!r}; choose from: {', '.join(DECODE_WEIGHTS)}")
        if speculative_tokens < 0:
            raise ConfigError(f"speculative_tokens must be 0 (off) or more, not {speculative_tokens}")
        # Chosen before loading (the load average must not count our own loading), from the
        # weights' size; process-wide: torch has no per-model thread pool.
        self.thread_choice: ThreadChoice = resolve_threads(estimate_parameters(model_path), threads)
        torch.set_num_threads(self.thread_choice.threads)

        self.path = Path(model_path)
        # a prepared GGUF folder is named by hash: callers pass the model's own name
        self.model_name = name or self.path.name
        self.label = label or self.model_name
        if load_in_4bit and load_in_8bit:
            raise ConfigError("choose one of load_in_4bit and load_in_8bit")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.torch_dtype = _resolve_dtype(dtype, self.device)
        self.quantization = "4bit" if load_in_4bit else "8bit" if load_in_8bit else None
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if self.quantization:
            kwargs["quantization_config"] = _bnb_config(self.quantization, self.torch_dtype)
            kwargs["device_map"] = {"": self.device}
        try:
            with quiet_progress_bars():
                self.tokenizer = AutoTokenizer.from_pretrained(self.path)
                model = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load model from {self.path}: {_first_line(exc)}") from None
        except (ImportError, RuntimeError) as exc:
            raise ConfigError(f"cannot load {self.path} with {self.quantization or self.torch_dtype}: {_first_line(exc)}") from None
        if not self.quantization:
            model.to(self.device)
        model.eval()
        self.base_model = model
        self.model = model  # becomes a PeftModel once an adapter is loaded
        #: sha256 of the GGUF the folder was prepared from (catalogue / .gguf specs), else None.
        self.source_sha256 = source_sha256
        self._weights_sha256: str | None = None   # hashed on the first adapter that records one
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)
        # The model's own config first, then what its catalogue entry measured (``fim_order``).
        self.fim_order = declared_fim_order(model.config) or fim_order
        #: The prompt budget and shares measured for this model (its catalogue entry's), if any.
        self.prompt_layout = prompt_layout
        self.kv_cache_enabled = kv_cache
        #: :meth:`prefill` processes the prompt in chunks of this many tokens: the longest a
        #: waiting request may have to wait for a cancelled prefill (≈0.5 s at bf16 on one core).
        self.prefill_chunk_tokens = PREFILL_CHUNK_TOKENS
        self._cache = PromptCache()
        self._adapter_paths: dict[str, str] = {}
        self._lock = threading.Lock()
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._eos_ids = _eos_ids(self.tokenizer, model)
        self._specials = frozenset(self.tokenizer.all_special_tokens) | frozenset(
            t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special)
        weight = context_copy if context_copy is not None else declared_context_copy(model.config)
        try:
            self.copy = CopySettings(weight=weight, min_chars=context_copy_min_chars)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # built at start-up, not on the first keystroke (20 ms for the default model's 8k tokens,
        # 0.5 s for Qwen's 152k)
        vocabulary = vocabulary_texts(self.tokenizer) if (self.copy.enabled or token_healing) else None
        self._token_texts = TokenTexts(vocabulary) if self.copy.enabled else None
        #: Heals the prompt's last token (None: off); see repocomplete.backends.token_healing.
        self._healer = TokenHealer(vocabulary, self._token_texts) if token_healing else None
        self.speculative_tokens = speculative_tokens
        self.speculation = SpeculationStats()
        self._special_ids = special_token_ids(self.tokenizer)
        self._parameters = sum(p.numel() for p in model.parameters())
        #: "int8" when the decoding model's linear layers hold int8 weights, else None.
        self.decode_weights = _resolve_decode_weights(decode_weights, self.device, self.torch_dtype,
                                                      self.quantization, self._parameters)
        if self.decode_weights:
            from repocomplete.backends.int8 import quantize_linears

            quantize_linears(model)  # in place: adapters then wrap the int8 layers
        #: A bf16 copy of the base model for long prompt chunks (None: one model does all).
        self.prefill_dtype = _resolve_prefill_dtype(prefill_dtype, self.device, self.torch_dtype,
                                                    self.quantization, self._parameters)
        self._prefill_model = None
        if self.prefill_dtype is not None:
            # Loaded again rather than copied: a copy would hold a second fp32 model at its peak.
            with quiet_progress_bars():
                self._prefill_model = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.prefill_dtype).eval()

    @classmethod
    def from_config(cls, config: EngineConfig) -> TransformersBackend:
        from repocomplete.model_resolution import resolve_model

        resolved = resolve_model(config.model, cache=config.cache_dir)
        return cls(resolved.path, device=config.device, dtype=config.dtype, load_in_4bit=config.load_in_4bit,
                   load_in_8bit=config.load_in_8bit, kv_cache=config.kv_cache, label=resolved.label,
                   name=resolved.name or (resolved.source.stem if resolved.source else None),
                   threads=config.threads, context_copy=config.context_copy,
                   context_copy_min_chars=config.context_copy_min_chars, prefill_dtype=config.prefill_dtype,
                   speculative_tokens=config.speculative_tokens, source_sha256=resolved.sha256,
                   decode_weights=config.decode_weights, fim_order=resolved.fim_order,
                   token_healing=config.token_healing, prompt_layout=resolved.prompt_layout)

    # -- protocol ------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def special_tokens(self) -> set[str]:
        return set(self._specials)

    def adapters(self) -> list[str]:
        return sorted(self._adapter_paths)

    def info(self) -> dict:
        return {
            "backend": "transformers", "model": self.model_name, "label": self.label, "path": str(self.path),
            "device": self.device, "dtype": str(self.torch_dtype).removeprefix("torch."),
            "quantization": self.quantization, "adapters": self.adapters(),
            "context_length": self.context_length, "kv_cache": self.kv_cache_enabled,
            "parameters": self._parameters,
            "context_copy": self.copy.weight,
            "threads": self.thread_choice.threads, "threads_reason": self.thread_choice.reason,
            "prefill_dtype": str(self.prefill_dtype).removeprefix("torch.") if self.prefill_dtype else None,
            "speculative_tokens": self.speculative_tokens,
            "decode_weights": self.decode_weights,
            "token_healing": self._healer is not None,
        }

    def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT LoRA adapter under ``name`` next to those already loaded."""
        adapter_dir = Path(path).expanduser()
        config = _read_adapter_config(adapter_dir)
        self._check_base_model(adapter_dir, config)
        with self._lock:
            try:
                if self.model is self.base_model:
                    from peft import PeftModel

                    self.model = PeftModel.from_pretrained(self.base_model, str(adapter_dir), adapter_name=name)
                else:
                    if name in self._adapter_paths:
                        self.model.delete_adapter(name)
                    self.model.load_adapter(str(adapter_dir), adapter_name=name)
            except (RuntimeError, ValueError, KeyError, OSError) as exc:
                raise AdapterError(f"cannot load adapter {adapter_dir} (for another base model?): {_first_line(exc)}") from None
            self.model.eval()
            self._adapter_paths[name] = str(adapter_dir)
            self._cache.drop(name)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        prompt_ids = self._prompt_ids(request)
        texts, reasons, completion_tokens, cached = [], [], 0, 0
        with self._lock:
            for choice in range(max(1, request.n)):
                generator = self._rng(request, choice)
                text, reason, produced, reused = "", "length", 0, 0
                for delta, reason, produced, reused in self._decode(request, prompt_ids, generator):
                    text += delta
                texts.append(text)
                reasons.append(reason)
                completion_tokens += produced
                cached = reused if choice == 0 else cached
        return GenerationResult(texts=texts, prompt_tokens=len(prompt_ids), completion_tokens=completion_tokens,
                                cached_tokens=cached, finish_reasons=reasons)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        prompt_ids = self._prompt_ids(request)
        with self._lock:
            for delta, *_ in self._decode(request, prompt_ids, self._rng(request, 0)):
                if delta:
                    yield delta

    # -- decoding ------------------------------------------------------------------------

    def _decode(self, request: GenerationRequest, prompt_ids: list[int], generator) -> Iterator[tuple[str, str, int, int]]:
        """Yield (text delta, finish reason so far, tokens produced, prompt tokens reused) per token.

        Invariant: ``cache`` holds the keys/values of ``ids[:len(ids) - len(pending)]``.
        """
        import torch

        model, prefill, context = self._runners(request.adapter)
        key = request.adapter
        # The healed text must be generated again before anything is shown (and is not shown).
        prompt_ids, healed = self._healer.split(prompt_ids, self._special_ids) if self._healer else (prompt_ids, "")
        remaining = healed
        cache, reused = self._cache.take(key, prompt_ids) if self.kv_cache_enabled else (None, 0)
        if cache is None:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.base_model.config)
        ids = list(prompt_ids)
        pending = ids[reused:]
        generated: list[int] = []
        spent_healing = 0  # tokens that only rebuilt the healed text: not part of max_tokens
        scanner = StopScanner(request.stop)
        text_so_far, reason = "", "length"
        max_new = min(request.max_tokens, self.context_length - len(prompt_ids))
        token_texts = self._token_texts
        copying = token_texts is not None
        if copying:
            before_cursor = request.prompt if request.cursor_prefix is None else request.cursor_prefix
        # Drafts are checked against the greedy choice: sampling and copy mixing decode one by one.
        speculate = self.speculative_tokens if (request.temperature <= 0 and not copying) else 0
        line_only = "\n" in request.stop
        try:
            with torch.inference_mode(), context:
                while len(generated) - spent_healing < max_new:
                    if request.cancel is not None and request.cancel.is_set():
                        reason = "cancelled"
                        break
                    room = max_new - (len(generated) - spent_healing) - 1
                    draft = (self._draft(ids, min(speculate, room), line_only)
                             if speculate and room > 0 and not remaining else [])
                    logits = self._forward(model, pending + draft, cache, keep=len(draft) + 1, prefill=prefill)
                    if draft:
                        choices = logits.argmax(dim=-1).tolist()
                        accepted = accepted_length(draft, choices)
                        self.speculation.drafted += len(draft)
                        self.speculation.accepted += accepted
                        crop_cache(cache, len(ids) + accepted)  # drop the rejected draft tokens
                        new_tokens = draft[:accepted] + [choices[accepted]]
                    else:
                        last = logits[-1]
                        if remaining:
                            last = _only(last, self._healer.allowed(remaining))
                        elif copying:
                            proposal = propose_copy(request.prompt, before_cursor + text_so_far, token_texts,
                                                    self.copy, stops=self._specials)
                            keep = self._eos_ids if proposal.at_line_end else ()
                            last = mix_copy(last, proposal.token_ids, self.copy.weight, keep_ids=keep)
                        new_tokens = [_next_token(last, request.temperature, request.top_p, generator)]
                    self.speculation.forwards += 1
                    ids.extend(new_tokens)
                    pending = [new_tokens[-1]]
                    for token in new_tokens:
                        if token in self._eos_ids:
                            reason = "stop"
                            break
                        generated.append(token)
                        if remaining:
                            token_text = self._healer.text_of(token) or ""
                            spent_healing += len(token_text) <= len(remaining)
                            remaining = advance(remaining, token_text)
                            if remaining:
                                continue  # the healed text is not back yet: nothing to show
                        decoded = self.tokenizer.decode(generated, skip_special_tokens=False)
                        if healed and decoded.startswith(healed):
                            decoded = decoded[len(healed):]
                        if decoded.endswith("\ufffd"):
                            continue  # half of a multi-byte character: wait for the rest
                        delta = scanner.feed(decoded[len(text_so_far):])
                        text_so_far = decoded
                        ended_line = request.stop_after_line and "\n" in text_so_far.lstrip()
                        if scanner.stopped or ended_line:
                            reason = "stop"
                        yield delta, reason, len(generated), reused
                        if scanner.stopped:
                            return
                        if ended_line:
                            break   # the scanner may still hold text back: flushed below
                    if reason == "stop":
                        break
                yield scanner.flush(), reason, len(generated), reused
        finally:
            if self.kv_cache_enabled:
                # The cache holds every token but the last pending one.
                self._cache.store(key, ids[: cache.get_seq_length()], cache)

    def prefill(self, request: GenerationRequest) -> int:
        """Process ``request``'s prompt into the prompt cache without generating; the prompt tokens cached.

        A later request whose prompt starts the same (the same cursor, or a few keystrokes
        on) runs only the difference: the language server calls this when the cursor lands
        somewhere, so the first completion there costs what a keystroke costs. The prompt is
        healed first, as :meth:`generate` would. It runs in chunks of
        :attr:`prefill_chunk_tokens` and stops between two of them once ``request.cancel`` is
        set (a real request is waiting for the model); what was processed stays cached.
        """
        if not self.kv_cache_enabled:
            return 0
        import torch

        prompt_ids = self._prompt_ids(request)
        with self._lock:
            model, prefill, context = self._runners(request.adapter)
            if self._healer:
                prompt_ids, _ = self._healer.split(prompt_ids, self._special_ids)
            cache, done = self._cache.take(request.adapter, prompt_ids)
            if cache is None:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.base_model.config)
            # The prompt's last token stays pending, as in the cache's invariant: a request runs
            # it again for its logits.
            end = len(prompt_ids) - 1
            try:
                with torch.inference_mode(), context:
                    while done < end and not (request.cancel is not None and request.cancel.is_set()):
                        chunk = prompt_ids[done:min(end, done + self.prefill_chunk_tokens)]
                        self._forward(model, chunk, cache, prefill=prefill)
                        done += len(chunk)
            finally:
                self._cache.store(request.adapter, prompt_ids[:cache.get_seq_length()], cache)
            return cache.get_seq_length()

    def _runners(self, adapter: str | None):
        """(model, prefill runner, adapter context) of a request on ``adapter`` (None: the base).

        The bf16 copy is the plain base model: requests with an adapter stay on the adapted one,
        whose long chunks run under bf16 autocast instead (the same matrix units, ≈2.3x fp32's
        prefill speed; the base's and the adapter's prompts are computed at the same precision).
        """
        model = self._select_adapter(adapter)
        prefill = self._prefill_model if adapter is None else (AUTOCAST if self._prefill_model is not None else None)
        context = (model.disable_adapter() if (adapter is None and model is not self.base_model)
                   else contextlib.nullcontext())
        return model, prefill, context

    def _draft(self, ids: list[int], limit: int, line_only: bool) -> list[int]:
        """A prompt-lookup draft; in line mode it ends with the first token that breaks the line
        (what follows would be cut anyway)."""
        draft = draft_tokens(ids, limit, stop_ids=self._special_ids)
        if line_only:
            for i, token in enumerate(draft):
                if "\n" in self.tokenizer.decode([token]):
                    return draft[: i + 1]
        return draft

    def _forward(self, model, tokens: list[int], cache, *, keep: int = 1, prefill=None) -> Any:
        """Logits (float32) of the last ``keep`` positions after running ``tokens`` on ``cache``.

        Only those positions go through the output layer (``logits_to_keep``): projecting
        every prompt position onto a 150k-token vocabulary would cost more than the prompt.
        Chunks of at least :data:`MIXED_PREFILL_MIN_TOKENS` run on ``prefill`` when given: the
        bf16 copy, or :data:`AUTOCAST` (``model`` itself under bf16 autocast, for adapted
        requests); the cache is cast to the dtype the chunk runs in.
        """
        import torch

        mixed = prefill is not None and len(tokens) >= MIXED_PREFILL_MIN_TOKENS
        runner = prefill if (mixed and prefill is not AUTOCAST) else model
        if self._prefill_model is not None:
            cast_cache(cache, self.prefill_dtype if mixed else self.torch_dtype)
        autocast = (torch.autocast(device_type="cpu", dtype=self.prefill_dtype) if (mixed and prefill is AUTOCAST)
                    else contextlib.nullcontext())
        input_ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        with autocast:
            out = runner(input_ids=input_ids, use_cache=True, logits_to_keep=keep, **{self._cache_kwarg: cache})
        return out.logits[0, -keep:].float()

    def _select_adapter(self, name: str | None):
        if name is None:
            return self.model
        if name not in self._adapter_paths:
            raise AdapterError(f"unknown adapter {name!r}; loaded: {', '.join(self.adapters()) or 'none'}")
        self.model.set_adapter(name)
        return self.model

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        ids = list(self._encode(request.prompt))
        if not ids:
            bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else next(iter(self._eos_ids))
            ids = [bos]
        if len(ids) >= self.context_length:
            raise RequestTooLargeError(f"prompt is {len(ids)} tokens; the model's context is {self.context_length}")
        if request.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1")
        return ids

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - prompt assembly counts the same pieces again and again
    def _encode(self, text: str) -> tuple[int, ...]:
        # The Rust tokenizer directly: the Python wrapper mutates truncation state per call,
        # which fails ("Already borrowed") when engine threads count tokens concurrently.
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return tuple(backend.encode(text, add_special_tokens=False).ids)
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    @staticmethod
    def _rng(request: GenerationRequest, choice: int):
        import torch

        if request.temperature <= 0:
            return None
        generator = torch.Generator()
        seed = request.seed if request.seed is not None else secrets.randbits(62)
        generator.manual_seed(seed + choice)
        return generator

    def _check_base_model(self, adapter_dir: Path, config: dict) -> None:
        """AdapterError when the adapter was trained for another base model (by the base's hash that
        ``repocomplete finetune`` records, by name, or by shapes)."""
        self._check_base_hash(adapter_dir)
        base = str(config.get("base_model_name_or_path") or "")
        if base and not _same_model(base, self.path):
            raise AdapterError(f"adapter {adapter_dir} was trained for base model {base!r}, not {str(self.path)!r}")
        mismatch = _shape_mismatch(adapter_dir, self.base_model)
        if mismatch:
            raise AdapterError(f"adapter {adapter_dir} does not fit this model ({mismatch}): trained for another base model")

    def _check_base_hash(self, adapter_dir: Path) -> None:
        """Compare the base recorded in ``repocomplete-adapter.json`` with ours: the GGUF source's
        sha256 when both sides have one, else the sha256 of the weights folder."""
        recorded = recorded_base(adapter_dir)
        if not recorded:
            return
        if recorded.get("source_sha256") and self.source_sha256:
            ours, theirs = self.source_sha256, recorded["source_sha256"]
        elif recorded.get("hash"):
            if self._weights_sha256 is None:
                from repocomplete.model_resolution import weights_sha256

                self._weights_sha256 = weights_sha256(self.path)
            ours, theirs = self._weights_sha256, recorded["hash"]
        else:
            return
        if ours != theirs:
            raise AdapterError(f"adapter {adapter_dir} was trained on base model {recorded.get('spec')!r} "
                               f"(sha256 {theirs[:12]}), not on {self.label!r} (sha256 {ours[:12]}): "
                               f"serve it with --model {recorded.get('spec')}")




def declared_context_copy(model_config) -> float:
    """The context-copy weight a model's config asks for (``repocomplete_context_copy``, written
    by our pretraining export for the embedded model), else 0 (the model decodes alone)."""
    value = getattr(model_config, "repocomplete_context_copy", None)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    return float(value) if valid else 0.0


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' loading/saving progress bars (they litter CLI and server output)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _only(logits, allowed: tuple[int, ...]):
    """``logits`` with every token but ``allowed`` ruled out."""
    import torch

    masked = torch.full_like(logits, float("-inf"))
    index = torch.tensor(allowed, dtype=torch.long, device=logits.device)
    masked[index] = logits[index]
    return masked


def _next_token(logits, temperature: float, top_p: float, generator) -> int:
    """Greedy at temperature 0, else nucleus sampling."""
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # batch-1 decoding on CPU is faster in fp32 than bf16
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose from: auto, {', '.join(_DTYPES)}")
    return getattr(torch, dtype)


def estimate_parameters(model_path: str | Path) -> int:
    """Parameters of the model in ``model_path`` from its weight files' size and config dtype,
    without loading it (0 when unknown): enough to choose a thread count before loading."""
    path = Path(model_path)
    files = list(path.glob("*.safetensors")) or list(path.glob("*.bin"))
    try:
        size = sum(f.stat().st_size for f in files)
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    except (OSError, ValueError):
        return 0
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return size // (2 if dtype in ("bfloat16", "float16") else 4)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def _resolve_prefill_dtype(setting: str, device: str, dtype, quantization: str | None, parameters: int):
    """The dtype of the prefill copy, or None for one model doing everything.

    ``auto``: bf16 on a CPU with native bf16 units when the model decodes in fp32 and is not
    small (a small model's prompt is cheap already; the copy costs half the fp32 weights again).
    """
    import torch

    if setting == "off" or quantization or not device.startswith("cpu") or dtype != torch.float32:
        return None
    if setting == "bfloat16":
        return torch.bfloat16
    if parameters >= SMALL_MODEL_PARAMETERS and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _resolve_decode_weights(setting: str, device: str, dtype, quantization: str | None, parameters: int) -> str | None:
    """"int8" when the decoding model gets int8 weights, else None (its weights stay as loaded).

    ``auto``: int8 for fp32 models of 50M+ parameters on CPU (a small model's decoding is not
    bound by reading its weights); ``int8`` asks for it wherever the kernels run.
    """
    if setting == "off" or (setting == "auto" and (parameters < SMALL_MODEL_PARAMETERS)):
        return None
    from repocomplete.backends.int8 import int8_supported

    usable = device.startswith("cpu") and not quantization and str(dtype) == "torch.float32" and int8_supported()
    if setting == "int8" and not usable:
        raise ConfigError("decode_weights = int8 needs an fp32 model on a CPU with torch's x86/fbgemm kernels "
                          f"(here: device {device}, dtype {str(dtype).removeprefix('torch.')}"
                          f"{', ' + quantization if quantization else ''})")
    return "int8" if usable else None


def _bnb_config(kind: str, compute_dtype):
    try:
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise ConfigError(f"{kind} quantization needs bitsandbytes: {exc}") from None
    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def _eos_ids(tokenizer, model) -> frozenset[int]:
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return frozenset(ids)


def _read_adapter_config(adapter_dir: Path) -> dict:
    config_file = adapter_dir / "adapter_config.json"
    if not adapter_dir.is_dir():
        raise AdapterError(f"adapter not found: {adapter_dir}")
    if not config_file.is_file():
        raise AdapterError(f"{adapter_dir} is not a PEFT adapter (no adapter_config.json)")
    try:
        return json.loads(config_file.read_text())
    except ValueError as exc:
        raise AdapterError(f"unreadable {config_file}: {exc}") from None


def _same_model(recorded: str, ours: Path) -> bool:
    """Whether an adapter's recorded base model names our model (path, or same directory/id name)."""
    recorded_path = Path(recorded).expanduser()
    if recorded_path.exists():
        try:
            return recorded_path.resolve() == ours.resolve() or _same_config(recorded_path, ours)
        except OSError:
            return False
    return recorded.rstrip("/").rsplit("/", 1)[-1].lower() == ours.name.lower()


def _same_config(a: Path, b: Path) -> bool:
    """Two directories holding the same model (a copy): identical config.json and weights file sizes."""
    try:
        same_config = json.loads((a / "config.json").read_text()) == json.loads((b / "config.json").read_text())
    except (OSError, ValueError):
        return False
    sizes = lambda p: sorted(f.stat().st_size for f in p.glob("*.safetensors"))  # noqa: E731
    return same_config and sizes(a) == sizes(b)


def _shape_mismatch(adapter_dir: Path, model) -> str | None:
    """First LoRA weight whose shape does not fit the module it targets, described; None if all fit."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            module_name = key.split(".lora_")[0].removeprefix("base_model.model.")
            module = modules.get(module_name)
            if module is None:
                return f"no module {module_name}"
            shape = handle.get_slice(key).get_shape()
            in_features, out_features = getattr(module, "in_features", None), getattr(module, "out_features", None)
            if ".lora_A." in key and in_features is not None and shape[1] != in_features:
                return f"{module_name} takes {in_features} inputs, the adapter {shape[1]}"
            if ".lora_B." in key and out_features is not None and shape[0] != out_features:
                return f"{module_name} gives {out_features} outputs, the adapter {shape[0]}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
