"""Every path a client names, normalised and checked in one place.

Four request fields name server paths: a workspace ``root`` to register, the request's
``workspace`` (a name or a root), ``segments.filepath`` and ``adapter``. Each goes through
:class:`PathPolicy` before anything touches the filesystem, so the rules hold for all of
them at once:

- text first: no NUL or other control character, bounded length (else 400, never a 500);
- no ``~`` expansion for clients (``~`` and ``~user`` name the *server's* home directories);
- normalised (``os.path.realpath``: ``//``, ``/./``, ``..`` and symlinks resolved) before
  any comparison, so every spelling of a path is judged as the same path;
- a workspace root is never the filesystem root, a home directory or a folder holding one,
  and lies inside a root the operator allows (``--allow-root``; by default the start-up
  workspaces); with none allowed, registration over the API is off;
- an adapter is a name loaded at start, or a directory inside an ``--adapter-dir``.

Refusals of a path outside what is allowed are decided before existence is looked at, and
their messages name only what the client sent: the answer never tells whether a path exists.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from repocomplete.errors import ConfigError, InvalidRequestError, WorkspaceNotFoundError
from server.errors import PathNotAllowedError, UnknownAdapterError
from server.schemas import MAX_PATH_CHARS, PRINTABLE_PATH



def check_text(value: str, field: str) -> str:
    """``value`` unless it holds a NUL or control character or is too long (400)."""
    if len(value) > MAX_PATH_CHARS:
        raise InvalidRequestError(f"{field}: longer than {MAX_PATH_CHARS} characters")
    if not PRINTABLE_PATH.match(value):
        raise InvalidRequestError(f"{field}: contains a NUL or control character")
    return value


def client_path(value: str, field: str) -> Path:
    """An absolute path a client sent, normalised (symlinks resolved); 400 when it is not one."""
    check_text(value, field)
    if value.startswith("~"):
        raise InvalidRequestError(f"{field}: '~' is not expanded on the server; give an absolute path")
    if not os.path.isabs(value):
        raise InvalidRequestError(f"{field} must be an absolute path on the server: {value!r}")
    return Path(os.path.realpath(value))


def home_directories() -> set[Path]:
    """Home directories of this machine's accounts (and ``$HOME``), normalised."""
    homes = {os.path.expanduser("~")}
    try:
        homes.update(entry.pw_dir for entry in pwd.getpwall())
    except OSError:
        pass
    return {Path(os.path.realpath(h)) for h in homes if h and os.path.isabs(h)}


def forbidden_root(path: Path, homes: Iterable[Path]) -> str | None:
    """Why ``path`` (normalised) may never be a workspace root, or None."""
    if path.parent == path:
        return "the filesystem root"
    for home in homes:
        if path == home:
            return "a home directory"
        if home.is_relative_to(path) and home.parent != home:
            return "a folder holding home directories"
    return None


@dataclass(frozen=True)
class PathPolicy:
    """What this server lets clients name: normalised allowed roots and adapter folders."""

    allowed_roots: tuple[Path, ...] = ()
    adapter_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, allow_roots: Sequence[str], workspaces: Sequence[str], adapter_dirs: Sequence[str]) -> PathPolicy:
        """The operator's choices (``~`` expands here: the operator means their own home).

        Allowed roots: ``--allow-root`` plus the start-up workspaces. A root that could never
        hold a workspace (``/``, a home directory) is a :class:`ConfigError`.
        """
        homes = home_directories()
        roots = []
        for flag, values in (("--allow-root", allow_roots), ("--workspace", workspaces)):
            for value in values:
                path = Path(os.path.realpath(os.path.expanduser(value)))
                why = forbidden_root(path, homes)
                if why is not None:
                    hint = (" (name the folder that holds your repositories, e.g. ~/src)" if flag == "--allow-root"
                            else " (serve a repository: --workspace DIR, or none: --no-workspace)")
                    raise ConfigError(f"{flag} {value}: refusing {why}{hint}")
                roots.append(path)
        dirs = tuple(Path(os.path.realpath(os.path.expanduser(d))) for d in adapter_dirs)
        return cls(tuple(dict.fromkeys(roots)), tuple(dict.fromkeys(dirs)))

    # -- the four path fields ------------------------------------------------------------

    def workspace_root(self, value: str) -> Path:
        """A root to register over the API: normalised, never ``/`` or a home, inside an allowed root.

        403 when not allowed (decided before existence is looked at), 404 when it is not a
        directory, 400 when it is not an absolute path.
        """
        path = client_path(value, "root")
        why = forbidden_root(path, home_directories())
        if why is not None:
            raise PathNotAllowedError(f"root {value!r}: refusing {why}")
        if not self.allowed_roots:
            raise PathNotAllowedError(
                "registering workspaces over the API is off: the operator allows no roots (serve --allow-root DIR)")
        if not any(path.is_relative_to(root) for root in self.allowed_roots):
            raise PathNotAllowedError(f"root {value!r} is outside the roots this server allows (serve --allow-root DIR)")
        if not path.is_dir():
            raise WorkspaceNotFoundError(f"root {value!r} is not a directory on the server")
        return path

    def startup_root(self, value: str) -> Path:
        """A start-up ``--workspace`` (the operator's choice; already checked by :meth:`from_settings`)."""
        path = Path(os.path.realpath(os.path.expanduser(value)))
        why = forbidden_root(path, home_directories())
        if why is not None:
            raise ConfigError(f"--workspace {value}: refusing {why}")
        if not path.is_dir():
            raise ConfigError(f"--workspace {value}: not a directory")
        return path

    @staticmethod
    def workspace_ref(value: str | None) -> str | None:
        """The request's ``workspace``: a registered name, or an absolute root (normalised)."""
        if not value:
            return value
        check_text(value, "workspace")
        if value.startswith("~"):
            raise InvalidRequestError("workspace: '~' is not expanded on the server; give a name or an absolute root")
        return str(client_path(value, "workspace")) if os.path.isabs(value) else value

    @staticmethod
    def filepath(value: str | None) -> str | None:
        """``segments.filepath``: a label for the prompt and the workspace lookup, never opened.

        Absolute paths are normalised (so ``/repo/../etc/x`` is judged as ``/etc/x`` and
        belongs to no workspace); relative ones are kept as the client wrote them.
        """
        if not value:
            return value
        check_text(value, "segments.filepath")
        return os.path.realpath(value) if os.path.isabs(value) else value

    def adapter(self, value: str | None, loaded: Iterable[str]) -> str | None:
        """``adapter``: a name loaded at start, or a directory inside an ``--adapter-dir``
        (returned as its normalised absolute path, which the engine loads on first use).

        Anything else gets the same 404, whether or not the path exists.
        """
        if not value:
            return value
        check_text(value, "adapter")
        names = sorted(loaded)
        if value in names:
            return value
        refused = UnknownAdapterError(f"unknown adapter {value!r} (loaded: {', '.join(names) or 'none'})")
        if not self.adapter_dirs or value.startswith("~"):
            raise refused
        candidates = [Path(os.path.realpath(value))] if os.path.isabs(value) else [
            Path(os.path.realpath(os.path.join(d, value))) for d in self.adapter_dirs]
        for path in candidates:
            if any(path.is_relative_to(d) and path != d for d in self.adapter_dirs) and path.is_dir():
                return str(path)
        raise refused
