"""Fixtures for the language-server tests: a real `repocomplete lsp` process on the fake backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lsp.jsonrpc import LspProcess

FAKE_TEXT = "value + 1\n"


def fake_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a language server whose in-process engine runs the fake backend."""
    return {"REPOCOMPLETE_CACHE_DIR": str(cache_dir), "REPOCOMPLETE_FAKE_TEXT": FAKE_TEXT, **extra}


@pytest.fixture
def spawn_lsp(tmp_path: Path) -> Iterator[Callable[..., LspProcess]]:
    """Start `python -m repocomplete lsp ARGS`; every process is closed at the end of the test."""
    started: list[LspProcess] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> LspProcess:
        process = LspProcess(*args, env=env or fake_env(tmp_path / "cache"), stderr_path=tmp_path / f"lsp-{len(started)}.err")
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.close()


@pytest.fixture(scope="module")
def fake_lsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspProcess]:
    """One shared, initialised language server (fake backend, no debounce) for read-mostly tests."""
    tmp = tmp_path_factory.mktemp("lsp")
    process = LspProcess(env=fake_env(tmp / "cache"), stderr_path=tmp / "lsp.err")
    process.capabilities = process.initialize({"backend": "fake", "debounceMs": 0})  # type: ignore[attr-defined]
    process.cache_dir = tmp / "cache"  # type: ignore[attr-defined]
    yield process
    process.close()
