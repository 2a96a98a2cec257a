"""Checkpoint files that never run code: weights-only loads, RNG states as plain data.

``torch.load`` with ``weights_only=False`` unpickles arbitrary objects, so a crafted file in a
checkpoint folder runs whatever it names when a run is resumed or exported. Every checkpoint
this package reads goes through :func:`load`, which only accepts tensors and plain containers
(``weights_only=True``); RNG states are written as tensors, ints and lists
(:func:`rng_state`), so they load under that rule too.

Checkpoints written before this rule held pickled numpy's generator state; :func:`load` reads
them with exactly numpy's array-reconstruction functions allowed (data, no callables), and
refuses anything else with a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

from repocomplete.errors import RepocompleteError


class CheckpointError(RepocompleteError):
    """A checkpoint file that is missing, unreadable, or not a weights-only file."""

    error_type = "checkpoint_error"


def _legacy_numpy_globals() -> list:
    """numpy's array reconstruction (what a pickled ``np.random.get_state()`` needs): data only."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load(path: str | os.PathLike[str], map_location="cpu"):
    """``torch.load`` of tensors and plain containers only; anything else is refused, never run."""
    import torch

    path = Path(path)
    try:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            # a checkpoint from before RNG states were plain data: allow numpy arrays, nothing more
            with torch.serialization.safe_globals(_legacy_numpy_globals()):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refusing to load: not a weights-only checkpoint (unpickling it could run "
                              "code); delete the checkpoint folder and start over") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None


def save(obj, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary name, then rename: a reader never sees half a file."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state(*, numpy: bool = False) -> dict:
    """Every RNG state of this process as tensors, ints and lists (loadable weights-only)."""
    import torch

    version, internal, gauss = random.getstate()
    state: dict = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state(),
                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    if numpy:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`rng_state`; also accepts the tuples and arrays older checkpoints held."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("numpy") is not None:
        import numpy as np

        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
