"""The `dual` phase under a Redis outage, over real HTTP: no failed request, no lost write, repair after."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings
from tests.load import Load
from tests.servers import f2f_server

pytestmark = pytest.mark.chaos


async def test_redis_outage_in_dual_loses_nothing_and_heals(pg_url: str, tmp_path: Path, own_redis: object,
                                                           redis_prefix: str) -> None:
    node = own_redis
    env = {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": node.url,  # type: ignore[attr-defined]
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        "F2F_PHASE_POLL_SECONDS": "0.5",
    }
    settings = make_settings(**env)
    engine = create_engine_for(settings)
    sql = SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=1000)
    try:
        with f2f_server({**env, "F2F_MAX_INGREDIENTS": "1000"}, cwd=tmp_path) as base:
            await control.set_phase(engine, Phase.DUAL_WRITE, actor="test", action="to dual-write")
            target = await control.set_phase(engine, Phase.DUAL, actor="test", action="to dual")

            async def acknowledged() -> bool:
                rows = await control.live_instances(engine, within=timedelta(seconds=10), kind="serve")
                return bool(rows) and all(r.epoch_seen == target.epoch for r in rows)

            deadline = time.monotonic() + 10
            while not await acknowledged():
                assert time.monotonic() < deadline, "server did not acknowledge the dual phase"
                await asyncio.sleep(0.1)

            load = Load(base, clients=12)
            runner = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            node.kill()  # type: ignore[attr-defined]
            await asyncio.sleep(1.0)
            # The failed copies were recorded: Redis is untrusted, reads now come from SQL.
            assert not (await control.get_control(engine)).redis_trusted
            await asyncio.sleep(1.0)
            node.start()  # type: ignore[attr-defined]  # empty: Redis keeps nothing on disk here
            await asyncio.sleep(2.0)
            load.stop.set()
            await runner

            lost = await load.lost_writes()
            print(f"\nrequests sent {load.sent}, failed {len(load.failed)}, writes acknowledged {load.writes_acked}, "
                  f"writes lost {lost}, stale reads {load.stale_reads}")
            assert lost == 0
            assert load.failed == []
            assert load.stale_reads == 0

            # Nothing acknowledged is missing from the authority.
            for sid, names in load.acked.items():
                assert names <= (await sql.get(sid)).names

            # Reads repair what Redis lost, the repair pass drains the queue; then the stores agree.
            async with httpx.AsyncClient(base_url=base) as http:
                for sid in load.acked:
                    assert (await http.get(f"/v1/sessions/{sid}")).status_code == 200
            deadline = time.monotonic() + 15
            while not (await control.get_control(engine)).redis_trusted:
                assert time.monotonic() < deadline, "Redis was never trusted again"
                await asyncio.sleep(0.2)
        cache = RedisSessionStore.from_settings(settings)
        try:
            for sid in load.acked:
                in_sql = await sql.read_copy(sid)
                in_redis = await cache.read_copy(sid)
                assert in_sql is not None
                assert in_redis is not None
                assert (in_redis.version, in_redis.names) == (in_sql.version, in_sql.names)
        finally:
            await cache.close()
    finally:
        await engine.dispose()
