"""The whole rollout under load: two `f2f serve`, one `f2f worker`, concurrent writers over HTTP,
while the operator runs to dual, to redis, rollback, rollback, to dual, to redis."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.errors import SessionNotFound
from f2f_cli.migration.machine import Migrator
from f2f_cli.migration.status import backup_backlog
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings
from tests.servers import f2f_server, worker_process

pytestmark = pytest.mark.slow


class Writers:
    """Each writer owns its sessions, so the model of acknowledged operations is exact."""

    def __init__(self, base_urls: list[str], writers: int, seed: int = 7) -> None:
        self.bases = base_urls
        self.writers = writers
        self.rng = random.Random(seed)
        self.model: dict[str, set[str] | None] = {}  # None: deleted
        self.sent = 0
        self.failed: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        clients = [httpx.AsyncClient(base_url=b, timeout=15) for b in self.bases]
        try:
            await asyncio.gather(*(self._writer(clients, n) for n in range(self.writers)))
        finally:
            for c in clients:
                await c.aclose()

    async def _request(self, client: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response | None:
        self.sent += 1
        r = await client.request(method, url, **kw)  # type: ignore[arg-type]
        if r.status_code >= 300:
            self.failed.append(f"{method} {url} {r.status_code} {r.text[:120]}")
            return None
        return r

    async def _writer(self, clients: list[httpx.AsyncClient], n: int) -> None:
        sid: str | None = None
        counter = 0
        while not self.stop.is_set():
            client = self.rng.choice(clients)  # requests spread over both instances
            if sid is None:
                r = await self._request(client, "POST", "/v1/sessions")
                if r is not None:
                    sid = r.json()["session_id"]
                    self.model[sid] = set()
                continue
            names = self.model[sid]
            assert names is not None
            roll = self.rng.random()
            if roll < 0.65 or not names:
                counter += 1
                name = f"w{n}-{counter}"
                r = await self._request(client, "POST", f"/v1/sessions/{sid}/ingredients",
                                        json={"ingredients": [name]})
                if r is not None:
                    names.add(name)
            elif roll < 0.95:
                name = self.rng.choice(sorted(names))
                r = await self._request(client, "DELETE", f"/v1/sessions/{sid}/ingredients", params={"name": name})
                if r is not None:
                    names.discard(name)
            else:
                r = await self._request(client, "DELETE", f"/v1/sessions/{sid}")
                if r is not None:
                    self.model[sid] = None
                    sid = None
            await asyncio.sleep(0.005)


async def test_rollout_under_load_loses_no_acknowledged_write(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": redis_url,
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        "F2F_PHASE_POLL_SECONDS": "0.5",
        "F2F_REDIS_COMMAND_TIMEOUT": "1",
        "F2F_REDIS_CONNECT_TIMEOUT": "1",  # a busy test machine is not what this test is about
        "F2F_MAX_INGREDIENTS": "1000",
        "F2F_SESSIONS_PER_MINUTE": "0",  # the writers create sessions far faster than a person would
    }
    settings = make_settings(**env)
    with f2f_server(env, cwd=tmp_path) as a, f2f_server(env, cwd=tmp_path) as b, worker_process(env, tmp_path):
        writers = Writers([a, b], writers=10)
        load = asyncio.create_task(writers.run())
        steps: list[tuple[str, str, float | None]] = []
        try:
            async with Migrator.open(settings, actor="e2e", converge_timeout=20, batch_size=200) as m:
                # Wait until the worker's heartbeat is in, so 'to redis' may run.
                for _ in range(100):
                    if await control.live_instances(m.engine, within=m.window, kind="worker"):
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                for name, move in [("to dual", m.to_dual), ("to redis", m.to_redis), ("rollback", m.rollback),
                                   ("rollback", m.rollback), ("to dual", m.to_dual), ("to redis", m.to_redis)]:
                    out = await move()
                    assert out.done, f"{name}: {out.refused} {out.steps} {out.verify.first if out.verify else None}"
                    steps.append((name, out.to_phase or "", out.writes_held_ms))
                    await asyncio.sleep(1.0)  # traffic in the new phase
                assert (await control.get_control(m.engine)).phase is Phase.REDIS
        finally:
            writers.stop.set()
            await load
        print(f"\nrequests sent {writers.sent}, failed {len(writers.failed)}; sessions {len(writers.model)}; "
              f"steps {steps}")
        assert writers.failed == []

        redis = RedisSessionStore.from_settings(settings)
        try:
            # The trusted store (Redis, in the redis phase) equals the model of acknowledged operations.
            for sid, names in writers.model.items():
                if names is None:
                    with pytest.raises(SessionNotFound):
                        await redis.get(sid)
                else:
                    assert (await redis.get(sid)).names == names, sid
            # The worker drains the backup; then verify finds no difference between the stores.
            for _ in range(200):
                if await backup_backlog(redis) == 0:
                    break
                await asyncio.sleep(0.1)
            async with Migrator.open(settings, actor="e2e") as m:
                out = await m.verify_stores(repair_now=False)
            assert out.verify is not None
            assert out.verify.clean, out.verify.first
            assert out.verify.compared >= len(writers.model)
        finally:
            await redis.close()
