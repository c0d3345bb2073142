"""The phase runtime and its facade with no server: control tables in SQLite, in-memory stores for Redis.

Each phase must route reads, writes and copies as its spec says (control/specs.py), and the
timing wrapper must report the backend the phase uses. The same runtime runs against real
PostgreSQL and Redis in tests/integration and tests/chaos.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.control.runtime import PhaseRuntime
from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import StoreUnavailable, WritesHeld
from f2f_cli.stores.memory import MemorySessionStore
from f2f_cli.stores.sql import SqlSessionStore
from f2f_cli.stores.timed import TimedStore
from tests.conftest import make_settings


class Fleet:
    """One runtime over SQLite, with two in-memory stores standing in for Redis (plain and backup-stream)."""

    def __init__(self, runtime: PhaseRuntime, sql: SqlSessionStore, cache: MemorySessionStore,
                 backup: MemorySessionStore) -> None:
        self.runtime, self.sql, self.cache, self.backup = runtime, sql, cache, backup

    async def move(self, phase: Phase) -> None:
        await control.set_phase(self.runtime.engine, phase, actor="test", action="test")
        await self.runtime.refresh()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f2f.db'}"
    schema.upgrade(url)
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    sql = SqlSessionStore(engine, ttl_seconds=600, max_ingredients=100)
    cache = MemorySessionStore(ttl_seconds=600, max_ingredients=100)
    backup = MemorySessionStore(ttl_seconds=600, max_ingredients=100)

    def redis_store(with_backup: bool) -> SessionStore:
        return backup if with_backup else cache

    rt = PhaseRuntime(engine, sql, redis_factory=redis_store, poll_seconds=30, instance_id="fast-rt", hold_timeout=0.3)
    await rt.refresh()
    yield Fleet(rt, sql, cache, backup)
    await rt.stop()
    await engine.dispose()


async def test_postgres_writes_sql_only(fleet: Fleet) -> None:
    store = fleet.runtime.facade
    sid = (await store.create()).session_id
    await store.add_ingredients(sid, ["두부"])
    assert (await fleet.sql.get(sid)).names == {"두부"}
    assert await fleet.cache.read_copy(sid) is None


async def test_dual_copies_every_write_and_reads_redis_while_trusted(fleet: Fleet) -> None:
    await fleet.move(Phase.DUAL)
    store = fleet.runtime.facade
    sid = (await store.create()).session_id
    mutation = await store.add_ingredients(sid, ["두부", "대파"])
    assert await fleet.cache.read_copy(sid) == await fleet.sql.read_copy(sid) == mutation.session
    # A session only SQL holds is read from SQL and copied into Redis (read-repair).
    lonely = await fleet.sql.create()
    assert (await store.get(lonely.session_id)).version == 1
    assert await fleet.cache.read_copy(lonely.session_id) == lonely


async def test_redis_phase_writes_the_backup_stream_store_only(fleet: Fleet) -> None:
    await fleet.move(Phase.REDIS)
    store = fleet.runtime.facade
    sid = (await store.create()).session_id
    await store.add_ingredients(sid, ["김치"])
    assert (await fleet.backup.get(sid)).names == {"김치"}
    assert await fleet.cache.read_copy(sid) is None
    assert await fleet.sql.read_copy(sid) is None  # SQL gets it from the worker, not the request


async def test_cutover_holds_writes_but_serves_reads(fleet: Fleet) -> None:
    await fleet.move(Phase.DUAL)
    sid = (await fleet.runtime.facade.create()).session_id
    await fleet.move(Phase.CUTOVER)
    assert (await fleet.runtime.facade.get(sid)).session_id == sid
    with pytest.raises(WritesHeld):
        await fleet.runtime.facade.add_ingredients(sid, ["두부"])


async def test_timing_wrapper_reports_the_backend_of_the_phase(fleet: Fleet) -> None:
    seen: list[tuple[str, str, str]] = []
    timed = TimedStore(fleet.runtime.facade, lambda b, op, outcome, _s: seen.append((b, op, outcome)),
                       lambda: fleet.runtime.store().backend)
    sid = (await timed.create()).session_id
    await fleet.move(Phase.DUAL)
    await timed.get(sid)
    await fleet.move(Phase.REDIS)
    with pytest.raises(Exception, match="not found"):
        await timed.get(sid)  # the redis phase reads only the backup-stream store, which never saw it
    assert seen == [("sql", "create", "ok"), ("dual", "get", "ok"), ("memory", "get", "session_not_found")]


async def test_a_phase_without_its_backend_is_a_clean_503(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f2f.db'}"
    schema.upgrade(url)
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    rt = PhaseRuntime(engine, SqlSessionStore(engine, ttl_seconds=60, max_ingredients=10), redis_factory=None,
                      poll_seconds=30, instance_id="no-redis")
    try:
        await control.set_phase(engine, Phase.REDIS, actor="test", action="test")
        await rt.refresh()
        with pytest.raises(StoreUnavailable, match="F2F_REDIS_URL"):
            await rt.facade.create()
    finally:
        await rt.stop()
        await engine.dispose()
