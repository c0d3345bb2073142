"""Chaos: PostgreSQL stopped while f2f serves the ``redis`` phase, under concurrent HTTP load.

The test owns its PostgreSQL cluster (``pg_createcluster`` on port 7701) and
its Redis (port 7601), and stops only those. In the redis phase Redis is the
version authority and SQL only receives the backup asynchronously, so with
SQL down every request must still succeed and every acknowledged write must
be readable; the backup stream keeps what SQL has not received.

An ``f2f worker`` runs throughout: its batches fail while PostgreSQL is down
and the entries stay in the stream; after the restart the backup catches up and
SQL holds every acknowledged write.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings
from tests.load import Load
from tests.redis_servers import data_node, free_port
from tests.servers import f2f_server, worker_process

PG_PORT = free_port()  # this module's own PostgreSQL cluster, picked once per run
REDIS_PORT = free_port()

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(shutil.which("pg_createcluster") is None, reason="needs postgresql-common (pg_createcluster)"),
]


@pytest.fixture
def own_postgres() -> Iterator[str]:
    name = f"f2fchaos{secrets.token_hex(3)}"
    subprocess.run(
        ["pg_createcluster", "15", name, "-p", str(PG_PORT), "--start", "--", "--auth=trust"],
        check=True, capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["pg_dropcluster", "15", name, "--stop"], check=False, capture_output=True)


def _pg_ctl(cluster: str, action: str) -> None:
    subprocess.run(["pg_ctlcluster", "15", cluster, action, "-m", "fast"] if action == "stop"
                   else ["pg_ctlcluster", "15", cluster, action], check=True, capture_output=True)


async def test_postgres_stopped_in_redis_phase_requests_keep_succeeding(
    own_postgres: str, tmp_path: Path, redis_prefix: str
) -> None:
    node = data_node(REDIS_PORT, tmp_path / "redis").start()
    db_url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
    env = {
        "F2F_DATABASE_URL": db_url,
        "F2F_REDIS_URL": node.url,
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        "F2F_PHASE_POLL_SECONDS": "0.5",
        "F2F_SESSIONS_PER_MINUTE": "0",
        "F2F_MAX_INGREDIENTS": "1000",
        "F2F_REDIS_CONNECT_TIMEOUT": "1",
        "F2F_REDIS_COMMAND_TIMEOUT": "1",  # a stall on the shared test machine is not this test's fault
    }
    settings = make_settings(**env)
    schema.upgrade(settings.database_url)
    engine = create_engine_for(settings)
    try:
        await control.set_phase(engine, Phase.REDIS, actor="test", action="to redis")
        await engine.dispose()
        with f2f_server(env, cwd=tmp_path) as base, worker_process(env, tmp_path, "--claim-idle-ms", "1000"):
            load = Load(base, clients=8)
            runner = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            _pg_ctl(own_postgres, "stop")
            sent_before_outage = load.sent
            await asyncio.sleep(2.0)
            sent_during_outage = load.sent - sent_before_outage
            client = redis.Redis.from_url(node.url)
            backlog_in_outage = int(client.xlen(f"{redis_prefix}:bk"))
            _pg_ctl(own_postgres, "start")
            await asyncio.sleep(1.0)
            load.stop.set()
            await runner
            lost = await load.lost_writes()
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                metrics = (await http.get("/metrics")).text
            # After the restart the worker catches up: the stream drains and SQL has every write.
            for _ in range(300):
                if int(client.xlen(f"{redis_prefix}:bk")) == 0:
                    break
                await asyncio.sleep(0.1)
            backlog_after = int(client.xlen(f"{redis_prefix}:bk"))
            client.close()
        engine = create_engine_for(settings)
        sql = SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=1000)
        missing_in_backup = 0
        for sid, names in load.acked.items():
            missing_in_backup += len(names - (await sql.get(sid)).names)
        print(f"\nrequests sent {load.sent} (during the outage {sent_during_outage}), failed {len(load.failed)}, "
              f"writes acknowledged {load.writes_acked}, writes lost {lost}, backup backlog during the outage "
              f"{backlog_in_outage}, after {backlog_after}, writes missing in the SQL backup {missing_in_backup}")
        assert load.failed == []
        assert lost == 0
        assert sent_during_outage > 0  # the load really ran while PostgreSQL was down
        assert backlog_in_outage > 0  # writes waited in the stream for SQL
        assert backlog_after == 0
        assert missing_in_backup == 0
        assert 'f2f_phase{phase="redis"} 1.0' in metrics
    finally:
        await engine.dispose()
        node.stop()
