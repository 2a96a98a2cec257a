"""``repocomplete index --watch``: keep an index fresh by polling.

Polling (a walk comparing mtimes and sizes every second) is slower to notice a change
than inotify, but it works the same on every file system, in containers and over network
mounts, needs no extra package, and cannot miss events: the walk *is* the ground truth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from indexer.errors import IndexerError, RootNotDirectoryError
from indexer.types import IndexSummary
from indexer.walk import walk

log = logging.getLogger("indexer.watch")


def snapshot(ws) -> dict[str, tuple[float, int, str | None]]:
    """relpath -> (mtime, size, skip reason) of every candidate file of the workspace."""
    return {e.relpath: (e.mtime, e.size, e.skipped) for e in walk(ws.root, ws.config.walk)}


def watch(ws, *, interval: float = 1.0, on_index: Callable[[IndexSummary], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Re-index ``ws`` whenever its files change, until ``stop`` is set (or Ctrl-C).

    A failing check (a file vanishing mid-walk, a busy database) is logged and retried on
    the next tick; only the root itself disappearing ends the watch.
    """
    stop = stop or threading.Event()
    last = snapshot(ws)
    while not stop.wait(interval):
        try:
            now = snapshot(ws)
            if now == last:
                continue
            summary = ws.index()
            last = snapshot(ws)
            if on_index is not None:
                on_index(summary)
        except RootNotDirectoryError:
            raise
        except (IndexerError, OSError) as exc:
            log.warning("watch: %s (retrying)", exc)
