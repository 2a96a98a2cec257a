"""Any OpenAI-compatible ``/v1/completions`` engine (vLLM, llama.cpp server, TGI) as a backend.

This is how a deployment outgrows one machine: the model runs on a serving engine,
while retrieval, prompt assembly and post-processing stay in our engine. Connection
errors and 5xx replies are retried a bounded number of times with exponential backoff;
when the engine stays down, a one-line BackendUnavailableError says where and why.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from repocomplete.backends.base import GenerationRequest, GenerationResult
from repocomplete.backends.stopping import StopScanner
from repocomplete.postprocess import cut_at_stops
from repocomplete.fim import TEMPLATES
from repocomplete.errors import AdapterError, BackendUnavailableError, InvalidRequestError, ModelNotFoundError

if TYPE_CHECKING:
    from repocomplete.config import EngineConfig

#: Statuses worth retrying: the engine is starting, overloaded or briefly broken.
_RETRY_STATUSES = {429, 500, 502, 503, 504}
#: Without the remote tokenizer, prompt budgets are estimated at this many characters per token
#: (code averages 3-4; erring low keeps prompts inside the remote context window).
CHARS_PER_TOKEN = 3.0


class OpenAIBackend:
    """Client of a remote OpenAI-compatible completions endpoint."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        context_length: int = 8192,
        special_tokens: set[str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else f"{url}/v1"
        self.model_name = model
        self.context_length = context_length
        #: A remote engine formats nothing itself here but cannot tell its model's preference.
        self.fim_order: str | None = None
        self.max_retries = max(0, max_retries)
        self._probe_timeout_s = min(timeout_s, 5.0)
        self.backoff_s = backoff_s
        #: None until asked of the engine (see special_tokens)
        self._special: set[str] | None = set(special_tokens) if special_tokens is not None else None
        self.tokenizer_note = "given" if special_tokens is not None else ""
        self._adapters: dict[str, str] = {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                    headers=headers, transport=transport)

    @classmethod
    def from_config(cls, config: EngineConfig) -> OpenAIBackend:
        model = config.openai_model or (config.model if config.model != "default" else "default")
        return cls(config.openai_url, model=model, api_key=config.api_key, timeout_s=config.request_timeout_s,
                   max_retries=config.max_retries)

    # -- protocol ------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def special_tokens(self) -> set[str]:
        """The FIM sentinels of the known families that the remote model's tokenizer holds as single
        tokens, asked once of the engine's ``/tokenize`` route (llama.cpp's ``llama-server`` and vLLM
        have one). Empty when the engine has none (Ollama, ``transformers serve``, TGI) or cannot be
        reached: the engine then sends the suffix separately (OpenAI's ``suffix`` field), which only
        engines that format FIM themselves (Ollama) honour; the others need ``--template NAME``."""
        if self._special is None:
            self._special, self.tokenizer_note = self._ask_tokenizer()
        return set(self._special)

    def _ask_tokenizer(self) -> tuple[set[str], str]:
        """(sentinels found, how): one ``/tokenize`` request per candidate; a candidate that comes back as
        exactly one token is a special token of the model. Stops at the first sign the route is missing."""
        url = self.base_url.removesuffix("/v1") + "/tokenize"
        candidates = sorted({token for template in TEMPLATES.values() for token in template.special_tokens})
        found: set[str] = set()
        for token in candidates:
            # llama.cpp reads "content" (special tokens parsed by default), vLLM "prompt"; each ignores the other's
            body = {"model": self.model_name, "content": token, "prompt": token, "add_special": False,
                    "add_special_tokens": False}
            try:
                response = self._client.post(url, json=body, timeout=self._probe_timeout_s)
                tokens = response.json().get("tokens") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                return set(), f"{url} could not be asked ({type(exc).__name__})"
            if not isinstance(tokens, list):
                return set(), f"{url} answered HTTP {response.status_code}: no tokenizer route"
            if len(tokens) == 1:
                found.add(token)
        return found, f"asked {url}"

    def load_adapter(self, name: str, path: str) -> None:
        """Register an adapter name; the remote engine must serve it (vLLM ``--lora-modules name=path``)."""
        self._adapters[name] = path

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def info(self) -> dict:
        return {"backend": "openai", "model": self.model_name, "label": f"{self.model_name} at {self.base_url}",
                "url": self.base_url, "adapters": self.adapters(), "max_retries": self.max_retries,
                "tokenizer": self.tokenizer_note}

    def generate(self, request: GenerationRequest) -> GenerationResult:
        reply = self._post(self._payload(request, stream=False))
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        texts, reasons = [], []
        for choice in choices:
            text, stopped = cut_at_stops(choice.get("text") or "", request.stop)
            texts.append(text)
            reasons.append("stop" if stopped else choice.get("finish_reason") or "stop")
        if request.cancel is not None and request.cancel.is_set():
            reasons = ["cancelled"] * len(texts)
        usage = reply.get("usage") or {}
        return GenerationResult(
            texts=texts or [""], finish_reasons=reasons or ["stop"],
            prompt_tokens=int(usage.get("prompt_tokens") or self.count_tokens(request.prompt)),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        )

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        payload = self._payload(request, stream=True)
        scanner = StopScanner(request.stop)
        with self._send(payload, stream=True) as response, _unavailable_on_error(self.base_url):
            for line in response.iter_lines():
                if request.cancel is not None and request.cancel.is_set():
                    return
                data = line.removeprefix("data:").strip() if line.startswith("data:") else None
                if not data:
                    continue
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or [{}]
                delta = scanner.feed(choices[0].get("text") or "")
                if delta:
                    yield delta
                if scanner.stopped:
                    return
        rest = scanner.flush()
        if rest:
            yield rest

    def close(self) -> None:
        self._client.close()

    # -- HTTP ----------------------------------------------------------------------------

    def _payload(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        if request.adapter is not None and request.adapter not in self._adapters:
            raise AdapterError(f"unknown adapter {request.adapter!r}; loaded: {', '.join(self.adapters()) or 'none'}")
        payload: dict[str, Any] = {
            # vLLM serves each LoRA adapter as a model of that name
            "model": request.adapter or self.model_name,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": 1 if stream else request.n,
            "stream": stream,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.suffix is not None:
            payload["suffix"] = request.suffix
        if request.seed is not None:
            payload["seed"] = request.seed
        return payload

    def _post(self, payload: dict[str, Any]) -> dict:
        with self._send(payload, stream=False) as response, _unavailable_on_error(self.base_url):
            response.read()
            try:
                return response.json()
            except ValueError:
                raise BackendUnavailableError(f"{self.base_url} did not answer with JSON (is it an OpenAI-compatible engine?)") from None

    def _send(self, payload: dict[str, Any], *, stream: bool) -> _Response:
        """Send with bounded retries; the reply is a context manager over an open response."""
        url = f"{self.base_url}/completions"
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.send(self._client.build_request("POST", url, json=payload), stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            except httpx.TimeoutException:
                raise BackendUnavailableError(f"{url} did not answer within the timeout") from None
            if response.status_code < 400:
                return _Response(response)
            response.read()
            response.close()
            if "suffix" in payload and "suffix" in _error_message(response).lower():
                # vLLM (HTTP 400) and older llama.cpp servers (HTTP 500) refuse the field: retrying cannot help
                raise InvalidRequestError(
                    f"{self.base_url} refuses OpenAI's `suffix` field (HTTP {response.status_code}: "
                    f"{_error_message(response)}): name the model's FIM template (--template NAME, e.g. qwen, "
                    "starcoder) so that the whole fill-in-the-middle prompt goes in `prompt`")
            if response.status_code in _RETRY_STATUSES:
                problem = f"HTTP {response.status_code}"
                continue
            self._raise_for_status(response)
        attempts = self.max_retries + 1
        raise BackendUnavailableError(f"the completion engine at {self.base_url} is unavailable ({problem}; {attempts} attempts)")

    def _raise_for_status(self, response: httpx.Response) -> None:
        message = _error_message(response)
        if response.status_code in (401, 403):
            raise BackendUnavailableError(f"{self.base_url} refused the API key (HTTP {response.status_code}): {message}")
        if response.status_code == 404:
            raise ModelNotFoundError(f"{self.base_url}: {message or 'not found'} (model {self.model_name!r})")
        raise InvalidRequestError(f"the completion engine rejected the request (HTTP {response.status_code}): {message}")


class _Response:
    """Closes the streamed response when done."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc) -> None:
        self.response.close()


@contextlib.contextmanager
def _unavailable_on_error(url: str) -> Iterator[None]:
    """A connection lost or timed out while reading a reply is the engine being unavailable."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"the completion engine at {url} failed mid-reply ({type(exc).__name__})") from None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0] if response.text.strip() else ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body.get("detail") or body)[:200]
