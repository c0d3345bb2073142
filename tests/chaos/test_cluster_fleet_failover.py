"""The fleet-wide failover on a Redis Cluster (issue #28): it happens when no primary answers, never for one
shard down, even on an idle fleet whose only contact with Redis is the poll's marker check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from tests.chaos.faults_support import fault_env, history, to_redis_phase, wait_for
from tests.conftest import make_settings
from tests.redis_servers import RedisClusterServers
from tests.servers import f2f_server

pytestmark = pytest.mark.chaos


async def test_one_primary_down_never_fails_an_idle_fleet_over_and_all_down_does(
    pg_url: str, tmp_path: Path, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    # Redis' default node timeout: the dead primary's slots stay unserved far longer than the failover time.
    cluster = redis_cluster_factory(replicas=1)
    env = fault_env(pg_url, cluster.url, redis_prefix, F2F_REDIS_FAILOVER_SECONDS="1")
    engine = create_engine_for(make_settings(**env))
    try:
        await to_redis_phase(engine)
        with f2f_server(env, cwd=tmp_path) as base:
            async def marked() -> bool:
                return (await control.get_control(engine)).redis_generation is not None

            await wait_for(marked, "the generation marker")
            primaries = cluster.primary_ports()
            cluster.kill(primaries[0])
            await asyncio.sleep(5.0)  # 5× the failover time, 20 polls, no request at all
            assert (await control.get_control(engine)).phase is Phase.REDIS
            assert "auto-failover" not in [a for a, _ in await history(engine)]
            for port in cluster.alive_ports():
                cluster.node(port).pause()  # every node hung: Redis as a whole is unreachable
            try:
                async def failed_over() -> bool:
                    return (await control.get_control(engine)).phase is Phase.DUAL

                await wait_for(failed_over, "the fleet-wide failover", limit=60)
                async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                    created = await http.post("/v1/sessions")  # served by PostgreSQL now
            finally:
                for port in cluster.alive_ports():
                    cluster.node(port).resume()
        assert created.status_code == 201, created.text
        assert [a for a, _ in await history(engine)].count("auto-failover") == 1
    finally:
        await engine.dispose()
