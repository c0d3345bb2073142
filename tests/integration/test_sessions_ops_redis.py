"""``f2f sessions`` core with Redis: standalone (shared server, own prefix) and a Redis Cluster of our own."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import delete

from f2f_cli.clock import utcnow
from f2f_cli.control.phase import Phase, set_phase
from f2f_cli.db.schema import fridge_sessions
from f2f_cli.domain.ids import new_session_id
from f2f_cli.domain.model import Ingredient
from f2f_cli.errors import PreconditionFailed, SessionNotFound
from f2f_cli.ops.context import OpsContext
from f2f_cli.ops.end import end_session
from f2f_cli.ops.inspect import inspect_session
from f2f_cli.ops.listing import ListFilter, list_store
from f2f_cli.ops.redis_stats import redis_stats
from f2f_cli.ops.restore import restore_redis
from f2f_cli.ops.sqlread import read_row
from f2f_cli.ops.transfer import export_sessions, import_sessions
from f2f_cli.redis.client import scan_keys
from f2f_cli.redis.codec import datetime_to_ms
from f2f_cli.stores.redis import RedisSessionStore
from tests.sessions_seed import ops, seed

pytestmark = pytest.mark.redis

@pytest.fixture(params=["standalone", "cluster"])
def redis_env(request: pytest.FixtureRequest, redis_prefix: str) -> dict[str, str]:
    url = request.getfixturevalue("redis_url") if request.param == "standalone" else request.getfixturevalue(
        "redis_cluster").url  # the run's shared Cluster; keys are isolated by prefix
    return {"F2F_REDIS_URL": url, "F2F_REDIS_KEY_PREFIX": redis_prefix,
            "F2F_REDIS_COMMAND_TIMEOUT": "5", "F2F_REDIS_CONNECT_TIMEOUT": "5"}


@asynccontextmanager
async def phased(url: str, env: dict[str, str], phase: Phase) -> AsyncIterator[OpsContext]:
    async with ops(url, **env) as ctx:
        if phase is not Phase.POSTGRES:
            await set_phase(ctx.engine, Phase.DUAL_WRITE, actor="test", action="test")
            await set_phase(ctx.engine, Phase.DUAL, actor="test", action="test")
        if phase is Phase.REDIS:
            await set_phase(ctx.engine, Phase.CUTOVER, actor="test", action="test")
            await set_phase(ctx.engine, Phase.REDIS, actor="test", action="test")
        yield ctx


def _ms(value: datetime) -> int:
    return datetime_to_ms(value)


async def forget_redis(store: RedisSessionStore) -> int:
    """Redis 'lost its data': delete every key under this test's prefix (never FLUSHALL a shared server)."""
    keys = [k async for k in scan_keys(store.client, f"{store.keys.prefix}:*")]
    for key in keys:
        await store.client.delete(key)
    return len(keys)


async def test_restore_after_redis_lost_its_keys(pg_url: str, redis_env: dict[str, str]) -> None:
    async with phased(pg_url, redis_env, Phase.DUAL) as ctx:
        live = await seed(ctx, 30, ingredients=("김치", "두부", "대파"))
        short = await seed(ctx, 5, ingredients=("달걀",), ttl=timedelta(minutes=10))
        (tomb,) = await seed(ctx, 1, deleted=True)
        await seed(ctx, 3, expired_ago=timedelta(minutes=1))
        redis = ctx.redis()
        first = await restore_redis(ctx, page_size=7)
        assert (first.candidates, first.applied) == (36, 36)
        assert await forget_redis(redis) >= 36

        dry = await restore_redis(ctx, dry_run=True)
        assert dry.candidates == 36 and await redis.count() == 0
        result = await restore_redis(ctx, page_size=7)
        assert (result.applied, result.not_newer, result.expired) == (36, 0, 0)
        assert await redis.count() == 35
        for sid in live + short:
            sql, copy = await read_row(ctx.engine, sid), await redis.read_copy(sid)
            assert sql is not None and copy is not None
            assert copy.version == sql.version and copy.names == sql.names
            assert [(i.name, _ms(i.added_at)) for i in copy.ingredients] == [
                (i.name, _ms(i.added_at)) for i in sql.ingredients
            ]
            assert _ms(copy.created_at) == _ms(sql.created_at) and _ms(copy.updated_at) == _ms(sql.updated_at)
            assert abs((copy.expires_at - sql.expires_at).total_seconds()) < 0.002  # remaining TTL kept
        tomb_copy = await redis.read_copy(tomb)
        assert tomb_copy is not None and tomb_copy.deleted
        assert (await inspect_session(ctx, live[0])).verdict == "in sync"

        # Version guard: a newer Redis copy is never replaced, and --since narrows the set.
        await redis.add_ingredients(live[0], ["마늘"])
        again = await restore_redis(ctx, since=timedelta(hours=1))
        assert (again.applied, again.not_newer) == (0, 36)
        assert (await redis.get(live[0])).names == {"김치", "두부", "대파", "마늘"}
        assert (await restore_redis(ctx, since=timedelta(seconds=0) + timedelta(microseconds=1))).candidates == 0


async def test_restore_refuses_in_phase_postgres(sqlite_url: str, redis_env: dict[str, str]) -> None:
    async with phased(sqlite_url, redis_env, Phase.POSTGRES) as ctx:
        with pytest.raises(PreconditionFailed, match="phase is postgres"):
            await restore_redis(ctx)


async def test_list_scans_every_primary(sql_url: str, redis_env: dict[str, str]) -> None:
    async with phased(sql_url, redis_env, Phase.DUAL) as ctx:
        ids = await seed(ctx, 40, ingredients=("김치",))
        soon = await seed(ctx, 3, ingredients=("두부",), ttl=timedelta(minutes=5))
        await restore_redis(ctx)
        assert await ctx.resolve_store("auto") == "redis"
        rows = [r async for r in list_store(ctx.redis(), ListFilter(), page_size=8)]
        assert sorted(r.session_id for r in rows) == sorted(ids + soon)
        assert {r.store for r in rows} == {"redis"}
        tofu = [r async for r in list_store(ctx.redis(), ListFilter(ingredient="두부"))]
        assert sorted(r.session_id for r in tofu) == sorted(soon)
        expiring = [r async for r in list_store(ctx.redis(), ListFilter(expiring_within=timedelta(minutes=6)))]
        assert sorted(r.session_id for r in expiring) == sorted(soon)
        assert len([r async for r in list_store(ctx.redis(), ListFilter(), limit=5)]) == 5


async def test_inspect_shows_divergence_and_verdicts(sql_url: str, redis_env: dict[str, str]) -> None:
    async with phased(sql_url, redis_env, Phase.DUAL) as ctx:
        a, b, c, d = await seed(ctx, 4)
        await restore_redis(ctx)
        redis = ctx.redis()
        assert (await inspect_session(ctx, a)).verdict == "in sync"

        await ctx.sql.add_ingredients(a, ["마늘"])  # SQL moves on, Redis does not get the copy
        seen = await inspect_session(ctx, a)
        assert seen.verdict == "Redis behind"
        assert {x.field for x in seen.differences} >= {"version", "updated_at", "ingredient 마늘"}
        garlic = next(x for x in seen.differences if x.field == "ingredient 마늘")
        assert garlic.sql is not None and garlic.redis is None
        sql_view, redis_view = seen.stores
        assert sql_view.ttl_seconds is not None and redis_view.ttl_seconds is not None

        await redis.add_ingredients(b, ["양파"])  # Redis ahead of SQL
        assert (await inspect_session(ctx, b)).verdict == "SQL behind"

        current = await redis.read_copy(c)
        assert current is not None
        forked = msgspec.structs.replace(
            current, version=current.version + 1,
            ingredients=(*current.ingredients, Ingredient("감자", current.updated_at)),
        )
        await redis.apply_copy(forked)
        sql_now = await read_row(ctx.engine, c)
        assert sql_now is not None
        await ctx.sql.apply_copy(msgspec.structs.replace(forked, ingredients=current.ingredients))
        same = await inspect_session(ctx, c)
        assert same.verdict == "diverged at the same version"
        assert [x.field for x in same.differences] == ["ingredient 감자"]

        await redis.client.delete(redis.keys.session(d))
        assert (await inspect_session(ctx, d)).verdict == "missing in Redis"
        stray = await redis.create()
        assert (await inspect_session(ctx, stray.session_id)).verdict == "missing in SQL"
        nothing = await inspect_session(ctx, new_session_id())
        assert nothing.verdict == "missing in both" and not nothing.found


@pytest.mark.parametrize("phase", [Phase.DUAL, Phase.REDIS])
async def test_expire_and_delete_reach_every_store(sql_url: str, redis_env: dict[str, str], phase: Phase) -> None:
    async with phased(sql_url, redis_env, phase) as ctx:
        a, b = await seed(ctx, 2)
        await restore_redis(ctx)
        redis = ctx.redis()
        if phase is Phase.REDIS:
            await redis.add_ingredients(a, ["양파"])  # Redis is the authority: its version is ahead
        before = await redis.read_copy(a)
        assert before is not None

        expired = await end_session(ctx, a, "expire")
        authority = "sql" if phase is Phase.DUAL else "redis"
        assert [o.store for o in expired.stores] == ([authority, "redis"] if phase is Phase.DUAL
                                                     else ["redis", "sql"])
        assert all(o.outcome == "expired" and o.version == before.version + 1 for o in expired.stores)
        assert await redis.read_copy(a) is None
        row = await read_row(ctx.engine, a)
        assert row is not None and row.expires_at <= utcnow() and row.version == before.version + 1
        with pytest.raises(SessionNotFound):
            await end_session(ctx, a, "expire")

        deleted = await end_session(ctx, b, "delete")
        assert all(o.outcome == "deleted" for o in deleted.stores)
        tomb_redis, tomb_sql = await redis.read_copy(b), await read_row(ctx.engine, b)
        assert tomb_redis is not None and tomb_redis.deleted
        assert tomb_sql is not None and tomb_sql.deleted and tomb_sql.version == tomb_redis.version
        with pytest.raises(SessionNotFound):
            await redis.get(b)
        assert (await inspect_session(ctx, b)).verdict == "in sync"


async def test_redis_stats_and_backup_lag(sqlite_url: str, redis_env: dict[str, str]) -> None:
    async with phased(sqlite_url, redis_env, Phase.REDIS) as ctx:
        await seed(ctx, 6, ingredients=("김치", "두부"))
        await seed(ctx, 2, ingredients=("김치",), ttl=timedelta(minutes=3))
        await seed(ctx, 1, deleted=True)
        await restore_redis(ctx)
        st = await redis_stats(ctx.redis(), top=1, memory_sample=5, with_backup=True)
        assert (st.live, st.tombstones, st.scanned, st.complete) == (8, 1, 9, True)
        assert st.mean_ingredients == 1.75 and st.max_ingredients == 2
        assert {b.label: b.sessions for b in st.ttl_histogram}["< 5m"] == 2
        assert [(t.name, t.sessions) for t in st.top_ingredients] == [("김치", 8)]
        assert st.memory_sampled == 5 and st.memory_mean_bytes is not None and st.memory_mean_bytes > 0
        assert st.backup is not None and st.backup.entries == 0

        writer = RedisSessionStore.from_settings(ctx.settings, backup_stream=True)
        try:
            await writer.create()
            await writer.create()
        finally:
            await writer.close()
        lag = (await redis_stats(ctx.redis(), with_backup=True)).backup
        assert lag is not None and lag.entries == 2 and lag.oldest_entry_age_seconds is not None
        sampled = await redis_stats(ctx.redis(), sample=3)
        assert sampled.scanned == 3 and not sampled.complete


async def test_export_import_round_trip_through_redis(pg_url: str, redis_env: dict[str, str], tmp_path: Path) -> None:
    async with phased(pg_url, redis_env, Phase.DUAL) as ctx:
        await seed(ctx, 12, ingredients=("김치", "두부", "고추장"))
        await restore_redis(ctx)
        buf = io.BytesIO()
        assert (await export_sessions(ctx, "redis", buf, batch_size=5)).sessions == 12
        first = buf.getvalue()
        await forget_redis(ctx.redis())
        async with ctx.engine.begin() as conn:
            await conn.execute(delete(fridge_sessions))
        path = tmp_path / "redis.jsonl"
        path.write_bytes(first)
        result = await import_sessions(ctx, path)
        assert result.stores == ["sql", "redis"] and result.applied == 12
        again = io.BytesIO()
        await export_sessions(ctx, "redis", again)
        assert sorted(again.getvalue().splitlines()) == sorted(first.splitlines())
        assert (await inspect_session(ctx, msgspec.json.decode(first.splitlines()[0])["session_id"])).verdict == (
            "in sync"
        )
