"""schemathesis against the OpenAPI document of a running ``f2f serve``: no 5xx, every response as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from f2f_cli.db import migrate as schema_migrations
from tests.servers import f2f_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("fuzz-sqlite")
    url = f"sqlite+aiosqlite:///{workdir / 'f2f.db'}"
    schema_migrations.upgrade(url)
    # The tests count requests on /metrics right after sending them: render it on every scrape, not from the cache.
    env = {"F2F_DATABASE_URL": url, "F2F_SESSIONS_PER_MINUTE": "0", "F2F_MAX_BODY_BYTES": "4096",
           "F2F_METRICS_CACHE_SECONDS": "0"}
    with f2f_server(env, cwd=workdir) as base:
        yield base


@pytest.fixture(scope="module")
def served_schema(sqlite_server: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{sqlite_server}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_openapi_document(
    sqlite_server: str, served_schema: BaseSchema, mode: GenerationMode
) -> None:
    # schemathesis's pytest plugin does not run under pytest 9, so its strategy drives a plain Hypothesis test.
    @given(case=served_schema.as_strategy(mode))
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Case) -> None:
        case.call_and_validate(checks=CHECKS)

    check()
    counts = _requests_by_route_and_status(sqlite_server)
    print(f"{mode}: requests by (method, route, status): {counts}")
    assert not any(status.startswith("5") for (_, _, status) in counts)
    assert len({(method, route) for (method, route, _) in counts}) >= 8  # every operation was exercised


def test_stateful_sequences_follow_the_links(sqlite_server: str, served_schema: BaseSchema) -> None:
    """Create a session, then chain get/add/remove/clear/delete on it through the documented links."""
    base_machine = served_schema.as_state_machine()

    class Machine(base_machine):  # type: ignore[valid-type,misc]
        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS[:-1])

    before = _requests_by_route_and_status(sqlite_server)
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=40, stateful_step_count=8, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    after = _requests_by_route_and_status(sqlite_server)
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    print(f"stateful: requests by (method, route, status): {delta}")
    assert not any(status.startswith("5") for (_, _, status) in delta)
    # Real sessions were read and changed, not only refused.
    route = "/v1/sessions/{session_id}"
    assert delta.get(("GET", route, "200"), 0) > 0
    assert delta.get(("POST", route + "/ingredients", "200"), 0) > 0
    assert delta.get(("DELETE", route, "204"), 0) > 0


def _requests_by_route_and_status(base: str) -> dict[tuple[str, str, str], int]:
    import re

    import httpx

    text = httpx.get(f"{base}/metrics", timeout=10).text
    counts: dict[tuple[str, str, str], int] = {}
    for line in text.splitlines():
        if line.startswith("f2f_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            counts[(labels["method"], labels["route"], labels["status"])] = int(float(line.rpartition(" ")[2]))
    return counts
