"""The workspace registry over the real indexer, on a small repository copied from the stdlib."""

from __future__ import annotations

import shutil
import sysconfig
import threading
from pathlib import Path

import pytest

from repocomplete.backends.fake import FakeBackend
from repocomplete.engine import Engine
from repocomplete.errors import WorkspaceNotFoundError
from repocomplete.types import CompletionRequest, DebugOptions, Segments
from repocomplete.workspace_registry import WorkspaceRegistry

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "textkit"
    (root / "textkit").mkdir(parents=True)
    for name in ("textwrap.py", "shlex.py", "fnmatch.py"):
        shutil.copy(STDLIB / name, root / "textkit" / name)
    (root / "textkit" / "use.py").write_text("from textkit.textwrap import dedent\n\n\ndef tidy(text):\n    return ")
    return root


def test_register_resolve_list_and_unregister(repo, tmp_path):
    registry = WorkspaceRegistry(cache_dir=tmp_path / "cache")
    progress = []
    workspace = registry.register(repo, progress=progress.append)
    assert registry.register(repo, index=False) is workspace  # same root: same workspace
    assert registry.get("textkit") is workspace and registry.get(str(repo)) is workspace
    assert registry.resolve(filepath=str(repo / "textkit" / "use.py")) is workspace
    assert registry.resolve(git_url="git@github.com:someone/textkit.git") is workspace
    assert registry.resolve(filepath="textkit/use.py") is workspace  # the only one
    assert registry.resolve(filepath=str(tmp_path / "elsewhere.py")) is None
    [row] = registry.list()
    assert row["name"] == "textkit" and row["files"] >= 4 and row["indexed"]
    with pytest.raises(WorkspaceNotFoundError, match="textkit"):
        registry.get("other")
    registry.unregister("textkit")
    assert registry.list() == [] and registry.resolve(filepath="textkit/use.py") is None


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(WorkspaceNotFoundError, match="not a directory"):
        WorkspaceRegistry(cache_dir=tmp_path).register(tmp_path / "nope")


def test_engine_retrieves_repository_context(repo, tmp_path):
    engine = Engine(FakeBackend("dedent(text)\n"))
    engine.workspaces.cache_dir = tmp_path / "cache"
    engine.workspaces.register(repo)
    use = repo / "textkit" / "use.py"
    text = use.read_text()
    req = CompletionRequest(segments=Segments(prefix=text, suffix="", filepath=str(use)),
                            debug_options=DebugOptions(return_prompt=True, return_snippets=True))
    result = engine.complete(req)
    assert result.choices[0].text == "dedent(text)"
    assert result.snippets and any(s.filepath == "textkit/textwrap.py" for s in result.snippets)
    assert result.prompt.startswith("<|rc:repo|>textkit\n<|rc:file|>")
    assert "<|rc:file|>textkit/use.py\n<|rc:prefix|>from textkit.textwrap import dedent" in result.prompt
    assert result.timings.retrieval_ms > 0


def test_concurrent_registration_of_different_roots(tmp_path):
    roots = []
    for i in range(4):
        root = tmp_path / f"r{i}"
        root.mkdir()
        (root / "m.py").write_text(f"X{i} = {i}\n")
        roots.append(root)
    registry = WorkspaceRegistry(cache_dir=tmp_path / "cache")
    threads = [threading.Thread(target=registry.register, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(row["name"] for row in registry.list()) == ["r0", "r1", "r2", "r3"]
    registry.close()
