"""int8 weights for decoding on CPU: a quarter of fp32's bytes per generated token.

Batch-1 decoding is memory-bound: every token reads every weight once (≈2 GB in fp32 for
Qwen2.5-Coder-0.5B, 28% of it the 151,936 × 896 output layer). :class:`Int8Linear` keeps a
linear layer's weight as int8 with one fp32 scale per output channel (symmetric) and
multiplies with fbgemm's dynamic-quantization kernel (the activations are quantized to 8 bits
per token, see :meth:`Int8Linear.forward`), which on AVX512-VNNI/AMX CPUs runs a 1 × 896 by
896 × 4864 product ≈3× faster than fp32 (docs/MODELS.md; torch's weight-only
``_weight_int8pack_mm`` was slower than fp32 with fp32 activations there, and
``quantize_dynamic`` is deprecated Python API around the same kernel).

It stays a ``torch.nn.Linear`` (without a float ``weight``) so that PEFT wraps it like any
linear layer: a LoRA adapter's delta is computed in fp32 on top of the int8 product, and
adapters load, switch and unload as before.
"""

from __future__ import annotations

import functools
import warnings

import torch

#: Linear layers with fewer weights stay in fp32: the per-call activation quantization costs
#: more than the bytes saved (Qwen2.5-Coder-0.5B's 128 × 896 key/value projections).
MIN_INT8_WEIGHTS = 256 * 1024


def int8_supported() -> bool:
    """Whether this torch build has the fbgemm/x86 quantized kernels (all x86-64 CPU wheels)."""
    engines = set(torch.backends.quantized.supported_engines)
    return bool(engines & {"x86", "fbgemm"}) and hasattr(torch.ops.quantized, "linear_dynamic")


@functools.cache
def _reduce_range() -> bool:
    """7-bit activations where fbgemm's int16 pair sums could saturate (CPUs without VNNI);
    8-bit ones (half the rounding error) on VNNI / AMX-INT8 CPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return True
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


class Int8Linear(torch.nn.Linear):
    """A frozen ``nn.Linear`` with int8 per-output-channel weights (inference only)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        torch.nn.Module.__init__(self)  # not Linear.__init__: it would allocate a float weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
        bias = linear.bias.detach().float() if linear.bias is not None else None
        with warnings.catch_warnings():
            # torch 2.13 deprecates creating quantized tensors; the packed kernel still takes one.
            warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
            qweight = torch.quantize_per_channel(weight, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
        # Bias left out of the kernel: it is added after each row is scaled back (see forward).
        self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        # No float weight: PEFT then leaves an adapter's weights in their own (fp32) dtype.
        self.register_parameter("weight", None)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        fence = torch.zeros(1, self.in_features)
        fence[0, :2] = torch.tensor([1.0, -1.0])
        self.register_buffer("_fence", fence, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` with ``x`` quantized to 8 bits per row (per token).

        fbgemm quantizes its input with one range for the whole tensor, so a token's result
        would depend on the other tokens of its chunk: a prompt processed in one pass and the
        same prompt reused from the KV cache, or a speculative draft verified in one pass,
        would decode differently. Each row is divided by its own largest magnitude and a
        fence row holding +1 and -1 pins the range to [-1, 1]: every row is quantized on its
        own (per-token, more accurate than per-tensor too), and the integer product is exact,
        so a row's result is the same whatever else is in the chunk.
        """
        dtype, shape = x.dtype, x.shape
        rows = x.reshape(-1, self.in_features).float()
        magnitude = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
        out = torch.ops.quantized.linear_dynamic(torch.cat([rows / magnitude, self._fence]), self._packed,
                                                 _reduce_range())[:-1]
        out = out * magnitude if self.bias is None else torch.addcmul(self.bias, out, magnitude)
        out = out.reshape(*shape[:-1], self.out_features)
        return out if dtype == torch.float32 else out.to(dtype)

    @property
    def qweight(self) -> torch.Tensor:
        """An empty int8 tensor on the layer's device: where PEFT looks up a quantized layer's
        device and dtype when it attaches an adapter (placed here, kept in its own float dtype)."""
        return self._fence.new_empty(0, dtype=torch.int8)

    def dequantized_weight(self) -> torch.Tensor:
        """The int8 weight times its scales, as fp32 (for tests and inspection)."""
        return torch.ops.quantized.linear_unpack(self._packed)[0].dequantize()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8"


def quantize_linears(model: torch.nn.Module, *, min_weights: int | None = None) -> int:
    """Replace every plain ``nn.Linear`` of ``model`` holding ≥ ``min_weights`` weights (default
    :data:`MIN_INT8_WEIGHTS`; the output layer included) by an :class:`Int8Linear`, in place; the
    fp32 weights are released. Returns how many layers were replaced."""
    min_weights = MIN_INT8_WEIGHTS if min_weights is None else min_weights
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is torch.nn.Linear and module.weight.numel() >= min_weights]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
    if targets:
        # The float parameters left (embeddings, norms, small projections) are views into the
        # weights file's memory map: while one lives, the whole map stays, and every fp32
        # weight page read while quantizing is counted in our RSS. Copies release it
        # (0.5B: 2.9 GB -> 1.5 GB resident).
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.data = parameter.data.clone()
    return len(targets)
