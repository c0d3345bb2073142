"""A rollout as traces: ``f2f migrate`` runs and ``f2f worker`` batches exported to a real OTLP receiver."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from f2f_cli.db.engine import create_sync_engine_for
from tests.cli.conftest import Invoke
from tests.cli.test_migrate_phase import _env, _seed
from tests.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.servers import f2f_server, worker_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _wait_for_worker(pg_url: str) -> None:
    engine = create_sync_engine_for(pg_url)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.exec_driver_sql("SELECT count(*) FROM f2f_instances WHERE kind = 'worker'").scalar_one():
                    return
            time.sleep(0.1)
        raise AssertionError("no worker heartbeat")
    finally:
        engine.dispose()


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[str]:
    return [s.name for s in spans if s.parent_span_id == parent.span_id]


def test_a_rollout_reads_as_one_trace_per_run_and_a_span_per_backup_batch(
    invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    _seed(pg_url, 30)
    with otlp_receiver() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        env = _env(pg_url, redis_url, redis_prefix) | otel
        r = invoke("migrate", "to", "dual", "--yes", env=env)
        assert r.exit_code == 0, r.output
        r = invoke("migrate", "verify", env=env)
        assert r.exit_code == 0, r.output
        with worker_process(env, tmp_path):
            _wait_for_worker(pg_url)  # 'to redis' needs the backup worker's heartbeat
            r = invoke("migrate", "to", "redis", "--yes", env=env)
            assert r.exit_code == 0, r.output
            # Each command flushes its spans before it returns.
            migrate_spans = receiver.received.snapshot()
            with f2f_server(env, cwd=tmp_path) as base:
                sid = httpx.post(f"{base}/v1/sessions", timeout=10).json()["session_id"]
                added = httpx.post(f"{base}/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]},
                                   timeout=10)
                assert added.status_code == 200
                spans = receiver.wait_for(lambda got: any(s.name == "worker.batch" for s in got))

    (verify_run,) = [s for s in migrate_spans if s.name == "migrate verify"]
    assert verify_run.parent_span_id == "" and any(
        s.trace_id == verify_run.trace_id and s.attributes.get("db.system") == "redis" for s in migrate_spans)
    (to_dual,) = [s for s in migrate_spans if s.name == "migrate to dual"]
    (to_redis,) = [s for s in migrate_spans if s.name == "migrate to redis"]
    assert to_dual.parent_span_id == to_redis.parent_span_id == ""
    assert to_dual.resource["f2f.command"] == "migrate"
    assert to_dual.attributes["f2f.migrate.done"] is True
    dual_steps = _children(migrate_spans, to_dual)
    assert dual_steps.count("migrate.backfill") == 1 and "migrate.verify" in dual_steps
    assert {"migrate.step dual-write", "migrate.step open"} <= set(dual_steps)
    (backfill,) = [s for s in migrate_spans if s.name == "migrate.backfill"]
    assert backfill.attributes["f2f.migrate.copied"] == 30
    (hold,) = [s for s in migrate_spans if s.name == "migrate.cutover_hold"]
    assert hold.parent_span_id == to_redis.span_id
    assert hold.attributes["f2f.migrate.writes_held_ms"] >= 0
    assert "migrate.step open" in _children(migrate_spans, hold)  # the phase opens while writes are held
    # The SQL the migrator ran is inside its trace.
    assert any(s.trace_id == to_dual.trace_id and s.attributes.get("db.system") == "postgresql"
               for s in migrate_spans)

    batches = [s for s in spans if s.name == "worker.batch"]
    assert batches[0].resource["f2f.command"] == "worker"
    assert sum(b.attributes["f2f.worker.entries"] for b in batches) >= 1
    assert all(b.attributes["f2f.worker.sessions"] >= 1 and b.attributes["f2f.worker.lag_ms"] >= 0
               for b in batches)
    # The batch's SQL transaction nests inside its span.
    assert any(s.parent_span_id == batches[0].span_id and s.attributes.get("db.system") == "postgresql"
               for s in spans)
