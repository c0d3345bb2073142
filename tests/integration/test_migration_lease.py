"""One migrator at a time, cut-overs that end with their migrator, preconditions before any hold.

Real PostgreSQL and Redis; migrators run in-process (the signal tests in ``tests/chaos`` run them
as processes). Deadlines and lease ages are small here so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from f2f_cli.clock import utcnow
from f2f_cli.control import lease
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.control.runtime import PhaseRuntime
from f2f_cli.db.engine import create_engine_for
from f2f_cli.db.schema import f2f_migrator_lease, f2f_phase_history
from f2f_cli.migration import transitions
from f2f_cli.migration.machine import Migrator
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings


@dataclass
class Env:
    settings: Settings
    sql: SqlSessionStore
    redis: RedisSessionStore


@pytest.fixture
async def env(pg_url: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Env]:
    settings = make_settings(F2F_DATABASE_URL=pg_url, F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix,
                             F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="5",
                             F2F_PHASE_POLL_SECONDS="0.5", F2F_CUTOVER_DEADLINE_SECONDS="1",
                             F2F_MIGRATE_LEASE_SECONDS="2")
    engine = create_engine_for(settings)
    redis = RedisSessionStore.from_settings(settings, backup_stream=True)
    yield Env(settings, SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=100), redis)
    await redis.close()
    await engine.dispose()


async def _seed(sql: SqlSessionStore, n: int) -> None:
    for i in range(n):
        s = await sql.create()
        await sql.add_ingredients(s.session_id, [f"재료{i}", "두부"])


async def _history(env: Env) -> list[tuple[str, str, str | None, str | None]]:
    async with env.sql.engine.connect() as conn:
        rows = await conn.execute(select(f2f_phase_history).order_by(f2f_phase_history.c.id))
        return [(r.actor, r.action, r.to_phase, r.detail) for r in rows]


async def _worker_heartbeat(env: Env, *, age: timedelta = timedelta(0)) -> None:
    await control.heartbeat(env.sql.engine, "worker-test", "worker", "redis", 0, utcnow())
    if age:
        async with env.sql.engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE f2f_instances SET last_seen = last_seen - make_interval(secs => %s)"
                                       " WHERE instance_id = 'worker-test'", (age.total_seconds(),))


async def _race(env: Env, move: str) -> list[str | None]:
    """Two migrators started together; each returns its refusal (None when it ran)."""

    async def one(name: str) -> str | None:
        async with Migrator.open(env.settings, actor=name, converge_timeout=5) as m:
            out = await getattr(m, move)()
            assert out.done or out.refused, out
            return None if out.done else out.refused

    return list(await asyncio.gather(one("first"), one("second")))


async def test_two_concurrent_to_dual_one_runs_one_refuses_naming_the_holder(env: Env) -> None:
    await _seed(env.sql, 200)
    results = await _race(env, "to_dual")
    refusals = [r for r in results if r is not None]
    assert len(refusals) == 1, results
    assert "another migrator is running" in refusals[0]
    winner = "first" if results[0] is None else "second"
    assert f"({winner}) running 'to dual'" in refusals[0]  # names the holder and what it runs
    assert (await control.get_control(env.sql.engine)).phase is Phase.DUAL
    assert await lease.current(env.sql.engine) is None  # released by the winner
    history = await _history(env)
    assert sum(1 for _actor, action, *_ in history if action == "to dual refused") == 1
    assert {actor for actor, action, *_ in history if action.startswith("to dual:")} in ({"first"}, {"second"})


async def test_two_concurrent_to_redis_and_rollbacks(env: Env) -> None:
    await _seed(env.sql, 20)
    async with Migrator.open(env.settings, actor="setup") as m:
        assert (await m.to_dual()).done
    await _worker_heartbeat(env)
    results = await _race(env, "to_redis")
    assert sum(r is None for r in results) == 1, results
    assert (await control.get_control(env.sql.engine)).phase is Phase.REDIS
    results = await _race(env, "rollback")
    assert sum(r is None for r in results) == 1, results
    # Whoever came second found either the lease held or, had it started later, the phase moved on.
    assert (await control.get_control(env.sql.engine)).phase in (Phase.DUAL, Phase.POSTGRES)


async def test_a_stale_lease_is_taken_over_only_when_asked(env: Env) -> None:
    old = utcnow() - timedelta(seconds=30)
    async with env.sql.engine.begin() as conn:
        await conn.execute(insert(f2f_migrator_lease).values(
            id=1, token="dead", holder="gone-pod:42", actor="root@gone-pod:42 f2f migrate to dual",
            command="to dual", step="backfill", since=old, heartbeat=old))
    async with Migrator.open(env.settings, actor="me") as m:
        out = await m.to_dual()
        assert out.refused is not None
        assert "gone-pod:42" in out.refused
        assert "--take-over" in out.refused
        assert (await control.get_control(env.sql.engine)).phase is Phase.POSTGRES
    async with Migrator.open(env.settings, actor="me", take_over=True) as m:
        out = await m.to_dual()
        assert out.done, out.refused
    assert await lease.current(env.sql.engine) is None


async def test_a_live_lease_is_never_taken_over(env: Env) -> None:
    held = await lease.acquire(env.sql.engine, actor="other", command="to dual", stale_after=timedelta(seconds=2))
    try:
        async with Migrator.open(env.settings, actor="me", take_over=True) as m:
            out = await m.to_dual()
        assert out.refused is not None
        assert "another migrator is running" in out.refused
        async with Migrator.open(env.settings, actor="me", dry_run=True) as m:
            dry = await m.to_dual()
        assert [c.ok for c in dry.checks if c.name == "no other migrator running"] == [False]
    finally:
        await lease.release(env.sql.engine, held.token)


async def test_dual_write_left_behind_needs_resume(env: Env) -> None:
    await _seed(env.sql, 5)
    await control.set_phase(env.sql.engine, Phase.DUAL_WRITE, actor="crashed", action="to dual: dual-write")
    async with Migrator.open(env.settings, actor="me") as m:
        out = await m.to_dual()
        assert out.refused is not None
        assert "--resume" in out.refused
        assert (await control.get_control(env.sql.engine)).phase is Phase.DUAL_WRITE
    async with Migrator.open(env.settings, actor="me", resume=True) as m:
        out = await m.to_dual()
    assert out.done, out.refused
    assert out.step_keys == [s.key for s in transitions.find("to dual", Phase.DUAL_WRITE).steps]  # type: ignore[union-attr]


async def test_a_lapsed_cutover_returns_to_its_origin_once(env: Env) -> None:
    """The migrator is gone (it never renews): the instances return the fleet, exactly one of them."""
    engine = env.sql.engine
    await control.set_phase(engine, Phase.DUAL_WRITE, actor="t", action="t")
    await control.set_phase(engine, Phase.DUAL, actor="t", action="t")
    held = await control.set_phase(engine, Phase.CUTOVER, actor="dead migrator", action="to redis: hold",
                                   expect=Phase.DUAL, toward=Phase.REDIS, hold_for=timedelta(seconds=0.3))
    assert held.cutover_from is Phase.DUAL
    assert held.cutover_to is Phase.REDIS
    runtimes = [PhaseRuntime(engine, env.sql, redis_factory=None, poll_seconds=60, instance_id=f"serve-{i}")
                for i in range(3)]
    try:
        for rt in runtimes:
            await rt.refresh()
        assert {rt.phase for rt in runtimes} == {Phase.CUTOVER}
        await asyncio.sleep(0.5)
        assert not await control.renew_hold(engine, held.epoch, timedelta(seconds=5))  # a lapse is final
        await asyncio.gather(*(rt.refresh() for rt in runtimes))
        assert {rt.phase for rt in runtimes} == {Phase.DUAL}
        state = await control.get_control(engine)
        assert (state.phase, state.epoch, state.hold_deadline) == (Phase.DUAL, held.epoch + 1, None)
        lapses = [h for h in await _history(env) if h[1] == "cutover lapsed"]
        assert len(lapses) == 1
        assert json.loads(lapses[0][3] or "{}")["held_by"] == "dead migrator"
    finally:
        for rt in runtimes:
            await rt.stop()


async def test_a_renewed_cutover_does_not_lapse(env: Env) -> None:
    engine = env.sql.engine
    await control.set_phase(engine, Phase.REDIS, actor="t", action="t")
    held = await control.set_phase(engine, Phase.CUTOVER, actor="alive", action="rollback: hold",
                                   toward=Phase.DUAL, hold_for=timedelta(seconds=0.4))
    rt = PhaseRuntime(engine, env.sql, redis_factory=None, poll_seconds=60, instance_id="serve-x")
    try:
        for _ in range(4):
            await asyncio.sleep(0.2)
            assert await control.renew_hold(engine, held.epoch, timedelta(seconds=0.4))
            await rt.refresh()
            assert rt.phase is Phase.CUTOVER
    finally:
        await rt.stop()


async def test_rollback_with_a_dead_worker_is_refused_before_holding_any_write(env: Env) -> None:
    await _seed(env.sql, 3)
    async with Migrator.open(env.settings, actor="setup") as m:
        assert (await m.to_dual()).done
        await _worker_heartbeat(env)
        assert (await m.to_redis()).done
    for i in range(5):  # writes in the redis phase sit in the backup stream: no worker drains them
        s = await env.redis.create()
        await env.redis.add_ingredients(s.session_id, [f"백업{i}"])
    await _worker_heartbeat(env, age=timedelta(minutes=5))  # the worker died five minutes ago
    before = len(await _history(env))
    async with Migrator.open(env.settings, actor="me", dry_run=True) as m:
        dry = await m.rollback()
    assert [c.name for c in dry.checks] == ["no other migrator running", "sql reachable, schema at head",
                                            "redis reachable", "backup worker heartbeat",
                                            "backup backlog drains within the hold budget"]
    assert not next(c for c in dry.checks if c.name == "backup worker heartbeat").ok
    async with Migrator.open(env.settings, actor="me") as m:
        out = await m.rollback()
    assert out.refused is not None
    assert "worker" in out.refused
    assert out.writes_held_ms is None
    assert (await control.get_control(env.sql.engine)).phase is Phase.REDIS
    after = await _history(env)
    assert [h[1] for h in after[before:]] == ["rollback refused"]  # no cutover row: 0 writes held


async def test_rollback_refuses_a_backlog_older_than_the_hold_budget(env: Env) -> None:
    await control.set_phase(env.sql.engine, Phase.REDIS, actor="t", action="t")
    s = await env.redis.create()
    await env.redis.add_ingredients(s.session_id, ["오래된"])
    await asyncio.sleep(1.2)
    await _worker_heartbeat(env)  # alive, but not draining
    async with Migrator.open(env.settings, actor="me", drain_timeout=1) as m:
        out = await m.rollback()
    assert out.refused is not None
    assert "not keeping up" in out.refused
    assert (await control.get_control(env.sql.engine)).phase is Phase.REDIS
