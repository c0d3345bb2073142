"""The backup of the ``redis`` phase on a Redis Cluster with replicas loses no entry when slots move or a
primary fails (issue #27). Writers add ingredients through the store (the write script appends each backup
entry to its primary's stream) while an ``f2f worker`` process drains the streams into PostgreSQL.

What "lost" means here, exactly: after the writers stop and every backup stream is empty, a session whose
state in Redis (version and ingredient names) is not the state PostgreSQL holds. Redis is the authority in
this phase, so the backup must end equal to it, session by session.

- **Resharding** (``redis-cli --cluster reshard`` moving a primary's slots, its node stream's slot among
  them, to another primary and some back): Redis loses nothing, so in addition every acknowledged write is in
  Redis and therefore in PostgreSQL.
- **A primary killed** (SIGKILL, its replica promoted): Redis replicates asynchronously, so a write the dead
  primary acknowledged but had not yet sent to its replica is gone from Redis itself, together with its
  backup entry; no backup can keep what Redis never replicated. Those writes are counted and printed. Every
  write the promoted replica holds (acknowledged and replicated) must reach PostgreSQL: Redis and SQL equal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from f2f_cli.backup.worker import backup_lag
from f2f_cli.db.engine import create_engine_for
from f2f_cli.errors import StoreUnavailable
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from tests.chaos.faults_support import fault_env, to_redis_phase, wait_for, worker_alive
from tests.conftest import make_settings
from tests.integration.test_backup_worker import redis_state, sql_state
from tests.redis_servers import RedisClusterServers
from tests.servers import worker_process

pytestmark = pytest.mark.chaos

WRITERS = 24
PER_SESSION = 50  # then the writer starts another session (more sessions, spread over more slots)


@dataclass
class Writers:
    """Writers that each own a session and add distinct names: every acknowledged write is known."""

    store: RedisSessionStore
    acked: dict[str, set[str]] = field(default_factory=dict)
    failed: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def writes_acked(self) -> int:
        return sum(map(len, self.acked.values()))

    async def _create(self) -> str:
        while True:
            try:
                sid = (await self.store.create()).session_id
            except StoreUnavailable:
                self.failed += 1
                await asyncio.sleep(0.05)
                continue
            self.acked[sid] = set()
            return sid

    async def _one(self, n: int) -> None:
        sid = await self._create()
        i = 0
        while not self.stop.is_set():
            if len(self.acked[sid]) >= PER_SESSION:
                sid = await self._create()
            name = f"w{n}-{i}"
            i += 1
            try:
                await self.store.add_ingredients(sid, [name])
            except StoreUnavailable:
                self.failed += 1  # not acknowledged: may or may not be in Redis, either way not counted
                await asyncio.sleep(0.02)
                continue
            self.acked[sid].add(name)
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        await asyncio.gather(*(self._one(n) for n in range(WRITERS)))


async def _drained(store: RedisSessionStore) -> float:
    """Wait until every backup stream is empty (every slot's stream read, not only the node streams)."""
    async def empty() -> bool:
        return (await backup_lag(store.client, store.keys)).total == 0

    return await wait_for(empty, "every backup stream to be drained", limit=120)


async def _compare(settings: Settings, store: RedisSessionStore, writers: Writers) -> tuple[list[str], int]:
    """(sessions whose SQL state is not their Redis state, acknowledged names Redis no longer has)."""
    in_redis = {sid: s for sid, s in (await redis_state(store)).items() if sid in writers.acked}
    in_sql = {sid: s for sid, s in sql_state(settings.database_url).items() if sid in writers.acked}
    differ = sorted(sid for sid in writers.acked if in_redis.get(sid) != in_sql.get(sid))
    gone = sum(len(names - (in_redis[sid][2] if sid in in_redis else frozenset()))
               for sid, names in writers.acked.items())
    return differ, gone


@contextlib.asynccontextmanager
async def _setup(
    pg_url: str, cluster: RedisClusterServers, prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Settings, RedisSessionStore]]:
    env = fault_env(pg_url, cluster.url, prefix, F2F_REDIS_COMMAND_TIMEOUT="2")
    settings = make_settings(**env)
    engine = create_engine_for(settings)
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    try:
        await to_redis_phase(engine)
        # Entries a worker had read but not acknowledged when their primary died are claimed again after 2 s.
        with worker_process(env, tmp_path, "--claim-idle-ms", "2000"):
            await worker_alive(engine)
            yield settings, store
    finally:
        await store.close()
        await engine.dispose()


async def test_resharding_under_writes_loses_no_backup_entry(
    pg_url: str, tmp_path: Path, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory(replicas=1, node_timeout_ms=2000)
    a, b, c = cluster.primary_ports()
    async with _setup(pg_url, cluster, redis_prefix, tmp_path) as (settings, store):
        writers = Writers(store)
        running = asyncio.create_task(writers.run())
        await asyncio.sleep(1.5)
        first_of_a = min(cluster.slots_of(a))
        # A's lowest 300 slots, the slot of its node stream among them, go to B (whose node stream then
        # changes too); then 200 of B's go to C while writes continue.
        await asyncio.to_thread(cluster.reshard, a, b, 300)
        assert first_of_a in cluster.slots_of(b)
        await asyncio.to_thread(cluster.reshard, b, c, 200)
        await asyncio.sleep(1.0)
        writers.stop.set()
        await running
        took = await _drained(store)
        differ, gone = await _compare(settings, store, writers)
    print(f"\n{writers.writes_acked} writes acknowledged ({writers.failed} failed, not acknowledged); drained "
          f"{took:.1f} s after the writers stopped; {len(differ)} session(s) differ, {gone} name(s) gone")
    assert writers.writes_acked > 0
    assert gone == 0, "Redis itself lost acknowledged writes while slots moved"
    assert differ == [], f"PostgreSQL does not hold what Redis holds for {differ[:5]}"


async def test_a_primary_killed_loses_no_replicated_backup_entry(
    pg_url: str, tmp_path: Path, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory(replicas=1, node_timeout_ms=2000)
    async with _setup(pg_url, cluster, redis_prefix, tmp_path) as (settings, store):
        writers = Writers(store)
        running = asyncio.create_task(writers.run())
        await asyncio.sleep(2.0)
        victim = cluster.primary_ports()[0]
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_promoted, victim, 90.0)
        await asyncio.sleep(2.0)  # writes continue on the promoted replica
        writers.stop.set()
        await running
        took = await _drained(store)
        differ, gone = await _compare(settings, store, writers)
    print(f"\n{writers.writes_acked} writes acknowledged ({writers.failed} failed); drained {took:.1f} s after "
          f"the writers stopped; {gone} acknowledged name(s) the dead primary never replicated (lost by Redis); "
          f"{len(differ)} session(s) where PostgreSQL differs from the promoted Redis")
    assert writers.writes_acked > 0
    assert differ == [], f"PostgreSQL does not hold what Redis holds for {differ[:5]}"
