"""``f2f sessions purge``: delete expired SQL rows (tombstones past expiry too) in short batches.

Safe beside the live API and from a CronJob:
- each batch is its own short transaction, so row locks are held for milliseconds;
- on PostgreSQL a session-level advisory lock admits one purge at a time (a
  second one exits cleanly, or waits with ``wait=True``), and each batch also
  picks its rows with ``FOR UPDATE SKIP LOCKED``, so it never waits on a row a
  request is writing and two purges could never delete the same row twice;
- on SQLite the single writer serialises batches; each batch re-selects what is
  still there, so a concurrent purge only finds less to do.
Ingredient rows go in the same statement as their session (the foreign key
cascades too; deleting them explicitly lets the purge count them).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.db.types import UTCDateTime
from f2f_cli.errors import InvalidInput

# One advisory-lock key for every f2f purge of a database (a stable 31-bit number).
PURGE_LOCK_KEY = zlib.crc32(b"f2f:sessions:purge") & 0x7FFFFFFF
MAX_BATCH = 50_000
DEFAULT_BATCH = 5_000

Progress = Callable[[int, int], None]  # (sessions deleted so far, sessions expected)


class PurgeResult(msgspec.Struct, frozen=True):
    cutoff: datetime
    dry_run: bool
    sessions: int
    ingredients: int
    batches: int
    seconds: float
    skipped: str | None = None  # why nothing ran (another purge holds the lock)


_PG_BATCH = text(
    """
    WITH doomed AS (
        SELECT session_id FROM fridge_sessions
        WHERE expires_at <= :cutoff
        ORDER BY expires_at
        LIMIT :size
        FOR UPDATE SKIP LOCKED
    ), gone_ingredients AS (
        DELETE FROM fridge_session_ingredients i USING doomed WHERE i.session_id = doomed.session_id
        RETURNING 1
    ), gone_sessions AS (
        DELETE FROM fridge_sessions s USING doomed WHERE s.session_id = doomed.session_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_sessions) AS sessions,
           (SELECT count(*) FROM gone_ingredients) AS ingredients
    """
).bindparams(bindparam("cutoff", type_=UTCDateTime()))

_SQLITE_DOOMED = (
    "SELECT session_id FROM fridge_sessions WHERE expires_at <= :cutoff ORDER BY expires_at LIMIT :size"
)
_SQLITE_DELETE_INGREDIENTS = text(
    f"DELETE FROM fridge_session_ingredients WHERE session_id IN ({_SQLITE_DOOMED})"
).bindparams(bindparam("cutoff", type_=UTCDateTime()))
_SQLITE_DELETE_SESSIONS = text(f"DELETE FROM fridge_sessions WHERE session_id IN ({_SQLITE_DOOMED})").bindparams(
    bindparam("cutoff", type_=UTCDateTime())
)


async def count_expired(engine: AsyncEngine, cutoff: datetime) -> tuple[int, int]:
    """Sessions (and their ingredient rows) a purge at ``cutoff`` would delete."""
    doomed = select(sessions_t.c.session_id).where(sessions_t.c.expires_at <= cutoff)
    with translate_db_errors():
        async with engine.connect() as conn:
            sessions = await conn.scalar(select(func.count()).select_from(doomed.subquery()))
            ingredients = await conn.scalar(
                select(func.count())
                .select_from(ingredients_t)
                .where(ingredients_t.c.session_id.in_(doomed))
            )
    return int(sessions or 0), int(ingredients or 0)


async def _batch(engine: AsyncEngine, cutoff: datetime, size: int) -> tuple[int, int]:
    params = {"cutoff": cutoff, "size": size}
    with translate_db_errors():
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                row = (await conn.execute(_PG_BATCH, params)).one()
                return int(row.sessions), int(row.ingredients)
            # Both statements select the same rows: the first DELETE takes SQLite's write
            # lock, so nobody else can change the table before the second runs.
            ingredients = (await conn.execute(_SQLITE_DELETE_INGREDIENTS, params)).rowcount
            sessions = (await conn.execute(_SQLITE_DELETE_SESSIONS, params)).rowcount
            return int(sessions), int(ingredients)


async def _try_lock(conn: AsyncConnection, wait: bool) -> bool:
    if wait:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY})
        return True
    return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY}))


async def purge_expired(
    engine: AsyncEngine,
    *,
    older_than: timedelta = timedelta(0),
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    wait: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete every session row that expired before ``now - older_than``, ``batch_size`` at a time."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be between 1 and {MAX_BATCH}")
    cutoff = (now or utcnow()) - older_than
    started = time.perf_counter()
    if dry_run:
        sessions, ingredients = await count_expired(engine, cutoff)
        return PurgeResult(cutoff, True, sessions, ingredients, 0, time.perf_counter() - started)

    if engine.dialect.name != "postgresql":
        return await _run(engine, cutoff, batch_size, progress, started)
    with translate_db_errors():
        async with engine.connect() as raw:
            # The lock lives on this connection (not in a transaction), so it outlasts the
            # batches and PostgreSQL frees it if this process dies.
            lock_conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            if not await _try_lock(lock_conn, wait):
                return PurgeResult(cutoff, False, 0, 0, 0, time.perf_counter() - started,
                                   skipped="another purge is running on this database")
            try:
                return await _run(engine, cutoff, batch_size, progress, started)
            finally:
                await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})


async def _run(
    engine: AsyncEngine, cutoff: datetime, batch_size: int, progress: Progress | None, started: float
) -> PurgeResult:
    expected = 0
    if progress is not None:
        expected, _ = await count_expired(engine, cutoff)
        progress(0, expected)
    sessions = ingredients = batches = 0
    while True:
        deleted, items = await _batch(engine, cutoff, batch_size)
        if deleted == 0:
            break
        sessions += deleted
        ingredients += items
        batches += 1
        if progress is not None:
            progress(sessions, max(expected, sessions))
        if deleted < batch_size:
            break
    return PurgeResult(cutoff, False, sessions, ingredients, batches, time.perf_counter() - started)
