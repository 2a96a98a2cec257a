"""Expensive retrieval inside a request is stopped by the request's timeout (issue 21.3), over HTTP."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.processes import timeout, wait_for


def big_repo(root, files: int = 60):
    """About 1,500 chunks: minutes of embedding on 2 CPU cores."""
    root.mkdir()
    for i in range(files):
        (root / f"mod{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(12)))
    return root


DENSE = {"workspace": "repo", "sources": ["dense"], "max_tokens": 8,
         "segments": {"prefix": "def g(x):\n    return f1_3(", "filepath": "new.py"}}
PLAIN = {"workspace": "repo", "max_tokens": 8, "segments": {"prefix": "def h(x):\n    return ", "filepath": "new.py"}}


@pytest.mark.slow
def test_timed_out_dense_requests_free_their_slots_and_a_normal_request_is_served(serve, tmp_path):
    """21.3 as written: four dense requests on a large unembedded workspace kept embedding after
    their 504 and every other request got 503. Now each stops within one small batch."""
    pytest.importorskip("torch", reason="the embedding model runs on torch (absent in `make test-notorch`)")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "one.py").write_text("def one():\n    return 1\n")
    served = serve("--workspace", str(big_repo(tmp_path / "repo")), "--workspace", str(tiny), "--request-timeout", "4",
                   "--max-concurrency", "2", "--max-queue", "4", env={"REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")})
    in_flight = "repocomplete_generations_in_flight"
    with served.client(timeout=timeout(60)) as http:
        for name in ("repo", "tiny"):
            wait_for(lambda: http.get(f"/v1/workspaces/{name}").json()["status"] == "ready", 120, f"{name} indexed")
        # The embedding model loads once (not interruptible): a dense request on the tiny workspace pays for it.
        http.post("/v1/completions", json={**DENSE, "workspace": "tiny"})
        wait_for(lambda: served.metric(in_flight) == 0, 120, "the embedding model loaded")

        replies: list[int] = []
        attackers = [threading.Thread(target=lambda: replies.append(http.post("/v1/completions", json=DENSE).status_code))
                     for _ in range(4)]
        for thread in attackers:
            thread.start()
        for thread in attackers:
            thread.join(timeout(60))
        assert sorted(replies) and set(replies) <= {200, 503, 504}, replies
        assert 504 in replies  # the work did outlive its deadline: the case under test
        ended = time.monotonic()
        wait_for(lambda: served.metric(in_flight) == 0, 10, "the timed-out dense requests released their slots")
        released_s = time.monotonic() - ended
        for workspace in ("tiny", "repo"):  # every workspace is served again, the attacked one too
            normal = http.post("/v1/completions", json={**PLAIN, "workspace": workspace})
            assert normal.status_code == 200, (workspace, normal.text)
        # Every 504 told its work to stop. How many of the four outlive 4 s depends on the machine's
        # speed (on a quick one the shared embedding finishes inside the later requests' deadlines).
        assert served.metric("repocomplete_cancelled_generations_total", reason="timeout") >= replies.count(504)
    assert released_s < timeout(10)
