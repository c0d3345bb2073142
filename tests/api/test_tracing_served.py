"""Traces of a real ``f2f serve`` in each phase, exported over OTLP/HTTP to a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from f2f_cli.control.phase import Phase, set_phase
from f2f_cli.db.engine import create_engine_for
from tests.conftest import make_settings
from tests.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.servers import f2f_server

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

INGREDIENTS_ROUTE = "/v1/sessions/{session_id}/ingredients"
SERVER, CLIENT = 2, 3  # the OTLP SpanKind numbers
# The phases a session write goes through, with the path each takes to reach it (set_phase steps).
PATHS = {
    "postgres": [],
    "dual": [Phase.DUAL_WRITE, Phase.DUAL],
    "redis": [Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS],
}


def _move_to(database_url: str, steps: list[Phase]) -> None:
    async def go() -> None:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=database_url))
        try:
            for phase in steps:
                await set_phase(engine, phase, actor="test", action="test")
        finally:
            await engine.dispose()

    asyncio.run(go())


def _descendants(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[ReceivedSpan]:
    found: list[ReceivedSpan] = []
    frontier = [root.span_id]
    while frontier:
        children = [s for s in spans if s.parent_span_id in frontier]
        found += children
        frontier = [s.span_id for s in children]
    return found


def _access_trace_id(log: Path, route: str) -> str | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"f2f.access"' in line:
                entry = json.loads(line)
                if entry["route"] == route and entry["method"] == "POST":
                    return entry.get("trace_id")
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("phase", list(PATHS))
def test_a_session_write_is_one_trace_from_the_edge_to_the_stores(
    phase: str, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    _move_to(pg_url, PATHS[phase])
    with otlp_receiver() as receiver:
        env = {
            "F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix,
            "F2F_LOG_FORMAT": "json", "F2F_PHASE_POLL_SECONDS": "0.1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "f2f-test",
        }
        with f2f_server(env, cwd=tmp_path, log_level="info") as base:
            assert httpx.get(f"{base}/readyz", timeout=10).json()["phase"] == phase
            sid = httpx.post(f"{base}/v1/sessions", timeout=10).json()["session_id"]
            added = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]}, timeout=10)
            assert added.status_code == 200
            time.sleep(0.6)  # a few phase polls (F2F_PHASE_POLL_SECONDS) and a metrics sample
            spans = receiver.wait_for(lambda got: any(s.name.endswith(INGREDIENTS_ROUTE) for s in got))
            port = base.rsplit(":", 1)[1]
            logged_trace = _access_trace_id(tmp_path / f"f2f-serve-{port}.log", INGREDIENTS_ROUTE)

    (request,) = [s for s in spans if s.name == f"POST {INGREDIENTS_ROUTE}"]
    assert request.kind == SERVER and request.parent_span_id == ""
    assert request.attributes["http.route"] == INGREDIENTS_ROUTE
    assert request.attributes["http.response.status_code"] == 200
    assert request.resource["service.name"] == "f2f-test" and request.resource["f2f.command"] == "serve"
    assert logged_trace == request.trace_id  # logs and traces join on the access line

    (store,) = [s for s in spans if s.parent_span_id == request.span_id]
    assert store.name == "store.add_ingredients"
    assert store.attributes["f2f.store.backend"] == {"postgres": "sql", "dual": "dual", "redis": "redis"}[phase]
    inside = _descendants(spans, store)
    sql = [s for s in inside if s.attributes.get("db.system") == "postgresql"]
    redis_calls = [s for s in inside if s.attributes.get("db.system") == "redis"]
    assert all(s.kind == CLIENT for s in sql + redis_calls)
    print(phase, [s.name for s in inside])
    if phase == "postgres":
        assert sql and not redis_calls
    elif phase == "dual":
        # SQL assigns the version, then the full-state copy goes to Redis by the apply script (in a
        # pipeline, whose span redis-py's instrumentation names by its commands only).
        assert sql and "EVALSHA" in [s.name for s in redis_calls]
    else:
        assert "EVALSHA write" in [s.name for s in redis_calls] and not sql

    # Background loops (phase poll, heartbeat, metrics sampler) stay out of the traces: once requests are
    # served, every root span is a request's.
    (first,) = [s for s in spans if s.name == "GET /readyz"]
    late_roots = [s for s in spans if s.parent_span_id == "" and s.start_ns >= first.start_ns]
    assert all(s.kind == SERVER for s in late_roots), [s.name for s in late_roots if s.kind != SERVER]

    # Session ids never reach a span name or attribute, whichever span and however deep.
    for span in spans:
        assert sid not in span.name
        assert all(sid not in str(value) for value in span.attributes.values()), span
