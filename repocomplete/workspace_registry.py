"""The repositories the engine retrieves context from, by name or root.

A request names its workspace explicitly, or the registry finds it from the file's
absolute path (the deepest registered root containing it) or the client's git URL.
Thread-safe: front-ends register workspaces while requests are being served.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.errors import IndexerError
from repocomplete.errors import RepocompleteError, WorkspaceNotFoundError

if TYPE_CHECKING:
    from indexer.types import IndexProgress, IndexSummary
    from indexer.workspace import Workspace


class WorkspaceRegistry:
    """Named :class:`indexer.workspace.Workspace` objects, created and indexed on register."""

    def __init__(self, *, cache_dir: str | Path | None = None, index_config: Any = None) -> None:
        self.cache_dir = cache_dir
        self.index_config = index_config
        self._lock = threading.RLock()
        self._by_name: dict[str, Workspace] = {}
        self._summaries: dict[str, IndexSummary] = {}

    def register(
        self,
        root: str | Path,
        name: str | None = None,
        *,
        index: bool = True,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> Workspace:
        """Open (and by default index, incrementally) the repository at ``root`` under ``name``.

        Registering the same root again returns the existing workspace (re-indexed when ``index``).
        """
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise WorkspaceNotFoundError(f"workspace root is not a directory: {path}")
        with self._lock:
            workspace = self._find_root(path)
            if workspace is None:
                workspace = self._open(path)
                self.add(workspace, name)
        if index:
            try:
                summary = workspace.index(progress)
            except IndexerError as exc:  # the indexer is a leaf with its own errors: map them here
                raise RepocompleteError(f"cannot index {path}: {exc}") from None
            with self._lock:
                self._summaries[self.name_of(workspace)] = summary
        return workspace

    def add(self, workspace: Workspace, name: str | None = None) -> str:
        """Register an already opened workspace (or any object with its interface); returns its name."""
        with self._lock:
            existing = self._find_root(Path(workspace.root).resolve())
            if existing is not None:
                return self.name_of(existing)
            unique = self._unique(name or getattr(workspace, "name", None) or Path(workspace.root).name)
            self._by_name[unique] = workspace
            return unique

    def unregister(self, name_or_root: str) -> None:
        """Forget a workspace and close its index."""
        with self._lock:
            workspace = self.get(name_or_root)
            name = self.name_of(workspace)
            del self._by_name[name]
            self._summaries.pop(name, None)
        workspace.close()

    def get(self, name_or_root: str | Path) -> Workspace:
        """The workspace registered under this name or root; WorkspaceNotFoundError otherwise."""
        with self._lock:
            key = str(name_or_root)
            if key in self._by_name:
                return self._by_name[key]
            found = self._find_root(path) if key and (path := _normalised(key)) is not None else None
            if found is not None:
                return found
            known = ", ".join(sorted(self._by_name)) or "none registered"
        raise WorkspaceNotFoundError(f"unknown workspace {key!r} (known: {known})")

    def resolve(self, name: str | None = None, filepath: str | None = None, git_url: str | None = None) -> Workspace | None:
        """The workspace a request belongs to, or None when none matches.

        An explicit ``name`` must exist; otherwise the deepest root containing an absolute
        ``filepath``, else a workspace whose name matches the repository in ``git_url``,
        else the only workspace when exactly one is registered and ``filepath`` is relative.
        """
        if name:
            return self.get(name)
        with self._lock:
            workspaces = list(self._by_name.items())
        if filepath and Path(filepath).is_absolute():
            path = _normalised(filepath)
            if path is None:
                return None
            containing = [w for _, w in workspaces if path.is_relative_to(Path(w.root).resolve())]
            if containing:
                return max(containing, key=lambda w: len(Path(w.root).resolve().parts))
            return None
        if git_url:
            repo = git_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
            for ws_name, workspace in workspaces:
                if repo and repo in (ws_name, Path(workspace.root).name):
                    return workspace
        if len(workspaces) == 1:
            return workspaces[0][1]
        return None

    def name_of(self, workspace: Workspace) -> str:
        with self._lock:
            for name, candidate in self._by_name.items():
                if candidate is workspace:
                    return name
        raise WorkspaceNotFoundError(f"workspace {workspace.root} is not registered")

    def list(self) -> list[dict]:
        """Name, root and last index summary of every workspace (for health/info endpoints)."""
        with self._lock:
            rows = []
            for name, workspace in sorted(self._by_name.items()):
                summary = self._summaries.get(name)
                rows.append({
                    "name": name,
                    "root": str(workspace.root),
                    "files": None if summary is None else summary.files_indexed + summary.files_unchanged,
                    "indexed": summary is not None,
                })
            return rows

    def close(self) -> None:
        """Close every workspace's index."""
        with self._lock:
            workspaces = list(self._by_name.values())
            self._by_name.clear()
        for workspace in workspaces:
            workspace.close()

    def __len__(self) -> int:
        return len(self._by_name)

    def _open(self, root: Path) -> Workspace:
        from indexer.workspace import Workspace

        try:
            return Workspace(root, cache_dir=self.cache_dir, config=self.index_config)
        except IndexerError as exc:
            raise RepocompleteError(f"cannot open the index of {root}: {exc}") from None

    def _find_root(self, path: Path) -> Workspace | None:
        for workspace in self._by_name.values():
            if Path(workspace.root).resolve() == path:
                return workspace
        return None

    def _unique(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self._by_name:
            candidate, n = f"{name}-{n}", n + 1
        return candidate


def _normalised(path: str) -> Path | None:
    """``path`` expanded and resolved; None when it cannot name a file (a NUL byte, ``~nosuchuser``)."""
    try:
        return Path(path).expanduser().resolve()
    except (ValueError, RuntimeError, OSError):
        return None
