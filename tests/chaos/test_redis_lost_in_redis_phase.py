"""Chaos in the ``redis`` phase: a backup worker SIGKILLed and replaced under load, then Redis killed
and restarted empty (no persistence): the service answers every backed-up write from the backup at once
(issue #13), and ``f2f sessions restore`` by hand still works beside it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import redis

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings
from tests.load import Load
from tests.redis_servers import RedisProcess
from tests.servers import f2f_server, worker_process

pytestmark = pytest.mark.chaos


async def _drained(url: str, stream: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        for _ in range(300):
            if int(client.xlen(stream)) == 0:
                return 0
            await asyncio.sleep(0.1)
        return int(client.xlen(stream))
    finally:
        client.close()


async def test_worker_kill_then_redis_loss_restored_from_the_backup(
    pg_url: str, tmp_path: Path, own_redis: RedisProcess, redis_prefix: str
) -> None:
    env = {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": own_redis.url,
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        "F2F_PHASE_POLL_SECONDS": "0.5",
        "F2F_SESSIONS_PER_MINUTE": "0",
        "F2F_MAX_INGREDIENTS": "1000",
        # The shared 2-core test machine can stall a command past the 50 ms default; a timeout is
        # a 503 in this phase (there is no fallback), which is not what this test is about.
        "F2F_REDIS_COMMAND_TIMEOUT": "1",
    }
    settings = make_settings(**env)
    engine = create_engine_for(settings)
    try:
        for step in (Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS):
            await control.set_phase(engine, step, actor="test", action="test")
        with f2f_server(env, cwd=tmp_path) as base:
            load = Load(base, clients=8)
            runner = asyncio.create_task(load.run())
            with worker_process(env, tmp_path, "--claim-idle-ms", "500", name="worker-a") as first:
                await asyncio.sleep(1.0)
                first.send_signal(signal.SIGKILL)  # mid-batch, entries pending and unacknowledged
                first.wait(timeout=10)
            with worker_process(env, tmp_path, "--claim-idle-ms", "500", name="worker-b"):
                await asyncio.sleep(1.0)
                load.stop.set()
                await runner
                backlog = await _drained(own_redis.url, f"{redis_prefix}:bk")
            sql = SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=1000)
            missing_in_backup = 0
            for sid, names in load.acked.items():
                missing_in_backup += len(names - (await sql.get(sid)).names)

            own_redis.kill()
            own_redis.start()  # empty: this Redis keeps nothing on disk
            lost_before_restore = await load.lost_writes()
            restore = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "f2f_cli", "sessions", "restore", "--json",
                env={k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | env,
                cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(restore.communicate(), 120)
            lost_after_restore = await load.lost_writes()
        print(f"\nrequests sent {load.sent}, failed {len(load.failed)}, writes acknowledged {load.writes_acked}; "
              f"backlog after the replacement worker {backlog}, writes missing in the SQL backup "
              f"{missing_in_backup}; lost with Redis {lost_before_restore}, lost after restore {lost_after_restore}")
        assert load.failed == []
        assert backlog == 0
        assert missing_in_backup == 0  # the killed worker's batch was reclaimed, nothing dropped
        assert lost_before_restore == 0  # Redis lost everything; the fleet answered from the backup
        assert restore.returncode == 0, err.decode()
        assert lost_after_restore == 0
    finally:
        await engine.dispose()
