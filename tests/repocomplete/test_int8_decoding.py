"""int8 decoding weights (``decode_weights``) on a tiny model built in the test: the int8 layer
against fp32, and the backend's promises kept on the int8 path (streaming, stop strings, cancel,
KV prefix reuse, mixed-precision prompts, per-request LoRA adapters)."""

from __future__ import annotations

import threading

import pytest

from repocomplete.backends.transformers import TransformersBackend
from repocomplete.errors import ConfigError

from .test_transformers_backend import PROMPT, REPETITIVE, greedy

torch = pytest.importorskip("torch")
int8 = pytest.importorskip("repocomplete.backends.int8")
pytestmark = pytest.mark.skipif(not int8.int8_supported(), reason="no x86/fbgemm quantized kernels in this torch")


def relative_error(got, want) -> float:
    return float((got - want).norm() / want.norm())


def test_int8_linear_matches_fp32_within_quantization_error():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 384)
    layer = int8.Int8Linear(linear)
    x = torch.randn(2, 5, 256)
    with torch.inference_mode():
        want, got = linear(x), layer(x)
        assert got.shape == want.shape == (2, 5, 384) and got.dtype == torch.float32
        assert relative_error(got, want) < 0.02
        assert layer(x.bfloat16()).dtype == torch.bfloat16  # the caller's dtype comes back
        # the weight itself: per-channel symmetric int8 is within half a step of every weight
        step = linear.weight.abs().amax(dim=1, keepdim=True) / 127
        assert ((layer.dequantized_weight() - linear.weight).abs() <= step / 2 + 1e-6).all()
    assert layer.weight is None and isinstance(layer, torch.nn.Linear) and "int8" in repr(layer)


def test_quantize_linears_replaces_the_large_layers_only():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(512, 1024)))
    assert int8.quantize_linears(model, min_weights=10_000) == 1
    assert type(model[0]) is torch.nn.Linear and isinstance(model[2][0], int8.Int8Linear)
    assert int8.quantize_linears(model, min_weights=0) == 1  # the small one now; the int8 one is left as it is


@pytest.fixture(scope="module")
def every_linear_in_int8():
    """The tiny model's layers are far below the size threshold: quantize all of them here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(int8, "MIN_INT8_WEIGHTS", 0)
        yield


@pytest.fixture(scope="module")
def int8_backend(tiny_model_dir, every_linear_in_int8):
    return TransformersBackend(tiny_model_dir, decode_weights="int8", speculative_tokens=4)


def test_every_linear_layer_decodes_in_int8(int8_backend, tiny_backend):
    assert int8_backend.info()["decode_weights"] == "int8"
    linears = [m for m in int8_backend.base_model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, int8.Int8Linear) for m in linears)  # output layer included
    ids = list(int8_backend._encode(PROMPT))
    with torch.inference_mode():
        got = int8_backend.base_model(input_ids=torch.tensor([ids])).logits[0, -1]
        want = tiny_backend.base_model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert relative_error(got, want) < 0.1  # the same model, up to int8 rounding
    assert tiny_backend.info()["decode_weights"] is None  # auto: not for a small model


def test_int8_keeps_streaming_stop_strings_cancel_and_kv_reuse(int8_backend, tiny_model_dir, every_linear_in_int8):
    first = int8_backend.generate(greedy(max_tokens=20))
    assert first.completion_tokens > 0 and int8_backend.generate(greedy(max_tokens=20)).texts == first.texts
    assert "".join(int8_backend.stream(greedy(max_tokens=20))) == first.texts[0]
    text = first.texts[0]
    stop = text[len(text) // 2: len(text) // 2 + 2]
    cut = int8_backend.generate(greedy(max_tokens=20, stop=[stop]))
    assert cut.texts[0] == text[: text.find(stop)] and cut.finish_reasons == ["stop"]
    cancel = threading.Event()
    pieces = []
    for piece in int8_backend.stream(greedy(max_tokens=30, cancel=cancel)):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) <= 2  # stopped within one decoding step
    fresh = TransformersBackend(tiny_model_dir, decode_weights="int8", kv_cache=False)
    for prompt in (PROMPT, PROMPT.replace("return", "return "), PROMPT.replace("return", "return s")):
        reused = int8_backend.generate(greedy(prompt, max_tokens=10))
        assert reused.texts == fresh.generate(greedy(prompt, max_tokens=10)).texts
    assert reused.cached_tokens >= reused.prompt_tokens - 5  # a keystroke re-ran the typed text and the suffix only


def test_int8_speculative_drafts_give_the_greedy_text(tiny_model_dir, every_linear_in_int8):
    """Activations are quantized per token, so a draft verified in one pass decodes as token by token."""
    drafting = TransformersBackend(tiny_model_dir, decode_weights="int8", speculative_tokens=8, kv_cache=False)
    plain = TransformersBackend(tiny_model_dir, decode_weights="int8", kv_cache=False)
    for prompt in (PROMPT, REPETITIVE):
        assert drafting.generate(greedy(prompt, max_tokens=30)).texts == plain.generate(greedy(prompt, max_tokens=30)).texts
    assert drafting.speculation.accepted > 0


def test_int8_rows_do_not_depend_on_their_chunk():
    torch.manual_seed(1)
    layer = int8.Int8Linear(torch.nn.Linear(128, 64))
    x = torch.randn(9, 128) * torch.rand(9, 1) * 10  # rows of very different magnitudes
    with torch.inference_mode():
        together = layer(x)
        alone = torch.cat([layer(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(together, alone)


def test_int8_decoding_after_a_bf16_prompt(tiny_model_dir, lora_adapters, every_linear_in_int8):
    mixed = TransformersBackend(tiny_model_dir, decode_weights="int8", prefill_dtype="bfloat16")
    info = mixed.info()
    assert info["decode_weights"] == "int8" and info["prefill_dtype"] == "bfloat16"
    first = mixed.generate(greedy(max_tokens=8))
    again = mixed.generate(greedy(PROMPT.replace("return", "return "), max_tokens=8))
    assert first.completion_tokens > 0 and again.cached_tokens >= again.prompt_tokens - 8
    # the bf16 copy keeps float weights: only the decoding model is int8
    assert not any(isinstance(m, int8.Int8Linear) for m in mixed._prefill_model.modules())
    # an adapted request's prompt runs on the adapted int8 model under bf16 autocast, then decodes
    mixed.load_adapter("one", str(lora_adapters["one"]))
    adapted = mixed.generate(greedy(adapter="one", max_tokens=8))
    assert adapted.completion_tokens > 0 and adapted.texts != first.texts
    assert mixed.generate(greedy(adapter="one", max_tokens=8)).texts == adapted.texts


def test_lora_adapters_apply_on_top_of_int8_weights(tiny_model_dir, lora_adapters, every_linear_in_int8):
    """Per-request adapters: PEFT wraps the int8 layers and adds each adapter's fp32 delta."""
    quantized = TransformersBackend(tiny_model_dir, decode_weights="int8")
    reference = TransformersBackend(tiny_model_dir, decode_weights="off")
    base_before = quantized.generate(greedy()).texts[0]
    for backend in (quantized, reference):
        for name, path in lora_adapters.items():
            backend.load_adapter(name, str(path))
    outputs = {name: quantized.generate(greedy(adapter=name)).texts[0] for name in (None, "one", "two")}
    assert outputs[None] == base_before  # loading adapters leaves the base requests alone
    assert len(set(outputs.values())) == 3  # each adapter changes the completion its own way
    assert quantized.generate(greedy(adapter="one")).texts[0] == outputs["one"]  # switching back is stable
    ids = torch.tensor([list(quantized._encode(PROMPT))])
    with torch.inference_mode():
        for name in ("one", "two"):
            quantized.model.set_adapter(name)
            reference.model.set_adapter(name)
            got, want = quantized.model(input_ids=ids).logits[0, -1], reference.model(input_ids=ids).logits[0, -1]
            assert relative_error(got, want) < 0.1, name  # the fp32 adapter's outputs, up to int8 rounding
    adapted = [m for m in quantized.model.modules() if hasattr(m, "lora_A")]
    assert adapted and all(isinstance(m.get_base_layer(), int8.Int8Linear) for m in adapted)
    assert all(m.lora_A["one"].weight.dtype == torch.float32 for m in adapted)


def test_decode_weights_settings_are_checked(tiny_model_dir):
    with pytest.raises(ConfigError, match="decode_weights"):
        TransformersBackend(tiny_model_dir, decode_weights="int4")
    with pytest.raises(ConfigError, match="int8 needs an fp32 model"):
        TransformersBackend(tiny_model_dir, decode_weights="int8", dtype="bfloat16")
    assert TransformersBackend(tiny_model_dir, decode_weights="off").info()["decode_weights"] is None
