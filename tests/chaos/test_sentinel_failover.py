"""Chaos in the ``redis`` phase on Redis Sentinel: the master SIGKILLed under writers; Sentinel promotes
the replica and f2f follows it (no operator, no fleet failover, no data-loss recovery: the replica
carries the generation marker). Reports failed requests, time to recover and acknowledged writes lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase, RedisState
from f2f_cli.db.engine import create_engine_for
from tests.chaos.faults_support import fault_env, history, to_redis_phase, wait_for, worker_alive
from tests.conftest import make_settings
from tests.load import Load
from tests.redis_servers import SentinelServers, start_sentinel
from tests.servers import f2f_server, worker_process

# Sentinel declares the master down after this; the fleet must not fail over first.
DOWN_AFTER_MS = 1000

pytestmark = pytest.mark.chaos


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelServers]:
    servers = start_sentinel(tmp_path / "sentinel", replica=True, down_after_ms=DOWN_AFTER_MS)
    yield servers
    servers.stop()


async def test_sentinel_master_killed_under_load(
    pg_url: str, tmp_path: Path, sentinel_set: SentinelServers, redis_prefix: str
) -> None:
    env = fault_env(pg_url, sentinel_set.url, redis_prefix, F2F_REDIS_FAILOVER_SECONDS="15")
    engine = create_engine_for(make_settings(**env))
    try:
        await to_redis_phase(engine)
        with (f2f_server(env, cwd=tmp_path) as a, f2f_server(env, cwd=tmp_path) as b,
              worker_process(env, tmp_path, "--claim-idle-ms", "500")):
            await worker_alive(engine)
            loads = [Load(a, clients=8), Load(b, clients=8)]
            runners = [asyncio.create_task(load.run()) for load in loads]
            await asyncio.sleep(2.0)
            old_master = sentinel_set.master.port
            killed_at = time.monotonic()
            sentinel_set.master.kill()

            async def promoted() -> bool:
                return sentinel_set.current_master_port() != old_master

            promotion = await wait_for(promoted, "Sentinel to promote the replica", limit=60)

            async def writes_again() -> bool:
                return any(t > killed_at + promotion for load in loads for t in
                           (load.acked_at[k] for k in list(load.acked_at)[-50:]))

            recovered = await wait_for(writes_again, "a write acknowledged by the new master", limit=60)
            await asyncio.sleep(2.0)
            for load in loads:
                load.stop.set()
            await asyncio.gather(*runners)
            lost = [pair for load in loads for pair in await load.lost_list()]
        failed = sum(len(load.failed) for load in loads)
        sent = sum(load.sent for load in loads)
        last_ack_before = max(t for load in loads for t in load.acked_at.values() if t < killed_at)
        old_lost = [pair for load in loads for pair in lost if pair in load.acked_at
                    and load.acked_at[pair] < killed_at - 1.0]
        state = await control.get_control(engine)
        steps = [action for action, _ in await history(engine)]
        print(f"\nSentinel promoted the replica {promotion:.1f}s after the master died "
              f"(down-after {DOWN_AFTER_MS} ms); writes acknowledged again {promotion + recovered:.1f}s after it; "
              f"failed requests {failed}/{sent}; acknowledged writes lost {len(lost)} "
              f"(last ack {killed_at - last_ack_before:.3f}s before the kill)")
        assert state.phase is Phase.REDIS and state.redis_state is RedisState.OK
        assert "auto-failover" not in steps and "redis-data-loss" not in steps
        assert old_lost == []  # only writes inside the replication lag may be lost
    finally:
        await engine.dispose()
