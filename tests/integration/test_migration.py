"""Backfill, verify, repair and the refusal paths of the phase machine (real PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from f2f_cli.db.schema import fridge_sessions
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.migration import checkpoint
from f2f_cli.migration.backfill import CHECKPOINT, backfill
from f2f_cli.migration.machine import Migrator
from f2f_cli.migration.verify import verify
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings
from tests.redis_servers import data_node, free_port


@dataclass
class Env:
    settings: Settings
    sql: SqlSessionStore
    redis: RedisSessionStore


@pytest.fixture
async def env(pg_url: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Env]:
    settings = make_settings(F2F_DATABASE_URL=pg_url, F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix,
                             F2F_REDIS_COMMAND_TIMEOUT="5", F2F_PHASE_POLL_SECONDS="0.5")
    engine = create_engine_for(settings)
    redis = RedisSessionStore.from_settings(settings)
    yield Env(settings, SqlSessionStore(engine, ttl_seconds=3600, max_ingredients=100), redis)
    await redis.close()
    await engine.dispose()


async def _seed(sql: SqlSessionStore, n: int) -> list[str]:
    ids = []
    for i in range(n):
        s = await sql.create()
        await sql.add_ingredients(s.session_id, [f"재료{i}", "두부", "대파"])
        ids.append(s.session_id)
    return ids


async def test_backfill_copies_keeps_ttl_skips_expired_and_never_overwrites_newer(env: Env) -> None:
    ids = await _seed(env.sql, 30)
    # One expired, one deleted (tombstone), one already newer in Redis.
    async with env.sql.engine.begin() as conn:
        await conn.execute(update(fridge_sessions).where(fridge_sessions.c.session_id == ids[0])
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
    await env.sql.delete(ids[1])
    current = await env.sql.get(ids[2])
    newer = Session(current.session_id, current.created_at, utcnow(), utcnow() + timedelta(hours=1),
                    current.version + 5, (Ingredient("김치", utcnow()),))
    assert await env.redis.apply_copy(newer)

    report = await backfill(env.sql.engine, env.redis, batch_size=7)
    assert report.copied == 28  # 30 - expired - the newer one (the tombstone is copied too)
    assert report.skipped_newer == 1
    assert await env.redis.read_copy(ids[0]) is None
    tomb = await env.redis.read_copy(ids[1])
    assert tomb is not None
    assert tomb.deleted
    kept = await env.redis.read_copy(ids[2])
    assert kept is not None
    assert (kept.version, kept.names) == (newer.version, {"김치"})
    for sid in ids[3:]:
        in_sql = await env.sql.get(sid)
        in_redis = await env.redis.get(sid)
        assert in_redis == in_sql
        pttl = await env.redis.client.pttl(env.redis.keys.session(sid))
        assert abs(pttl / 1000 - in_sql.ttl_seconds()) <= 2
    assert await checkpoint.load(env.sql.engine, CHECKPOINT) is None  # finished: checkpoint cleared


class Crash(Exception):
    pass


class CrashAfter:
    def __init__(self, batches: int) -> None:
        self.left = batches

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, amount: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise Crash

    def finish(self, task: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


async def test_backfill_resumes_from_its_checkpoint(env: Env) -> None:
    ids = sorted(await _seed(env.sql, 25))
    with pytest.raises(Crash):
        await backfill(env.sql.engine, env.redis, batch_size=10, progress=CrashAfter(2))
    cp = await checkpoint.load(env.sql.engine, CHECKPOINT)
    assert cp is not None
    assert cp.last_session_id == ids[19]
    assert cp.copied == 20
    # A write lands meanwhile (dual-write would copy it; here SQL only): the resume must not lose it.
    await env.sql.add_ingredients(ids[0], ["나중에"])
    resumed = await backfill(env.sql.engine, env.redis, batch_size=10, resume=True)
    assert resumed.resumed_from == ids[19]
    assert resumed.copied == 5
    assert [await env.redis.read_copy(s) is not None for s in ids] == [True] * 25
    # ids[0] in Redis is the pre-write copy: exactly what a verify then reports, and a rerun fixes.
    report, _ = await verify(env.sql.engine, env.sql, env.redis)
    assert report.by_kind == {"version": 1}
    rerun = await backfill(env.sql.engine, env.redis, batch_size=10)
    assert rerun.copied == 1
    assert (await verify(env.sql.engine, env.sql, env.redis))[0].clean


async def test_verify_finds_each_kind_of_difference_and_repair_fixes_them(env: Env) -> None:
    ids = await _seed(env.sql, 6)
    await backfill(env.sql.engine, env.redis)
    assert (await verify(env.sql.engine, env.sql, env.redis))[0].clean
    await env.redis.discard(ids[0])  # missing in Redis
    s = await env.sql.get(ids[1])
    await env.redis.discard(ids[1])
    await env.redis.apply_copy(Session(s.session_id, s.created_at, s.updated_at, s.expires_at, s.version,
                                       (Ingredient("가짜", s.updated_at),)))  # same version, other content
    orphan = Session("A" * 32, utcnow(), utcnow(), utcnow() + timedelta(hours=1), 3)
    await env.redis.apply_copy(orphan)  # missing in SQL
    s2 = await env.sql.get(ids[2])
    await env.redis.discard(ids[2])
    await env.redis.apply_copy(Session(s2.session_id, s2.created_at, s2.updated_at,
                                       s2.expires_at + timedelta(seconds=30), s2.version, s2.ingredients))  # ttl

    async with Migrator.open(env.settings, actor="test") as m:
        out = await m.verify_stores(repair_now=False)
        assert out.verify is not None
        assert out.verify.by_kind == {"missing_in_redis": 1, "ingredients": 1, "missing_in_sql": 1, "ttl": 1}
        assert not out.done
        out = await m.verify_stores(repair_now=True)
        assert out.verify is not None
        assert out.verify.repaired == 4, (out.refused, out.steps)
        out = await m.verify_stores(repair_now=False)
        assert out.verify is not None
        assert out.verify.clean


async def test_to_dual_then_rollback_without_live_instances(env: Env) -> None:
    await _seed(env.sql, 12)
    async with Migrator.open(env.settings, actor="test", converge_timeout=2) as m:
        plan = await m.plan(Phase.DUAL)
        assert plan.done, plan.checks
        async with Migrator.open(env.settings, actor="t", dry_run=True) as dry_run:
            dry = await dry_run.to_dual()
        assert dry.dry_run
        assert dry.steps
        assert (await control.get_control(m.engine)).phase is Phase.POSTGRES  # dry run changed nothing
        out = await m.to_dual()
        assert out.done, out.refused
        assert out.backfill is not None
        assert out.backfill.copied == 12
        assert out.verify is not None
        assert out.verify.clean
        assert (await control.get_control(m.engine)).phase is Phase.DUAL
        again = await m.to_dual()  # idempotent
        assert again.done
        assert "already" in again.steps[0]
        back = await m.rollback()
        assert back.done, back.refused
        assert back.redis_keys_left == 12
        assert (await control.get_control(m.engine)).phase is Phase.POSTGRES
        nothing = await m.rollback()  # safe to run twice: already in postgres is done, not refused
        assert nothing.done and nothing.refused is None
        assert any("nothing to roll back" in step for step in nothing.steps)
        assert (await control.get_control(m.engine)).phase is Phase.POSTGRES


async def test_to_dual_refuses_when_an_instance_lags_and_changes_nothing(env: Env) -> None:
    engine = env.sql.engine
    state = await control.get_control(engine)
    await control.heartbeat(engine, "serve-stuck", "serve", "postgres", state.epoch, utcnow())
    async with Migrator.open(env.settings, actor="test", converge_timeout=1) as m:
        out = await m.to_dual()
    assert not out.done
    assert out.refused is not None
    assert "serve-stuck" not in out.refused  # names host:pid, not the internal id
    assert "did not acknowledge" in out.refused
    assert (await control.get_control(engine)).phase is Phase.POSTGRES


async def test_to_redis_refuses_without_a_worker_or_with_differences(env: Env) -> None:
    ids = await _seed(env.sql, 3)
    async with Migrator.open(env.settings, actor="test", converge_timeout=2) as m:
        assert (await m.to_dual()).done
        out = await m.to_redis()
        assert out.refused is not None
        assert "worker" in out.refused
        await control.heartbeat(m.engine, "worker-1", "worker", "dual", 0, utcnow())
        await env.redis.discard(ids[0])
        out = await m.to_redis()
        assert out.refused is not None
        assert "differences" in out.refused
        assert (await control.get_control(m.engine)).phase is Phase.DUAL


async def test_to_dual_refuses_an_evicting_redis(env: Env, tmp_path: Path) -> None:
    node = data_node(free_port(), tmp_path / "r", "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru").start()
    try:
        settings = make_settings(F2F_DATABASE_URL=env.settings.database_url, F2F_REDIS_URL=node.url)
        async with Migrator.open(settings, actor="test") as m:
            out = await m.to_dual()
        assert out.refused is not None
        assert "allkeys-lru" in out.refused
        assert (await control.get_control(env.sql.engine)).phase is Phase.POSTGRES
    finally:
        node.stop()


async def test_to_dual_refuses_an_unreachable_redis(env: Env) -> None:
    settings = make_settings(F2F_DATABASE_URL=env.settings.database_url, F2F_REDIS_URL="redis://127.0.0.1:1/0")
    async with Migrator.open(settings, actor="test") as m:
        out = await m.to_dual()
    assert out.refused is not None
    assert "redis reachable" in out.refused
    assert (await control.get_control(env.sql.engine)).phase is Phase.POSTGRES


