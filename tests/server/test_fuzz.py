"""Schema-driven fuzzing (schemathesis) of a real server: no input may produce a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.server.conftest import start_server

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    served = start_server(tmp_path_factory.mktemp("fuzz"), env={"REPOCOMPLETE_MAX_TOKENS_LIMIT": "64"}, token=TOKEN)
    yield served
    served.stop()
    assert "Traceback" not in served.output(), served.output()


def operations(url: str):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)
    # Registering workspaces is fuzzed too: this server allows no root (no --allow-root, no
    # --workspace), so no random path can get indexed (issue 21.1).
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_is_valid_and_lists_every_route(served):
    labels = {op.label for op in operations(served.url)}
    for label in ("POST /v1/completions", "POST /v1/events", "GET /v1/health", "POST /v1/health", "GET /metrics",
                  "GET /v1beta/server_setting", "GET /v1/workspaces", "GET /v1/workspaces/{name}",
                  "POST /v1/workspaces", "DELETE /v1/workspaces/{name}", "GET /v1/adapters",
                  "POST /openai/v1/completions", "GET /openai/v1/models"):
        assert label in labels


def test_no_input_produces_a_server_error(served):
    failures = []
    for operation in operations(served.url):

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            case.call_and_validate(base_url=served.url, headers=AUTH, timeout=30)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
