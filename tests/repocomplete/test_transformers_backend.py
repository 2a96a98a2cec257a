"""The transformers backend on a tiny model built from config: decoding, KV reuse, LoRA, quantization."""

from __future__ import annotations

import json
import threading

import pytest

from repocomplete.backends.base import Backend, GenerationRequest
from repocomplete.backends.transformers import TransformersBackend
from repocomplete.errors import AdapterError, ModelNotFoundError, RequestTooLargeError

from .conftest import make_lora_adapter

PROMPT = "<|rc:file|>pkg/mod.py\n<|rc:prefix|>" + "".join(f"value_{i} = compute({i})\n" for i in range(40)) + \
    "def total(values):\n    return<|rc:suffix|>\n<|rc:middle|>"


def greedy(prompt=PROMPT, **kwargs) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=kwargs.pop("max_tokens", 12), **kwargs)


def test_backend_protocol_and_info(tiny_backend):
    assert isinstance(tiny_backend, Backend)
    info = tiny_backend.info()
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["quantization"] is None
    assert "<|rc:middle|>" in tiny_backend.special_tokens() and tiny_backend.context_length >= 2048
    assert tiny_backend.count_tokens("<|rc:middle|>") == 1


def test_greedy_is_deterministic_and_stream_matches(tiny_backend):
    first = tiny_backend.generate(greedy())
    second = tiny_backend.generate(greedy())
    assert first.texts == second.texts and first.completion_tokens > 0
    assert "".join(tiny_backend.stream(greedy())) == first.texts[0]


def test_kv_reuse_gives_the_same_text_as_no_reuse(tiny_model_dir, tiny_backend):
    fresh = TransformersBackend(tiny_model_dir, kv_cache=False)
    keystrokes = [PROMPT, PROMPT.replace("return", "return "), PROMPT.replace("return", "return s"), PROMPT]
    for prompt in keystrokes:
        reused = tiny_backend.generate(greedy(prompt))
        assert reused.texts == fresh.generate(greedy(prompt)).texts
    assert reused.cached_tokens >= reused.prompt_tokens - 3  # the last request re-ran only a few tokens
    assert fresh.generate(greedy()).cached_tokens == 0


def test_sampling_is_seeded_and_n_choices(tiny_backend):
    a = tiny_backend.generate(greedy(temperature=1.0, top_p=0.9, seed=7, n=3, max_tokens=8))
    b = tiny_backend.generate(greedy(temperature=1.0, top_p=0.9, seed=7, n=3, max_tokens=8))
    assert a.texts == b.texts and len(a.texts) == 3 and len(set(a.texts)) > 1


def test_stop_strings_and_cancel(tiny_backend):
    text = tiny_backend.generate(greedy(max_tokens=20)).texts[0]
    assert len(text) > 2
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = tiny_backend.generate(greedy(max_tokens=20, stop=[stop]))
    assert cut.texts[0] == text[: text.find(stop)] and cut.finish_reasons == ["stop"]
    cancel = threading.Event()
    cancel.set()
    result = tiny_backend.generate(greedy(cancel=cancel))
    assert result.finish_reasons == ["cancelled"] and result.texts == [""]


def test_prompt_longer_than_the_context_is_too_large(tiny_backend):
    with pytest.raises(RequestTooLargeError):
        tiny_backend.generate(greedy("x " * (tiny_backend.context_length + 10)))


def test_fim_order_comes_from_the_models_config(tiny_model_dir, tiny_backend, tmp_path):
    """A model exported by our pretraining says which FIM order it prefers; others say nothing."""
    import json
    import shutil

    assert tiny_backend.fim_order is None
    copy = tmp_path / "spm-model"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "repocomplete_fim_order": "spm"}))
    assert TransformersBackend(copy).fim_order == "spm"
    (copy / "config.json").write_text(json.dumps({**config, "repocomplete_fim_order": "sideways"}))
    assert TransformersBackend(copy).fim_order is None                    # unknown: the engine's default


def test_missing_model_directory(tmp_path):
    with pytest.raises(ModelNotFoundError):
        TransformersBackend(tmp_path)


def test_two_adapters_chosen_per_request(tiny_model_dir, lora_adapters):
    backend = TransformersBackend(tiny_model_dir)
    base_before = backend.generate(greedy()).texts
    for name, path in lora_adapters.items():
        backend.load_adapter(name, str(path))
    assert backend.adapters() == ["one", "two"]
    outputs = {name: backend.generate(greedy(adapter=name)).texts[0] for name in (None, "one", "two", None, "one")}
    assert outputs[None] == base_before[0]  # the base model is unchanged by loaded adapters
    assert len({outputs[None], outputs["one"], outputs["two"]}) == 3
    assert backend.generate(greedy(adapter="two")).texts[0] == outputs["two"]  # switching back and forth is stable
    with pytest.raises(AdapterError, match="unknown adapter"):
        backend.generate(greedy(adapter="three"))


def test_adapter_for_another_base_model_is_refused(tiny_model_dir, tiny_model_for, tmp_path, tiny_backend):
    from tests.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "wider", hidden_size=96)
    adapter = make_lora_adapter(other, tmp_path / "wider-adapter", seed=3)
    with pytest.raises(AdapterError, match="another base model|trained for"):
        tiny_backend.load_adapter("wider", str(adapter))
    # Same shapes, but recorded for another (existing, different) model directory.
    twin = build_tiny_model(tmp_path / "twin", seed=5, layers=3)
    twin_adapter = make_lora_adapter(twin, tmp_path / "twin-adapter", seed=4)
    with pytest.raises(AdapterError):
        tiny_backend.load_adapter("twin", str(twin_adapter))
    with pytest.raises(AdapterError, match="not a PEFT adapter"):
        tiny_backend.load_adapter("empty", str(tmp_path))
    assert tiny_backend.adapters() == []
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"]


@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_quantized_on_cpu(tiny_model_dir, bits):
    try:
        backend = TransformersBackend(tiny_model_dir, load_in_8bit=bits == "8bit", load_in_4bit=bits == "4bit", device="cpu")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"bitsandbytes {bits} does not load on this CPU: {exc}")
    assert backend.info()["quantization"] == bits
    assert backend.generate(greedy(max_tokens=4)).completion_tokens > 0


@pytest.mark.gpu
def test_4bit_and_bf16_on_cuda(tiny_model_dir, lora_adapters):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    backend = TransformersBackend(tiny_model_dir, load_in_4bit=True)
    assert backend.info()["device"] == "cuda" and backend.info()["quantization"] == "4bit"
    backend.load_adapter("one", str(lora_adapters["one"]))
    assert backend.generate(greedy(adapter="one", max_tokens=4)).completion_tokens > 0
    bf16 = TransformersBackend(tiny_model_dir, dtype="bfloat16")
    reused = [bf16.generate(greedy(p)).texts for p in (PROMPT, PROMPT + " ")]
    assert bf16.info()["dtype"] == "bfloat16" and len(reused) == 2


def test_concurrent_requests_equal_sequential_ones(tiny_backend):
    from concurrent.futures import ThreadPoolExecutor

    prompts = [PROMPT.replace("total", name) for name in ("alpha", "beta", "gamma", "delta")]
    sequential = [tiny_backend.generate(greedy(p, max_tokens=6)).texts for p in prompts]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda p: tiny_backend.generate(greedy(p, max_tokens=6)).texts, prompts * 2))
    assert concurrent == sequential * 2


def test_abandoned_and_cancelled_streams_release_the_model(tiny_backend):
    stream = tiny_backend.stream(greedy(max_tokens=30))
    next(stream)
    stream.close()  # a client that went away
    cancel = threading.Event()
    pieces = []
    for piece in tiny_backend.stream(greedy(max_tokens=30, cancel=cancel)):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) <= 2
    assert tiny_backend.generate(greedy(max_tokens=2)).completion_tokens > 0


def test_loading_an_adapter_prints_no_library_deprecation(tiny_model_dir, lora_adapters):
    """peft reads transformers' deprecated ``is_gradient_checkpointing``: users must not see that FutureWarning."""
    import subprocess
    import sys

    script = ("import sys; from repocomplete.backends.transformers import TransformersBackend; "
              "TransformersBackend(sys.argv[1]).load_adapter('one', sys.argv[2])")
    done = subprocess.run([sys.executable, "-W", "default", "-c", script, str(tiny_model_dir), str(lora_adapters["one"])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "is_gradient_checkpointing" not in done.stderr and "FutureWarning" not in done.stderr, done.stderr


# -- speed levers: prompt-lookup speculative decoding, mixed-precision prefill, last-position logits --

REPETITIVE = "<|rc:file|>pkg/mod.py\n<|rc:prefix|>" + "".join(
    f"    total = total + values[{i % 3}]\n" for i in range(30)) + "    total = total +<|rc:suffix|>\n<|rc:middle|>"


@pytest.fixture(scope="module")
def speculative_backend(tiny_model_dir):
    return TransformersBackend(tiny_model_dir, speculative_tokens=8, kv_cache=False)


@pytest.mark.parametrize("prompt", [PROMPT, REPETITIVE])
@pytest.mark.parametrize("max_tokens", [1, 5, 40])
def test_speculative_decoding_gives_the_greedy_text(tiny_model_dir, speculative_backend, prompt, max_tokens):
    plain = TransformersBackend(tiny_model_dir, speculative_tokens=0, kv_cache=False)
    for stop in ([], ["\n"]):
        expected = plain.generate(greedy(prompt, max_tokens=max_tokens, stop=stop))
        got = speculative_backend.generate(greedy(prompt, max_tokens=max_tokens, stop=stop))
        assert (got.texts, got.completion_tokens, got.finish_reasons) == (
            expected.texts, expected.completion_tokens, expected.finish_reasons)
        assert "".join(speculative_backend.stream(greedy(prompt, max_tokens=max_tokens, stop=stop))) == expected.texts[0]


def test_speculation_accepts_drafts_and_saves_forward_passes(speculative_backend):
    stats = speculative_backend.speculation
    before = (stats.forwards, stats.drafted, stats.accepted)
    result = speculative_backend.generate(greedy(REPETITIVE, max_tokens=40))
    forwards, drafted, accepted = (stats.forwards - before[0], stats.drafted - before[1], stats.accepted - before[2])
    assert drafted > 0 and accepted > 0
    assert forwards < result.completion_tokens  # fewer model calls than tokens: drafts were taken


def test_speculation_keeps_stop_strings_cancel_and_sampling(speculative_backend):
    text = speculative_backend.generate(greedy(REPETITIVE, max_tokens=30)).texts[0]
    stop = text[len(text) // 2: len(text) // 2 + 2]
    cut = speculative_backend.generate(greedy(REPETITIVE, max_tokens=30, stop=[stop]))
    assert cut.texts[0] == text[: text.find(stop)] and cut.finish_reasons == ["stop"]
    cancel = threading.Event()
    stream = speculative_backend.stream(greedy(REPETITIVE, max_tokens=30, cancel=cancel))
    first = next(stream)
    forwards = speculative_backend.speculation.forwards
    cancel.set()
    rest = "".join(stream)  # only the tokens of the forward pass already run
    assert speculative_backend.speculation.forwards == forwards  # no forward pass after the cancel
    assert text.startswith(first + rest) and len(first + rest) < len(text)
    drafted = speculative_backend.speculation.drafted
    speculative_backend.generate(greedy(REPETITIVE, max_tokens=10, temperature=1.0, seed=1))
    assert speculative_backend.speculation.drafted == drafted  # sampling decodes token by token


def test_stop_after_line_ends_generation_with_the_first_non_blank_line(tiny_backend):
    # the tiny model writes a line break after a few tokens on REPETITIVE, none on PROMPT
    free = tiny_backend.generate(greedy(REPETITIVE, max_tokens=40))
    stopped = tiny_backend.generate(greedy(REPETITIVE, max_tokens=40, stop_after_line=True))
    first_line = free.texts[0].split("\n", 1)[0]
    assert first_line.strip() and "\n" in free.texts[0]
    assert free.texts[0].startswith(stopped.texts[0]) and stopped.texts[0].startswith(first_line + "\n")
    assert "\n" not in stopped.texts[0][len(first_line) + 1:] and stopped.finish_reasons == ["stop"]
    assert stopped.completion_tokens < free.completion_tokens
    no_break = tiny_backend.generate(greedy(PROMPT, max_tokens=20))
    assert "\n" not in no_break.texts[0]
    assert tiny_backend.generate(greedy(PROMPT, max_tokens=20, stop_after_line=True)).texts == no_break.texts


def test_speculation_with_kv_reuse_matches_fresh_decoding(tiny_model_dir):
    reusing = TransformersBackend(tiny_model_dir, speculative_tokens=8)
    fresh = TransformersBackend(tiny_model_dir, speculative_tokens=0, kv_cache=False)
    typed = [REPETITIVE, REPETITIVE.replace("total +<|rc:suffix|>", "total + v<|rc:suffix|>"),
             REPETITIVE.replace("total +<|rc:suffix|>", "total + va<|rc:suffix|>")]
    for prompt in typed:
        got = reusing.generate(greedy(prompt, max_tokens=20))
        assert got.texts == fresh.generate(greedy(prompt, max_tokens=20)).texts
    assert got.cached_tokens >= got.prompt_tokens - 8  # a keystroke re-ran only the tokens after the cursor


def test_mixed_precision_prefill_reuses_the_cache_across_dtypes(tiny_model_dir):
    import torch

    mixed = TransformersBackend(tiny_model_dir, prefill_dtype="bfloat16", speculative_tokens=4)
    assert mixed.info()["prefill_dtype"] == "bfloat16" and mixed.info()["dtype"] == "float32"
    first = mixed.generate(greedy(max_tokens=8))
    again = mixed.generate(greedy(PROMPT.replace("return", "return "), max_tokens=8))
    assert first.completion_tokens > 0 and again.cached_tokens >= again.prompt_tokens - 8
    cache = mixed._cache._entries[None].cache
    assert all(layer.keys.dtype == torch.float32 for layer in cache.layers)  # decoding left it in fp32
    assert TransformersBackend(tiny_model_dir).info()["prefill_dtype"] is None  # auto: not for a small model


def test_only_the_kept_positions_reach_the_output_layer(tiny_backend):
    import torch
    from transformers import DynamicCache

    ids = list(tiny_backend._encode(PROMPT))
    with torch.inference_mode():
        full = tiny_backend.model(input_ids=torch.tensor([ids])).logits[0].float()
        kept = tiny_backend._forward(tiny_backend.model, ids, DynamicCache(config=tiny_backend.base_model.config), keep=3)
    assert kept.shape == (3, full.shape[1])
    torch.testing.assert_close(kept, full[-3:], rtol=1e-4, atol=1e-4)


def test_threads_are_chosen_and_reported(tiny_model_dir, monkeypatch):
    chosen = TransformersBackend(tiny_model_dir).info()
    assert chosen["threads"] == 1 and "small model" in chosen["threads_reason"]
    forced = TransformersBackend(tiny_model_dir, threads=2).info()
    assert forced["threads"] == 2 and "REPOCOMPLETE_THREADS" in forced["threads_reason"]


def test_bad_speed_settings_are_config_errors(tiny_model_dir):
    from repocomplete.errors import ConfigError

    with pytest.raises(ConfigError, match="prefill_dtype"):
        TransformersBackend(tiny_model_dir, prefill_dtype="int4")
    with pytest.raises(ConfigError, match="speculative_tokens"):
        TransformersBackend(tiny_model_dir, speculative_tokens=-1)


# -- adapters never share the bf16 prefill copy or a KV prefix cache entry (issue 23.3) --

def test_kv_cache_and_bf16_prefill_never_mix_adapters(tiny_model_dir, lora_adapters):
    """A cache entry made with one adapter is never reused by another adapter or the base,
    and adapted requests never run on the bf16 prefill copy (it has no LoRA weights): their
    prompts run on the adapted model under bf16 autocast, their decoding in fp32."""
    import torch

    def backend(prefill: str) -> TransformersBackend:
        built = TransformersBackend(tiny_model_dir, prefill_dtype=prefill, speculative_tokens=4)
        for name, path in lora_adapters.items():
            built.load_adapter(name, str(path))
        return built

    mixed, reference = backend("bfloat16"), backend("bfloat16")
    prefill_calls: list[int] = []
    plain_forward = mixed._prefill_model.forward
    mixed._prefill_model.forward = lambda *a, **k: (prefill_calls.append(1), plain_forward(*a, **k))[1]
    adapted_calls: list[tuple[int, bool]] = []   # (tokens, under bf16 autocast) of each adapted-model pass
    adapted_forward = mixed.model.forward
    mixed.model.forward = lambda *a, **k: (
        adapted_calls.append((k["input_ids"].shape[1], torch.is_autocast_enabled("cpu"))), adapted_forward(*a, **k))[1]

    first = mixed.generate(greedy(adapter="one"))
    assert first.cached_tokens == 0 and not prefill_calls  # the adapter's prompt ran on the adapted model
    assert adapted_calls[0] == (first.prompt_tokens, True)  # ... under bf16 autocast
    assert adapted_calls[1:] and all(not autocast for _, autocast in adapted_calls[1:])  # decoding in fp32
    cache = mixed._cache._entries["one"].cache
    assert all(layer.keys.dtype == torch.float32 for layer in cache.layers)
    again = mixed.generate(greedy(adapter="one"))
    assert again.texts == first.texts and again.cached_tokens > 0  # its own entry is reused
    for name in ("two", None):  # same prompt: a shared entry would be reused in full
        got = mixed.generate(greedy(adapter=name))
        assert got.cached_tokens == 0, f"adapter {name!r} reused another adapter's cache"
        assert got.texts == reference.generate(greedy(adapter=name)).texts
    assert prefill_calls  # the base request did use the bf16 copy
    outputs = {name: mixed.generate(greedy(adapter=name)).texts[0] for name in (None, "one", "two")}
    assert len(set(outputs.values())) == 3 and outputs["one"] == first.texts[0]
    # Without the bf16 copy adapted requests run wholly in fp32.
    fp32 = backend("off")
    fp32_calls: list[bool] = []
    fp32_forward = fp32.model.forward
    fp32.model.forward = lambda *a, **k: (fp32_calls.append(torch.is_autocast_enabled("cpu")), fp32_forward(*a, **k))[1]
    assert {name: fp32.generate(greedy(adapter=name)).texts[0] for name in ("one", "two")} != {
        "one": outputs[None], "two": outputs[None]}
    assert fp32_calls and not any(fp32_calls)

    # Reloading a name with other weights drops that name's cache entry.
    mixed.load_adapter("one", str(lora_adapters["two"]))
    reloaded = mixed.generate(greedy(adapter="one"))
    assert reloaded.cached_tokens == 0 and reloaded.texts[0] == outputs["two"]


def test_parameters_are_estimated_from_the_weight_files_before_loading(tiny_model_dir, tiny_backend, tmp_path):
    from repocomplete.backends.transformers import estimate_parameters

    actual = tiny_backend.info()["parameters"]
    assert actual * 0.9 <= estimate_parameters(tiny_model_dir) <= actual * 1.1
    assert estimate_parameters(tmp_path) == 0  # no weights: unknown
