"""Redis faults in the ``redis`` phase, in process against real PostgreSQL or SQLite and Redis (standalone,
Sentinel and a 3-primary Cluster): the marker of one primary gone → recovering, misses and writes
rehydrate, the restore trusts Redis again; an automatic failover fences SQL writes, and the
returning Redis is reconciled with its conflicts reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from f2f_cli.control import faults
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase, RedisState
from f2f_cli.control.runtime import PhaseRuntime
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.store import SessionStore
from f2f_cli.redis.marker import marker_keys, markers_match, read_markers
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings


@dataclass
class Fleet:
    settings: Settings
    sql: SqlSessionStore
    runtime: PhaseRuntime
    plain: RedisSessionStore
    backup: RedisSessionStore


@pytest.fixture
async def fleet(sql_url: str, redis_mode_url: str, redis_prefix: str) -> AsyncIterator[Fleet]:
    settings = make_settings(F2F_DATABASE_URL=sql_url, F2F_REDIS_URL=redis_mode_url, F2F_REDIS_KEY_PREFIX=redis_prefix,
                             F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="5")
    engine = create_engine_for(settings)
    sql = SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=100)
    stores = {False: RedisSessionStore.from_settings(settings),
              True: RedisSessionStore.from_settings(settings, backup_stream=True)}

    def factory(backup: bool) -> SessionStore:
        return stores[backup]

    runtime = PhaseRuntime(engine, sql, redis_factory=factory, poll_seconds=0.2, instance_id="serve-test",
                           failover_seconds=0)
    for step in (Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS):
        await control.set_phase(engine, step, actor="test", action="test")
    await runtime.refresh()
    yield Fleet(settings, sql, runtime, stores[False], stores[True])
    await runtime.stop()
    for store in stores.values():
        await store.close()
    await engine.dispose()


async def _recovered(rt: PhaseRuntime) -> None:
    for _ in range(3):
        await rt.refresh()
        if rt.redis.recovery is not None:
            await rt.redis.recovery
        if rt.redis_state is RedisState.OK:
            await rt.refresh()
            return
    raise AssertionError(f"still {rt.redis_state}")


async def test_one_primary_losing_its_marker_is_a_loss_and_is_restored(fleet: Fleet) -> None:
    rt, sql, plain = fleet.runtime, fleet.sql, fleet.plain
    generation = (await control.get_control(rt.engine)).redis_generation
    assert generation is not None and markers_match(await read_markers(plain.client, plain.keys), generation)
    # The backup holds sessions Redis does not (as after a restart of one primary); Redis lost the marker there.
    backed = [await sql.create() for _ in range(30)]
    await sql.add_ingredients(backed[0].session_id, ["김치"])
    names = marker_keys(plain.client, plain.keys)
    assert len(names) == (3 if plain.keys.cluster else 1)  # one marker per primary
    await plain.client.delete(names[-1])

    read = await rt.facade.get(backed[0].session_id)  # a miss: the marker check finds the loss
    assert read.names == {"김치"}
    assert rt.redis_state is RedisState.RECOVERING and rt.fault_events.data_loss == 1
    written = await rt.facade.add_ingredients(backed[1].session_id, ["두부"])  # rehydrated, then written in Redis
    assert written.session.version == backed[1].version + 1
    assert rt.fault_events.rehydrated == 2
    state = await control.get_control(rt.engine)
    assert not state.redis_trusted and state.redis_state is RedisState.RECOVERING

    await _recovered(rt)
    state = await control.get_control(rt.engine)
    assert state.redis_trusted and state.redis_generation not in (None, generation)
    assert markers_match(await read_markers(plain.client, plain.keys), state.redis_generation or "")
    copies = await plain.read_copies([s.session_id for s in backed])
    assert all(c is not None for c in copies)
    assert copies[1] is not None and copies[1].names == {"두부"}  # the restore never replaced the newer write
    actions = [e for e in await _actions(fleet)]
    assert actions.count("redis-data-loss") == 1 and actions.count("redis-restored") == 1


async def _actions(fleet: Fleet) -> list[str]:
    from tests.chaos.faults_support import history

    return [a for a, _ in await history(fleet.runtime.engine)]


async def test_failover_fences_sql_writes_and_reports_the_redis_writes_that_lost(fleet: Fleet) -> None:
    rt, sql, backup = fleet.runtime, fleet.sql, fleet.backup
    # Two sessions backed up at their first version; then a write in Redis the worker never drained.
    fork, tail = await backup.create(), await backup.create()
    for session in (fork, tail):
        assert await sql.apply_copy(session)
        await backup.add_ingredients(session.session_id, ["redis-only"])
    state = await control.get_control(rt.engine)
    after = await faults.auto_failover(rt.engine, expect_epoch=state.epoch, rpo_estimate=2,
                                       votes=faults.Votes(live=1, unreachable=1), actor="test")
    assert after is not None and after.phase is Phase.DUAL and after.redis_state is RedisState.FAILED_OVER
    await rt.refresh()
    assert rt.spec.fences_writes and rt.store() is sql
    # The fleet writes in SQL meanwhile; a second failover-time write must not be fenced twice.
    await rt.facade.add_ingredients(fork.session_id, ["sql-during-failover"])
    mutation = await rt.facade.add_ingredients(fork.session_id, ["again"])
    assert mutation.session.version == fork.version + faults.FENCE_JUMP + 2

    await _recovered(rt)
    total, latest = await faults.conflict_report(rt.engine)
    assert total == 1 and latest[0].session_id == fork.session_id
    assert latest[0].lost["ingredients"] == ["redis-only"]
    # The untouched session got its undrained Redis write from the stream; the fenced one kept SQL's.
    tail_now = await sql.read_copy(tail.session_id)
    assert tail_now is not None and tail_now.names == {"redis-only"}
    fork_redis = await fleet.plain.read_copy(fork.session_id)
    fork_sql = await sql.read_copy(fork.session_id)
    assert fork_sql is not None and fork_sql.names == {"sql-during-failover", "again"}
    assert fork_redis == fork_sql
    assert int(await backup.client.xlen(backup.keys.backup_stream(fork.session_id))) == 0
    state = await control.get_control(rt.engine)
    assert state.phase is Phase.DUAL and state.redis_state is RedisState.OK and state.redis_trusted


