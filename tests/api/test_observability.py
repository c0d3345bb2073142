"""/metrics, request ids, access logs and security headers, in-process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from f2f_cli.api import errors
from f2f_cli.api.app import create_app
from f2f_cli.api.metrics import Metrics
from f2f_cli.api.middleware import SECURITY_HEADERS, Edge, EdgeMiddleware
from f2f_cli.backup.shard_lag import ShardedLag
from f2f_cli.backup.worker import BackupLag
from f2f_cli.logs import AccessLog, ConsoleFormatter, JsonFormatter, redact
from tests.conftest import make_settings


@pytest.fixture
def app_client(sqlite_url: str) -> Iterator[TestClient]:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_METRICS_REFRESH_SECONDS="0.001",
                                   F2F_METRICS_CACHE_SECONDS="0"))
    with TestClient(app) as c:
        yield c


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        if metric.split("{", 1)[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def test_metrics_use_route_templates_not_paths(app_client: TestClient) -> None:
    sid = app_client.post("/v1/sessions").json()["session_id"]
    for _ in range(3):
        assert app_client.get(f"/v1/sessions/{sid}").status_code == 200
    assert app_client.get("/v1/sessions/" + "x" * 32).status_code == 404
    assert app_client.get("/nope").status_code == 404
    text = app_client.get("/metrics").text
    route = "/v1/sessions/{session_id}"
    assert sample(text, "f2f_http_requests_total", method="GET", route=route, status="200") == 3
    assert sample(text, "f2f_http_requests_total", method="GET", route=route, status="404") == 1
    assert sample(text, "f2f_http_requests_total", method="POST", route="/v1/sessions", status="201") == 1
    assert sample(text, "f2f_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert sample(text, "f2f_http_request_duration_seconds_count", route=route, status="200") == 3
    assert sid not in text  # no raw path (and no session id) ever becomes a label


def test_store_latency_by_backend_and_operation(app_client: TestClient) -> None:
    sid = app_client.post("/v1/sessions").json()["session_id"]
    app_client.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
    app_client.get("/v1/sessions/" + "A" * 32)
    text = app_client.get("/metrics").text
    store = "f2f_store_operation_duration_seconds_count"
    assert sample(text, store, backend="sql", operation="create", outcome="ok") == 1
    assert sample(text, store, backend="sql", operation="add_ingredients", outcome="ok") == 1
    assert sample(text, store, backend="sql", operation="get", outcome="session_not_found") == 1


def test_runtime_state_and_dual_counters_are_exported(app_client: TestClient) -> None:
    runtime = app_client.app.state.services.runtime  # type: ignore[attr-defined]
    text = app_client.get("/metrics").text
    assert sample(text, "f2f_phase", phase="postgres") == 1
    assert sample(text, "f2f_phase", phase="redis") == 0
    assert sample(text, "f2f_phase_epoch") == runtime.epoch
    assert sample(text, "f2f_redis_circuit_state", state="closed") == 1
    assert sample(text, "f2f_redis_trusted") == 1
    assert sample(text, "f2f_dual_fallbacks_total") == 0
    runtime.dual_events.fallbacks += 2
    runtime.dual_events.read_repairs += 1
    for _ in range(runtime.breaker.threshold):
        runtime.breaker.failure()
    text = app_client.get("/metrics").text
    assert sample(text, "f2f_dual_fallbacks_total") == 2
    assert sample(text, "f2f_dual_read_repairs_total") == 1
    assert sample(text, "f2f_redis_circuit_opened_total") == 1
    assert sample(text, "f2f_redis_circuit_state", state="closed") == 0
    # A second scrape adds nothing: counters follow the core's totals, not the number of scrapes.
    assert sample(app_client.get("/metrics").text, "f2f_dual_fallbacks_total") == 2


def test_redis_fault_counters_keep_the_names_the_chart_alerts_on(app_client: TestClient) -> None:
    runtime = app_client.app.state.services.runtime  # type: ignore[attr-defined]
    text = app_client.get("/metrics").text
    for name in ("f2f_redis_data_loss_total", "f2f_redis_failovers_total", "f2f_sessions_rehydrated_total"):
        assert sample(text, name) == 0
    assert sample(text, "f2f_redis_state", state="ok") == 1
    runtime.fault_events.data_loss += 1
    runtime.fault_events.failovers += 1
    runtime.fault_events.rehydrated += 5
    text = app_client.get("/metrics").text
    assert sample(text, "f2f_redis_data_loss_total") == 1
    assert sample(text, "f2f_redis_failovers_total") == 1
    assert sample(text, "f2f_sessions_rehydrated_total") == 5


def test_session_count_gauge(app_client: TestClient) -> None:
    for _ in range(3):
        app_client.post("/v1/sessions")
    assert sample(app_client.get("/metrics").text, "f2f_sessions") == 3


def test_session_count_is_cached(sqlite_url: str) -> None:
    app = create_app(make_settings(F2F_DATABASE_URL=sqlite_url, F2F_METRICS_REFRESH_SECONDS="3600",
                                   F2F_METRICS_CACHE_SECONDS="0"))
    with TestClient(app) as c:
        assert sample(c.get("/metrics").text, "f2f_sessions") == 0
        c.post("/v1/sessions")
        assert sample(c.get("/metrics").text, "f2f_sessions") == 0  # refreshed at most once an hour here
        text = c.get("/metrics").text
        assert sample(text, "f2f_store_operation_duration_seconds_count", operation="count") == 1


class _Lag:
    pending = 3
    undelivered = 4
    oldest_age_ms = 2500


def test_backup_lag_and_recommender_hooks(app_client: TestClient) -> None:
    async def read_lag() -> _Lag:
        return _Lag()

    metrics: Metrics = app_client.app.state.metrics  # type: ignore[attr-defined]
    assert sample(app_client.get("/metrics").text, "f2f_backup_stream_pending") == 0
    metrics.set_backup_lag_source(read_lag)
    metrics.observe_recommender_index(recipes=990, ingredients=400, entries=6000, build_seconds=0.25, source="sql")
    text = app_client.get("/metrics").text
    assert sample(text, "f2f_backup_stream_pending") == 3
    assert sample(text, "f2f_backup_stream_undelivered") == 4
    assert sample(text, "f2f_backup_stream_oldest_age_seconds") == 2.5
    assert sample(text, "f2f_recommender_index_recipes") == 990
    assert sample(text, "f2f_recommender_index_build_seconds") == 0.25
    assert sample(text, "f2f_recommender_index_builds_total", source="sql") == 1


def test_backup_lag_per_shard_follows_the_cluster_primaries(app_client: TestClient) -> None:
    def part(pending: int, undelivered: int, age_ms: int | None) -> BackupLag:
        return BackupLag(pending=pending, undelivered=undelivered, oldest_age_ms=age_ms, streams=1)

    shards = {"10.0.0.1:7000": part(1, 9, 1200), "10.0.0.2:7000": part(0, 0, None)}

    async def read_lag() -> ShardedLag:
        return ShardedLag(overall=part(1, 9, 1200), shards=dict(shards))

    metrics: Metrics = app_client.app.state.metrics  # type: ignore[attr-defined]
    metrics.set_backup_lag_source(read_lag)
    text = app_client.get("/metrics").text
    assert sample(text, "f2f_backup_shard_backlog", shard="10.0.0.1:7000") == 10
    assert sample(text, "f2f_backup_shard_oldest_age_seconds", shard="10.0.0.1:7000") == 1.2
    assert sample(text, "f2f_backup_shard_backlog", shard="10.0.0.2:7000") == 0
    assert sample(text, "f2f_backup_stream_undelivered") == 9
    # A primary whose slots all moved away is no longer a shard: its series goes rather than freezing.
    del shards["10.0.0.2:7000"]
    text = app_client.get("/metrics").text
    assert 'shard="10.0.0.2:7000"' not in text
    assert sample(text, "f2f_backup_shard_backlog", shard="10.0.0.1:7000") == 10


def test_request_id_is_echoed_or_generated(app_client: TestClient) -> None:
    given = app_client.get("/healthz", headers={"X-Request-ID": "edge-42.abc"})
    assert given.headers["x-request-id"] == "edge-42.abc"
    fresh = app_client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    for insane in (b"a b", b"x" * 200, b"<script>", "\u00e9".encode(), b"a\"b"):
        r = app_client.get("/healthz", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_security_headers_on_every_response(app_client: TestClient) -> None:
    responses = [
        app_client.get("/healthz"),
        app_client.post("/v1/sessions"),
        app_client.get("/v1/sessions/bad"),
        app_client.get("/nope"),
        app_client.get("/metrics"),
        app_client.put("/healthz"),
    ]
    for r in responses:
        for name, value in SECURITY_HEADERS:
            assert r.headers[name.decode()] == value.decode(), (r.url, name)
        assert r.headers["cache-control"] == "no-store"
        assert "server" not in r.headers


def _exploding_app(metrics: Metrics) -> Starlette:
    async def boom(_request: Request) -> Response:
        raise RuntimeError("password=hunter2 should never reach a client")

    app = Starlette(routes=[Route("/boom", boom)], exception_handlers=errors.HANDLERS)
    return app


def test_unexpected_errors_are_json_with_request_id_and_headers() -> None:
    metrics = Metrics(refresh_seconds=1.0)
    inner = _exploding_app(metrics)
    edge = Edge(metrics=metrics, phase=lambda: "postgres", trusted_proxies=(), access_log=AccessLog("console"))
    app = EdgeMiddleware(inner, edge=edge, on_error=errors.unexpected_error)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"X-Request-ID": "rid-1"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "message": "internal server error"}
    assert r.headers["x-request-id"] == "rid-1"
    assert r.headers["x-frame-options"] == "DENY"
    assert "hunter2" not in r.text
    text = metrics.exposition().decode()
    assert sample(text, "f2f_http_requests_total", route="/boom", status="500") == 1


def test_one_access_line_per_request_without_session_ids(
    app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    sid = app_client.post("/v1/sessions").json()["session_id"]
    access: AccessLog = app_client.app.state.access_log  # type: ignore[attr-defined]
    out = io.StringIO()
    access.stream = out
    access.flush()
    with caplog.at_level(logging.INFO, logger="f2f.access"):
        app_client.post(
            f"/v1/sessions/{sid}/ingredients", json={"ingredients": ["비밀재료"]}, headers={"X-Request-ID": "r-7"}
        )
    access.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "INFO    f2f.access: POST /v1/sessions/{session_id}/ingredients 200 " in lines[0]
    assert lines[0].endswith("ms [rid=r-7]")
    assert sid not in lines[0] and "비밀재료" not in lines[0]


def test_access_log_is_off_above_info(app_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    access: AccessLog = app_client.app.state.access_log  # type: ignore[attr-defined]
    out = io.StringIO()
    access.stream = out
    with caplog.at_level(logging.WARNING, logger="f2f.access"):
        assert app_client.get("/healthz").status_code == 200
    access.flush()
    assert out.getvalue() == ""


def test_json_access_lines_keep_every_field_and_mask_ids_that_look_like_urls() -> None:
    out = io.StringIO()
    access = AccessLog("json", stream=out)
    logger = logging.getLogger("f2f.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        access.record("a://u:hunter2@h", "GET", "/v1/sessions/{session_id}", 200, 0.00123, "redis", "203.0.113.7")
        access.record("r-2", "POST", "unmatched", 404, 0.5, "postgres", None)
    finally:
        logger.setLevel(level)
    access.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert list(first) == ["ts", "level", "logger", "message", "request_id", "method", "route", "status",
                           "duration_ms", "phase", "client"]
    assert first["request_id"] == "a://u:***@h" and "hunter2" not in out.getvalue()
    assert first["message"] == "GET /v1/sessions/{session_id} 200 1.2ms" and first["duration_ms"] == 1.23
    assert (first["level"], first["logger"], first["phase"], first["client"]) == (
        "info", "f2f.access", "redis", "203.0.113.7")
    assert first["ts"].endswith("+00:00")
    assert "client" not in second and second["status"] == 404


async def test_access_lines_wait_in_the_loop_and_go_out_in_batches() -> None:
    writes: list[str] = []

    class Sink(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    access = AccessLog("console", stream=Sink(), batch=3, flush_seconds=0.05)
    logger = logging.getLogger("f2f.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for i in range(4):
            access.record(f"r{i}", "GET", "/healthz", 200, 0.001, "postgres", None)
        assert len(writes) == 1 and writes[0].count("\n") == 3  # the full batch, in one write
        await asyncio.sleep(0.2)  # the timer writes the rest
        assert len(writes) == 2 and "[rid=r3]" in writes[1]
    finally:
        logger.setLevel(level)


def test_json_log_lines_are_json_and_mask_passwords() -> None:
    record = logging.LogRecord(
        "f2f.test", logging.WARNING, __file__, 1, "cannot reach %s", ("postgresql://app:s3cret@db/f2f",), None
    )
    record.request_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "f2f.test" and line["request_id"] == "abc"
    assert line["message"] == "cannot reach postgresql://app:***@db/f2f"
    assert "s3cret" not in ConsoleFormatter().format(record)
    assert redact("redis://:pw@cache:6379/0 and rediss://u:p%40ss@h") == "redis://:***@cache:6379/0 and rediss://u:***@h"
