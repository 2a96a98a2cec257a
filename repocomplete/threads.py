"""How many CPU threads torch uses for a model: chosen from the machine, not left to torch.

Batch-1 decoding runs one small matrix-vector product after another, each split over
torch's thread pool and joined again; with more threads than idle cores, a thread that lost
its core stalls every op of every token (measurements: docs/BENCHMARKS.md, "CPU thread
choice"). So the choice is:

- at most one thread per *idle physical* core: physical cores (hyper-threads share one
  core's arithmetic units) less the current load (1-minute load average), rounded;
- one thread for a small model: its ops are too small to pay for splitting them
  (below :data:`SMALL_MODEL_PARAMETERS`);
- ``REPOCOMPLETE_THREADS`` (``EngineConfig.threads``) overrides all of it.

:func:`choose_threads` is the pure rule (golden-tested); :func:`machine_cpu` reads the
machine; :func:`resolve_threads` combines them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

#: Below this many parameters a model runs on one thread (the embedded default has 7M).
SMALL_MODEL_PARAMETERS = 50_000_000


@dataclass(frozen=True)
class CpuState:
    """What the thread choice looks at."""

    #: Physical cores this process may run on (hyper-thread siblings counted once).
    physical_cores: int
    #: 1-minute load average: runnable processes competing for those cores.
    load: float


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why (shown in ``/v1/health`` and the start-up line)."""

    threads: int
    reason: str

    def describe(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.reason})"


def choose_threads(cpu: CpuState, parameters: int, configured: int | None = None) -> ThreadChoice:
    """The thread count for a model of ``parameters`` on ``cpu`` (``configured`` wins when set)."""
    if configured:
        return ThreadChoice(configured, "set by REPOCOMPLETE_THREADS / threads")
    cores = max(1, cpu.physical_cores)
    if parameters < SMALL_MODEL_PARAMETERS:
        size = f"{parameters / 1e6:.1f}" if parameters < 10_000_000 else f"{parameters / 1e6:.0f}"
        return ThreadChoice(1, f"small model ({size}M parameters): one thread decodes fastest")
    idle = max(1, min(cores, math.floor(cores - cpu.load + 0.5)))
    busy = f", load {cpu.load:.1f}" if idle < cores else ""
    return ThreadChoice(idle, f"{cores} physical core{'s' if cores != 1 else ''}{busy}: one thread per idle core")


def machine_cpu() -> CpuState:
    """Physical cores available to this process and the current load."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    physical = min(available, _physical_cores() or available)
    quota = _cgroup_cpu_quota()
    if quota is not None:
        physical = min(physical, max(1, math.ceil(quota)))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return CpuState(physical_cores=max(1, physical), load=load)


def resolve_threads(parameters: int, configured: int | None = None) -> ThreadChoice:
    """:func:`choose_threads` on this machine."""
    if configured is not None and configured < 1:
        from repocomplete.errors import ConfigError

        raise ConfigError(f"threads must be at least 1, not {configured}")
    return choose_threads(machine_cpu(), parameters, configured)


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs in /sys; None where the kernel does not say."""
    cores = set()
    base = "/sys/devices/system/cpu"
    try:
        cpus = [name for name in os.listdir(base) if name.startswith("cpu") and name[3:].isdigit()]
    except OSError:
        return None
    for cpu in cpus:
        try:
            with open(f"{base}/{cpu}/topology/core_id", encoding="ascii") as core, \
                 open(f"{base}/{cpu}/topology/physical_package_id", encoding="ascii") as package:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            continue
    return len(cores) or None


def _cgroup_cpu_quota() -> float | None:
    """CPUs a container's cgroup (v2) allows, or None when unlimited or unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
