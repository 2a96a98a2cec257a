"""The CPU thread count a served model runs on: in /v1/health and in `serve`'s start-up line."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(("env", "threads", "why"), [
    ({}, 1, "small model"),
    ({"REPOCOMPLETE_THREADS": "2"}, 2, "REPOCOMPLETE_THREADS"),
])
def test_health_and_start_up_line_show_the_threads(serve, tiny_model_dir, env, threads, why):
    served = serve("--backend", "transformers", "--model", str(tiny_model_dir), env=env, wait_s=120)
    health = httpx.get(f"{served.url}/v1/health", timeout=10).json()
    assert health["threads"] == threads and why in health["threads_reason"]
    assert health["backend"]["threads"] == threads
    plural = "s" if threads != 1 else ""
    start_up = next(line for line in served.output().splitlines() if line.startswith("repocomplete serve:"))
    assert f"{threads} thread{plural} (" in start_up and why in start_up and served.url in start_up
