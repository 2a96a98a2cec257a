"""Model backends behind one protocol (:class:`repocomplete.backends.base.Backend`).

torch / transformers / peft are imported only inside backend modules, lazily: the registry
names each backend's factory as ``"module:Class.method"`` and imports it on first use.

To add a backend: write ``repocomplete/backends/<name>.py`` with a class implementing
:class:`~repocomplete.backends.base.Backend` and a ``from_config(config: EngineConfig)``
classmethod, then add one ``register_backend("<name>", "repocomplete.backends.<name>:<Class>.from_config")``
line below. Every ``--backend`` choice list and ``EngineConfig.backend``'s check read
:func:`backend_names`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from repocomplete.backends.base import Backend

# (repocomplete.config reads this registry for its choices, so the config type is not imported here.)
#: ``"module:Class.method"`` or a callable ``EngineConfig -> Backend``.
Factory = Union[str, "Callable[[Any], Backend]"]


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend."""

    name: str
    #: ``"module:Class.method"`` (imported lazily) or a callable ``EngineConfig -> Backend``.
    factory: Factory
    #: Whether it runs a model from a local directory (``--model`` is resolved on disk).
    local_model: bool = True

    def load(self) -> Callable[[Any], Backend]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        target = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(name: str, factory: Factory, *, local_model: bool = True) -> None:
    """Make ``name`` a valid ``--backend`` / ``EngineConfig.backend`` value."""
    _REGISTRY[name] = BackendEntry(name, factory, local_model)


def backend_names() -> tuple[str, ...]:
    """Registered backend names, the default (``transformers``) first."""
    return tuple(_REGISTRY)


def backend_entry(name: str) -> BackendEntry:
    """The registered backend called ``name``; ConfigError (one line) otherwise."""
    if name not in _REGISTRY:
        from repocomplete.errors import ConfigError

        raise ConfigError(f"unknown backend {name!r}; choose from: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_backend(config: Any) -> Backend:
    """Build the backend an ``EngineConfig``'s ``backend`` names and load its ``adapters`` into it."""
    backend = backend_entry(config.backend).load()(config)
    for name, path in config.adapters.items():
        backend.load_adapter(name, path)
    return backend


register_backend("transformers", "repocomplete.backends.transformers:TransformersBackend.from_config")
register_backend("openai", "repocomplete.backends.openai:OpenAIBackend.from_config", local_model=False)
register_backend("fake", "repocomplete.backends.fake:FakeBackend.from_config", local_model=False)
