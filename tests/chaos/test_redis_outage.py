"""Chaos in the ``redis`` phase: Redis unreachable.

- Redis hung (SIGSTOP) for 20 s under writers on two instances: the fleet fails over to SQL authority
  by itself, serves on, reconciles and restores the returning Redis, reports the Redis writes that
  lost to failover-time writes, and the operator's ``f2f migrate to redis`` and ``verify`` succeed.
- One instance cut off from Redis alone (its URL names a closed port) never fails the fleet over.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase, RedisState
from f2f_cli.db.engine import create_engine_for
from f2f_cli.db.schema import f2f_failover_conflicts
from tests.chaos.faults_support import (
    fault_env,
    history,
    metric,
    run_f2f,
    to_redis_phase,
    wait_for,
    worker_alive,
)
from tests.conftest import make_settings
from tests.load import Load
from tests.redis_servers import RedisProcess, free_port
from tests.servers import f2f_server, worker_process

FAILOVER_SECONDS = 2.0
OUTAGE_SECONDS = 20.0

pytestmark = pytest.mark.chaos


async def test_outage_fails_over_reconciles_and_fails_back(
    pg_url: str, tmp_path: Path, own_redis: RedisProcess, redis_prefix: str
) -> None:
    env = fault_env(pg_url, own_redis.url, redis_prefix, F2F_REDIS_FAILOVER_SECONDS=str(FAILOVER_SECONDS))
    engine = create_engine_for(make_settings(**env))
    try:
        await to_redis_phase(engine)
        with (f2f_server(env, cwd=tmp_path) as a, f2f_server(env, cwd=tmp_path) as b,
              worker_process(env, tmp_path, "--claim-idle-ms", "500")):
            await worker_alive(engine)
            loads = [Load(a, clients=8), Load(b, clients=8)]
            runners = [asyncio.create_task(load.run()) for load in loads]
            await asyncio.sleep(2.0)
            stopped_at = time.monotonic()
            own_redis.pause()

            async def failed_over() -> bool:
                return (await control.get_control(engine)).phase is Phase.DUAL

            failover_delay = await wait_for(failed_over, "the automatic failover", limit=OUTAGE_SECONDS)
            failover_at = stopped_at + failover_delay
            await asyncio.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.monotonic()))
            resumed_at = time.monotonic()
            own_redis.resume()

            async def restored() -> bool:
                state = await control.get_control(engine)
                return state.redis_state is RedisState.OK and state.redis_trusted

            restore_seconds = await wait_for(restored, "reconciliation and restore", limit=120)
            await asyncio.sleep(1.0)
            for load in loads:
                load.stop.set()
            await asyncio.gather(*runners)
            lost = [pair for load in loads for pair in await load.lost_list()]
            failovers = await metric(a, "f2f_redis_failovers_total") + await metric(b, "f2f_redis_failovers_total")
            back = await run_f2f(env, tmp_path, "migrate", "to", "redis", "--yes", "--json")
            verified = await run_f2f(env, tmp_path, "migrate", "verify", "--json")
            status = await run_f2f(env, tmp_path, "migrate", "status", "--json")
        async with engine.connect() as conn:
            rows = (await conn.execute(select(f2f_failover_conflicts))).all()
        reported = {(r.session_id, name) for r in rows for name in json.loads(r.lost)["ingredients"]}
        before = [load.share_failed(0, stopped_at) for load in loads]
        during = [load.share_failed(stopped_at, failover_at) for load in loads]
        # Each instance switches at its own next poll, and writes already waiting on the hung Redis time out
        # after that: judge each instance from when it was observed serving again (its first 2xx to a
        # request sent after Redis hung), on the requests sent from then on, whatever the machine's pace.
        served_again = [load.first_served_after(failover_at) for load in loads]
        assert None not in served_again, "an instance never served again after the failover"
        after = [load.share_server_failures(t, resumed_at) for load, t in zip(loads, served_again, strict=True)]
        failed_after, sent_after = sum(f for f, _ in after), sum(s for _, s in after)
        steps = [action for action, _ in await history(engine)]
        print(f"\nfailover {failover_delay:.1f}s after Redis hung (F2F_REDIS_FAILOVER_SECONDS={FAILOVER_SECONDS}); "
              f"failed before {sum(f for f, _ in before)}/{sum(s for _, s in before)}, before the failover "
              f"{sum(f for f, _ in during)}/{sum(s for _, s in during)}, once each instance served again "
              f"({', '.join(f'{t - failover_at:.1f}s' for t in served_again if t is not None)} after the failover) "
              f"{failed_after}/{sent_after}; "
              f"reconciled and restored {restore_seconds:.1f}s after Redis returned; conflicts reported "
              f"{len(rows)}, acknowledged writes missing {len(lost)}")
        assert steps.count("auto-failover") == 1 and failovers == 1
        assert failover_at < resumed_at
        assert sent_after > 0 and failed_after <= 0.01 * sent_after
        assert set(lost) <= reported  # a write that lost to a failover-time write is reported, never silent
        assert "failover-reconciled" in steps and "redis-restored" in steps
        assert back[0] == 0, back[1] + back[2]
        assert (await control.get_control(engine)).phase is Phase.REDIS
        assert verified[0] == 0, verified[1] + verified[2]
        assert json.loads(status[1])["faults"]["conflicts"] == len(rows)
    finally:
        await engine.dispose()


async def test_one_partitioned_instance_does_not_fail_the_fleet_over(
    pg_url: str, tmp_path: Path, own_redis: RedisProcess, redis_prefix: str
) -> None:
    env = fault_env(pg_url, own_redis.url, redis_prefix, F2F_REDIS_FAILOVER_SECONDS="1")
    cut_off = {**env, "F2F_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    engine = create_engine_for(make_settings(**env))
    try:
        await to_redis_phase(engine)
        with (f2f_server(env, cwd=tmp_path) as a, f2f_server(cut_off, cwd=tmp_path) as b,
              worker_process(env, tmp_path)):
            await worker_alive(engine)
            async with httpx.AsyncClient(timeout=10) as http:
                sid = (await http.post(f"{a}/v1/sessions")).json()["session_id"]
                await http.post(f"{a}/v1/sessions/{sid}/ingredients", json={"ingredients": ["두부"]})
                # Well past the failover time, with the isolated instance voting every poll.
                deadline = time.monotonic() + 6.0
                reads_from_b = 0
                while time.monotonic() < deadline:
                    r = await http.get(f"{b}/v1/sessions/{sid}")
                    reads_from_b += r.status_code == 200 and "두부" in r.text
                    await asyncio.sleep(0.1)
                ready_b = (await http.get(f"{b}/readyz")).status_code
                write_a = (await http.post(f"{a}/v1/sessions/{sid}/ingredients", json={"ingredients": ["파"]}))
        state = await control.get_control(engine)
        steps = [action for action, _ in await history(engine)]
        assert state.phase is Phase.REDIS and state.redis_state is RedisState.OK
        assert "auto-failover" not in steps
        assert reads_from_b > 0  # the cut-off instance still answers reads, from the SQL backup
        assert ready_b == 200
        assert write_a.status_code == 200
    finally:
        await engine.dispose()
