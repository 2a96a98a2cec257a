"""The CPU thread choice: golden cases of the pure rule, the machine reading, the override."""

from __future__ import annotations

import pytest

from repocomplete.errors import ConfigError
from repocomplete.threads import SMALL_MODEL_PARAMETERS, CpuState, choose_threads, machine_cpu, resolve_threads

HALF_B = 494_000_000


@pytest.mark.parametrize(
    ("cores", "load", "parameters", "configured", "threads"),
    [
        (2, 0.0, HALF_B, None, 2),  # idle 2-core machine, real model: both cores
        (2, 0.4, HALF_B, None, 2),  # a little background work still leaves both
        (2, 0.6, HALF_B, None, 1),  # more than half a core busy: one thread
        (2, 8.0, HALF_B, None, 1),  # shared, overloaded machine: never below one
        (16, 3.2, HALF_B, None, 13),  # one thread per idle core
        (16, 0.0, HALF_B, None, 16),
        (1, 0.0, HALF_B, None, 1),
        (8, 0.0, 7_000_000, None, 1),  # the embedded default model: one thread whatever the machine
        (8, 0.0, SMALL_MODEL_PARAMETERS, None, 8),  # the small-model bound is exclusive
        (2, 8.0, HALF_B, 4, 4),  # REPOCOMPLETE_THREADS wins
        (0, 0.0, HALF_B, None, 1),  # a machine that reports no cores still gets one thread
    ],
)
def test_choose_threads_golden(cores, load, parameters, configured, threads):
    choice = choose_threads(CpuState(physical_cores=cores, load=load), parameters, configured)
    assert choice.threads == threads
    assert choice.reason and str(threads) in choice.describe()


def test_reasons_say_why():
    assert "REPOCOMPLETE_THREADS" in choose_threads(CpuState(2, 0.0), HALF_B, 3).reason
    assert "small model" in choose_threads(CpuState(2, 0.0), 7_000_000).reason
    assert "load 1.5" in choose_threads(CpuState(4, 1.5), HALF_B).reason
    assert choose_threads(CpuState(2, 0.0), HALF_B).describe() == "2 threads (2 physical cores: one thread per idle core)"


def test_machine_reading_is_sane():
    import os

    cpu = machine_cpu()
    assert 1 <= cpu.physical_cores <= (os.cpu_count() or 1) and cpu.load >= 0.0


def test_a_thread_count_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 1"):
        resolve_threads(HALF_B, 0)
    assert resolve_threads(HALF_B, 3).threads == 3
