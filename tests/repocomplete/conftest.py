"""Fixtures of the engine and backend tests.

``tiny_model_dir`` (the "repocomplete"-template tiny model) comes from the root conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_for(tmp_path_factory):
    """Factory: a tiny model whose tokenizer has ``template``'s special tokens (cached per session)."""
    from repocomplete.tiny_model import build_tiny_model

    built: dict[str, Path] = {}

    def build(template: str) -> Path:
        if template not in built:
            built[template] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{template}"), template=template)
        return built[template]

    return build
