"""``f2f sessions`` core on SQLite and PostgreSQL: list, inspect, expire, delete, purge, stats."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import func, select

from f2f_cli.db.schema import fridge_session_ingredients, fridge_sessions
from f2f_cli.domain.ids import new_session_id
from f2f_cli.errors import InvalidInput, InvalidSessionId, SessionNotFound
from f2f_cli.ops.durations import format_duration, parse_duration
from f2f_cli.ops.end import end_session
from f2f_cli.ops.inspect import inspect_session
from f2f_cli.ops.listing import ListFilter, list_sql
from f2f_cli.ops.purge import purge_expired
from f2f_cli.ops.sqlread import read_row
from f2f_cli.ops.stats import sql_stats
from tests.sessions_seed import ops, seed


async def _rows(ctx: object) -> tuple[int, int]:
    engine = ctx.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        s = await conn.scalar(select(func.count()).select_from(fridge_sessions))
        i = await conn.scalar(select(func.count()).select_from(fridge_session_ingredients))
    return int(s), int(i)


def test_durations() -> None:
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(" 7D ") == timedelta(days=7)
    assert parse_duration("45") == timedelta(seconds=45)
    assert parse_duration("2w") == timedelta(days=14)
    for bad in ("", "h", "1.5h", "-1h", "1y", "1h 30m", "5x"):
        with pytest.raises(InvalidInput, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(InvalidInput, match="longer than zero"):
        parse_duration("0s", allow_zero=False)
    assert format_duration(-200) == "-3m20s"
    assert format_duration(90061) == "1d01h"


async def test_list_pages_by_keyset_and_filters(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        live = await seed(ctx, 7, ingredients=("김치",))
        soon = await seed(ctx, 2, ingredients=("두부",), ttl=timedelta(minutes=10))
        await seed(ctx, 3, expired_ago=timedelta(minutes=5))
        gone = live.pop()
        await ctx.sql.delete(gone)

        rows = [r async for r in list_sql(ctx.engine, ListFilter(), page_size=2)]
        assert [r.session_id for r in rows] == sorted(live + soon)
        assert all(r.ingredients == 1 and r.version == 2 and r.store == "sql" for r in rows)

        limited = [r async for r in list_sql(ctx.engine, ListFilter(), limit=3, page_size=2)]
        assert [r.session_id for r in limited] == sorted(live + soon)[:3]

        expiring = [r async for r in list_sql(ctx.engine, ListFilter(expiring_within=timedelta(minutes=30)))]
        assert sorted(r.session_id for r in expiring) == sorted(soon)
        assert all(0 < r.ttl_seconds <= 600 for r in expiring)

        tofu = [r async for r in list_sql(ctx.engine, ListFilter(ingredient="두부"), page_size=1)]
        assert sorted(r.session_id for r in tofu) == sorted(soon)
        assert [r async for r in list_sql(ctx.engine, ListFilter(ingredient="마늘"))] == []


async def test_inspect_sql_states(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        (live,) = await seed(ctx, 1)
        (old,) = await seed(ctx, 1, expired_ago=timedelta(minutes=1))
        (dead,) = await seed(ctx, 1)
        await ctx.sql.delete(dead)

        seen = await inspect_session(ctx, live)
        assert seen.found and seen.verdict == "SQL only: live"
        (view,) = seen.stores
        assert view.session is not None and view.session.names == {"김치", "두부"}
        assert view.ttl_seconds is not None and view.ttl_seconds > 3000

        assert (await inspect_session(ctx, old)).stores[0].state == "expired"
        assert (await inspect_session(ctx, dead)).stores[0].state == "deleted"
        missing = await inspect_session(ctx, new_session_id())
        assert not missing.found and missing.stores[0].state == "missing"
        with pytest.raises(InvalidSessionId):
            await inspect_session(ctx, "not-an-id")


async def test_expire_ends_now_with_a_version_bump(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        (sid,) = await seed(ctx, 1)
        dry = await end_session(ctx, sid, "expire", dry_run=True)
        assert dry.dry_run and dry.stores[0].outcome == "would expire"
        assert (await ctx.sql.get(sid)).version == 2

        result = await end_session(ctx, sid, "expire")
        assert [(o.store, o.outcome, o.version) for o in result.stores] == [("sql", "expired", 3)]
        with pytest.raises(SessionNotFound):
            await ctx.sql.get(sid)
        row = await read_row(ctx.engine, sid)
        assert row is not None and row.version == 3 and row.names == {"김치", "두부"}
        with pytest.raises(SessionNotFound):
            await end_session(ctx, sid, "expire")
        with pytest.raises(SessionNotFound):
            await end_session(ctx, new_session_id(), "expire", dry_run=True)
        # The copy logic still holds: an older copy of the session cannot bring it back.
        stale = msgspec.structs.replace(row, version=2, expires_at=row.created_at + timedelta(hours=5))
        assert await ctx.sql.apply_copy(stale) is False


async def test_delete_leaves_a_tombstone(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        (sid,) = await seed(ctx, 1)
        result = await end_session(ctx, sid, "delete")
        assert [(o.store, o.outcome, o.version) for o in result.stores] == [("sql", "deleted", 3)]
        row = await read_row(ctx.engine, sid)
        assert row is not None and row.deleted and row.ingredients == ()
        with pytest.raises(SessionNotFound):
            await end_session(ctx, sid, "delete")


async def test_purge_deletes_expired_rows_and_keeps_live_ones(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        live = await seed(ctx, 3)
        await seed(ctx, 5, expired_ago=timedelta(hours=2))
        recent = await seed(ctx, 2, expired_ago=timedelta(minutes=1))
        await seed(ctx, 1, expired_ago=timedelta(seconds=1), deleted=True)  # a tombstone past its expiry
        assert await _rows(ctx) == (11, 20)

        dry = await purge_expired(ctx.engine, dry_run=True)
        assert (dry.sessions, dry.ingredients, dry.dry_run) == (8, 14, True)
        assert await _rows(ctx) == (11, 20)

        seen: list[tuple[int, int]] = []
        old = await purge_expired(ctx.engine, older_than=timedelta(hours=1), batch_size=2,
                                  progress=lambda d, t: seen.append((d, t)))
        assert (old.sessions, old.ingredients, old.batches) == (5, 10, 3)
        assert seen[0] == (0, 5) and seen[-1] == (5, 5)
        for sid in recent:
            assert await read_row(ctx.engine, sid) is not None

        rest = await purge_expired(ctx.engine, batch_size=100)
        assert (rest.sessions, rest.ingredients) == (3, 4)
        assert await _rows(ctx) == (3, 6)
        assert sorted([r.session_id async for r in list_sql(ctx.engine, ListFilter())]) == sorted(live)
        assert (await purge_expired(ctx.engine)).sessions == 0
        with pytest.raises(InvalidInput):
            await purge_expired(ctx.engine, batch_size=0)


async def test_two_purges_at_once_never_double_delete(sql_url: str) -> None:
    async with ops(sql_url) as a, ops(sql_url) as b:
        await seed(a, 2)
        await seed(a, 40, expired_ago=timedelta(minutes=10))
        first, second = await asyncio.gather(
            purge_expired(a.engine, batch_size=3), purge_expired(b.engine, batch_size=3)
        )
        assert first.sessions + second.sessions == 40
        assert first.ingredients + second.ingredients == 80
        if sql_url.startswith("postgresql"):
            # Only one holds the advisory lock; the other either found nothing left or was turned away.
            assert first.skipped is None or second.skipped is None
        assert await _rows(a) == (2, 4)

        await seed(a, 10, expired_ago=timedelta(minutes=10))
        waited = await asyncio.gather(
            purge_expired(a.engine, batch_size=2, wait=True), purge_expired(b.engine, batch_size=2, wait=True)
        )
        assert sum(r.sessions for r in waited) == 10
        assert all(r.skipped is None for r in waited)


@pytest.mark.postgres
async def test_second_purge_exits_cleanly_while_the_lock_is_held(pg_url: str) -> None:
    from sqlalchemy import text

    from f2f_cli.ops.purge import PURGE_LOCK_KEY

    async with ops(pg_url) as ctx:
        await seed(ctx, 3, expired_ago=timedelta(minutes=10))
        async with ctx.engine.connect() as holder:
            await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY})
            async with ops(pg_url) as other:
                result = await purge_expired(other.engine)
            assert result.skipped is not None and result.sessions == 0
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})
        assert (await purge_expired(ctx.engine)).sessions == 3


async def test_stats(sql_url: str) -> None:
    async with ops(sql_url) as ctx:
        await seed(ctx, 3, ingredients=("김치", "두부", "대파"))
        await seed(ctx, 1, ingredients=("김치",), ttl=timedelta(minutes=3))
        await seed(ctx, 2, expired_ago=timedelta(minutes=1))
        (tomb,) = await seed(ctx, 1)
        await ctx.sql.delete(tomb)
        st = await sql_stats(ctx.engine, top=2)
        assert (st.live, st.tombstones, st.expired_unpurged) == (4, 1, 2)
        assert st.mean_ingredients == 2.5 and st.max_ingredients == 3 and st.ingredient_rows == 10
        assert {b.label: b.sessions for b in st.ttl_histogram} == {
            "< 5m": 1, "5m–1h": 3, "1h–6h": 0, "6h–12h": 0, "12h–24h": 0, "> 24h": 0
        }
        assert [(t.name, t.sessions) for t in st.top_ingredients] == [("김치", 4), ("대파", 3)]
        assert st.oldest_expired_at is not None and st.oldest_expired_at < st.at


async def test_stats_puts_a_full_24h_ttl_in_the_24h_bucket(sql_url: str) -> None:
    """Sessions written while the stats run (after their clock started) have a little over 24 h left."""
    from f2f_cli.clock import utcnow

    async with ops(sql_url) as ctx:
        started = utcnow() - timedelta(seconds=2)
        await seed(ctx, 2, ttl=timedelta(hours=24))
        await seed(ctx, 1, ttl=timedelta(hours=30))
        st = await sql_stats(ctx.engine, now=started)
        hist = {b.label: b.sessions for b in st.ttl_histogram}
        assert (hist["12h–24h"], hist["> 24h"]) == (2, 1)
