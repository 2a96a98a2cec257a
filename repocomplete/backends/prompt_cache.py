"""Reuse of the KV cache of the unchanged prompt prefix between requests.

On a keystroke the new prompt shares almost all of its tokens with the previous one;
on CPU, processing the prompt dominates latency. Each adapter (and the base model)
keeps the token ids and KV cache of its last sequence; a new request crops that cache
to the longest common token prefix and runs only the tokens after it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class CachedSequence:
    """Token ids whose keys/values are held in ``cache`` (a transformers Cache)."""

    ids: list[int]
    cache: Any


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token id lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def crop_cache(cache: Any, keep: int) -> None:
    """Drop every cached position from ``keep`` on (transformers 5: crop takes a negative count)."""
    length = cache.get_seq_length()
    if keep >= length:
        return
    try:
        cache.crop(keep - length)
    except ValueError:  # older transformers: crop(final_length)
        cache.crop(keep)


class PromptCache:
    """The last sequence per key (adapter name or None), least recently used evicted."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, CachedSequence] = OrderedDict()

    def take(self, key: Any, ids: list[int]) -> tuple[Any, int]:
        """A cache holding a prefix of ``ids`` and its length (None, 0 when nothing reusable).

        At least the last token of ``ids`` is left to run, since the model needs its logits.
        The entry is removed: the caller extends the cache in place and stores it back.
        """
        entry = self._entries.pop(key, None)
        if entry is None:
            return None, 0
        keep = min(common_prefix_length(entry.ids, ids), len(ids) - 1)
        if keep <= 0:
            return None, 0
        crop_cache(entry.cache, keep)
        return entry.cache, keep

    def store(self, key: Any, ids: list[int], cache: Any) -> None:
        self._entries[key] = CachedSequence(list(ids), cache)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: Any) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def cast_cache(cache: Any, dtype: Any) -> None:
    """Convert every cached key/value tensor to ``dtype`` in place (mixed-precision prefill/decode)."""
    for layer in getattr(cache, "layers", ()):
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if keys is not None and getattr(keys, "dtype", dtype) != dtype:
            layer.keys = keys.to(dtype)
        if values is not None and getattr(values, "dtype", dtype) != dtype:
            layer.values = values.to(dtype)
