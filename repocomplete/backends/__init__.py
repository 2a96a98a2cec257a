"""Model backends behind one protocol (:class:`repocomplete.backends.base.Backend`).

torch / transformers / peft are imported only inside backend modules, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repocomplete.backends.base import Backend
    from repocomplete.config import EngineConfig

#: Backend names accepted by ``--backend`` / ``EngineConfig.backend``.
BACKENDS = ("transformers", "openai", "fake")


def create_backend(config: EngineConfig) -> Backend:
    """Build the backend ``config.backend`` names and load ``config.adapters`` into it."""
    from repocomplete.errors import ConfigError

    if config.backend == "fake":
        from repocomplete.backends.fake import FakeBackend

        backend: Backend = FakeBackend(config.fake_text, delay_s=config.fake_delay_s)
    elif config.backend == "openai":
        from repocomplete.backends.openai import OpenAIBackend

        backend = OpenAIBackend.from_config(config)
    elif config.backend == "transformers":
        from repocomplete.backends.transformers import TransformersBackend

        backend = TransformersBackend.from_config(config)
    else:
        raise ConfigError(f"unknown backend {config.backend!r}; choose from: {', '.join(BACKENDS)}")
    for name, path in config.adapters.items():
        backend.load_adapter(name, path)
    return backend
