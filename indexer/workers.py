"""The worker processes of big index runs: parse ahead while the writer stores in order.

Workers die with the writer, run at a lower CPU priority than it (the writer is the
critical path) and without the cyclic garbage collector.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def auto_workers(cpus: int) -> int:
    """Parse workers for ``cpus`` CPUs: one CPU is left to the writer, except on two CPUs.

    The writer spends about half as long in SQLite as the workers spend parsing, so on a
    2-CPU machine two workers and the writer share the CPUs evenly; with one worker the writer
    would wait on it (docs/BENCHMARKS.md, "Indexer", session 2).
    """
    if cpus < 2:
        return 1
    return 2 if cpus == 2 else min(cpus - 1, 8)


@contextmanager
def parallel_map(workers: int, jobs: int, *, min_jobs: int) -> Iterator[Callable]:
    """``map`` over worker processes for big runs, the built-in ``map`` for fewer than ``min_jobs``.

    Parsing is CPU-bound Python and tree-sitter work; the writer (this process) stores
    results in order while the workers parse ahead. A single-threaded caller (the CLI, a
    script) forks its workers: they start at once and never re-import the caller's main
    module. A threaded one (the server indexes from a thread) spawns them, because forking
    a threaded process can copy a lock some other thread holds.
    """
    count = workers if workers > 0 else auto_workers(os.cpu_count() or 1)
    if count <= 1 or jobs < min_jobs:
        yield map
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(count, jobs // 16 + 1), initializer=_start_worker,
                             initargs=(os.getpid(),), mp_context=multiprocessing.get_context(method)) as pool:
        yield lambda fn, items: pool.map(fn, items, chunksize=8)


def _start_worker(writer_pid: int) -> None:
    """Worker start-up: die with the writer, and yield the CPU to it."""
    _die_with_parent(writer_pid)
    _yield_to_the_writer()


def _die_with_parent(writer_pid: int) -> None:
    """A killed writer (``kill -9`` of ``repocomplete index``) takes its workers along.

    Without this they wait forever on the task queue, whose pipe other workers keep open.
    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); elsewhere
    a daemon thread polls the parent's pid. Either way a parent already gone ends the worker.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:   # PR_SET_PDEATHSIG
                if os.getppid() != writer_pid:             # it died before the call
                    os._exit(1)
                return
        except OSError:
            pass

    def watch() -> None:
        while os.getppid() == writer_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _yield_to_the_writer() -> None:
    """A lower CPU priority than the writing process. Workers and writer
    share the CPUs; the writer is the critical path (records queue up for it), so it runs
    whenever it has work and the workers fill the remaining time.

    Workers also run without the cyclic garbage collector: a record is thousands of small
    acyclic objects, freed once it is sent, and collections set off by allocating them cost
    about 5% of a worker's time; parsing the whole stdlib leaves a few dozen cyclic objects.
    """
    gc.disable()
    try:
        os.nice(5)
    except OSError:  # not permitted here: equal priority still works, a little slower
        pass


def starting_a_worker_process() -> bool:
    """True while a spawned worker re-imports its parent's main module: an unguarded
    script calling index() at import time would wait forever on its parent's write lock."""
    mp = sys.modules.get("multiprocessing")
    return mp is not None and bool(getattr(mp.current_process(), "_inheriting", False))
