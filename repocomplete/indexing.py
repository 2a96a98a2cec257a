"""Background indexing of workspaces, with progress that clients can poll.

One service for every front-end: the server's ``/v1/workspaces`` and its start-up
workspaces, ``repocomplete run`` and the language server's in-process mode all index
through an engine's :attr:`repocomplete.engine.Engine.indexing`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from repocomplete.errors import RepocompleteError, WorkspaceBusyError, WorkspaceNotFoundError

log = logging.getLogger("repocomplete.indexing")

#: ``on_progress(job)`` after each progress update; ``on_done(job)`` once it is ready or failed.
JobCallback = Callable[["IndexJob"], None]


@dataclass
class IndexJob:
    name: str
    root: str
    status: str = "queued"
    files_done: int = 0
    files_total: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None
    summary: dict | None = None

    def as_dict(self) -> dict:
        """What clients poll: name, root, status, progress, elapsed seconds, error, summary."""
        end = self.finished or time.monotonic()
        return {"name": self.name, "root": self.root, "status": self.status, "files_done": self.files_done,
                "files_total": self.files_total, "elapsed_s": round(end - self.started, 3), "error": self.error,
                "summary": self.summary}

    @property
    def running(self) -> bool:
        return self.status in ("queued", "indexing")


class IndexJobs:
    """Registers workspaces with the engine and indexes each in its own daemon thread."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._jobs: dict[str, IndexJob] = {}
        self._lock = threading.Lock()

    def start(self, root: str | Path, name: str | None = None, *, on_progress: JobCallback | None = None,
              on_done: JobCallback | None = None) -> IndexJob:
        """Register ``root`` now (so requests can name it) and index it in the background.

        ``root`` is trusted: the server passes it through :class:`server.paths.PathPolicy` first.
        Starting a workspace that is being indexed returns the running job (no callbacks).
        """
        workspace = self.engine.workspaces.register(str(root), name=name, index=False)
        job = IndexJob(name=self.engine.workspaces.name_of(workspace), root=str(workspace.root))
        with self._lock:
            running = self._jobs.get(job.name)
            if running is not None and running.running:
                return running
            self._jobs[job.name] = job
        threading.Thread(target=self._index, args=(workspace, job, on_progress, on_done), name=f"index-{job.name}",
                         daemon=True).start()
        return job

    def workspace(self, job: IndexJob):
        """The engine's workspace of ``job`` (usable while it indexes: live buffers can be pushed)."""
        return self.engine.workspaces.get(job.name)

    def remove(self, name: str) -> IndexJob:
        """Unregister a workspace (its index stays in the cache for a later registration).

        WorkspaceBusyError (409) while it is being indexed: the indexing thread still writes to its store."""
        job = self.get(name)
        if job.running:
            raise WorkspaceBusyError(f"workspace {name!r} is being indexed; delete it once indexing has finished")
        with self._lock:
            self._jobs.pop(name, None)
        try:
            self.engine.workspaces.unregister(name)
        except WorkspaceNotFoundError:
            pass  # registered by name only in the job list (never opened): nothing to close
        return job

    def _index(self, workspace, job: IndexJob, on_progress: JobCallback | None, on_done: JobCallback | None) -> None:
        job.status = "indexing"

        def progress(p) -> None:
            job.files_done, job.files_total = p.files_done, p.files_total
            if on_progress is not None:
                on_progress(job)

        try:
            summary = workspace.index(progress=progress)
            job.summary = dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else None
            job.status = "ready"
        except RepocompleteError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a background thread must record, not die silently
            log.exception("indexing %s failed", job.root)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.monotonic()
            if on_done is not None:
                on_done(job)

    def get(self, name: str) -> IndexJob:
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            raise WorkspaceNotFoundError(f"no workspace named {name!r}; registered: {', '.join(self.names()) or 'none'}")
        return job

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._jobs)

    def all(self) -> list[IndexJob]:
        with self._lock:
            return [self._jobs[n] for n in sorted(self._jobs)]

    def wait(self, timeout_s: float) -> bool:
        """Block until no job is running (used by ``repocomplete run``); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while any(j.running for j in self.all()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
