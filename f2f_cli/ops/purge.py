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

Paced by what the live path feels (:class:`PurgePacer`): after each batch the
purge times one primary-key read (the probe: the lookup a ``GET`` makes) and
sizes the next batch and the pause before it from that and from how long the
batch took. A batch that ran long or a slow probe halves the size and lengthens
the pause; quick batches with a quick probe grow the size up to ``batch_size``.
The purge then never holds the database for more than a few tens of
milliseconds at a time, and leaves it at least as much time as it takes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
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
DEFAULT_BATCH = 5_000  # the largest batch the pacer may grow to

Progress = Callable[[int, int], None]  # (sessions deleted so far, sessions expected)


class PurgeResult(msgspec.Struct, frozen=True):
    cutoff: datetime
    dry_run: bool
    sessions: int
    ingredients: int
    batches: int
    seconds: float
    skipped: str | None = None  # why nothing ran (another purge holds the lock)
    paused_seconds: float = 0.0  # time left to the live path between batches
    probe_p99_ms: float | None = None  # the live-path probe between batches, 99th percentile


@dataclass
class PurgePacer:
    """Batch size and pause from what the last batch cost and what a live read felt meanwhile.

    - ``baseline``: what the probe (a primary-key read) takes before the purge starts;
    - a probe slower than ``slow_factor`` × baseline + ``slow_margin`` means the live path feels the purge
      (relative, so a machine that is busy anyway does not stall the purge for good);
    - ``batch_target``: a batch should hold locks and a CPU for about this long;
    - ``share``: the purge's share of the time at most (pause = batch time × (1 − share) / share).
    """

    max_size: int
    baseline: float = 0.001
    size: int = 1000
    min_size: int = 500
    batch_target: float = 0.05
    slow_factor: float = 3.0
    slow_margin: float = 0.01
    share: float = 0.5
    max_pause: float = 0.25

    def __post_init__(self) -> None:
        self.min_size = min(self.min_size, self.max_size)
        self.size = max(self.min_size, min(self.size, self.max_size))

    def felt(self, probe_seconds: float) -> bool:
        return probe_seconds > self.slow_factor * self.baseline + self.slow_margin

    def next_pause(self, batch_seconds: float, probe_seconds: float) -> float:
        """Adjust the size for the next batch; return how long to wait before it."""
        pause = batch_seconds * (1 - self.share) / self.share
        if self.felt(probe_seconds) or batch_seconds > 2 * self.batch_target:
            self.size = max(self.min_size, self.size // 2)
            # Back off until a read is quick again: at least the batch time and twice the slow read.
            pause = max(pause, batch_seconds, 2 * probe_seconds)
        elif batch_seconds < self.batch_target:
            self.size = min(self.max_size, self.size + max(1, self.size // 2))
        return min(pause, self.max_pause)


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
    pace: bool = True,
) -> PurgeResult:
    """Delete every session row that expired before ``now - older_than``, at most ``batch_size`` at a time.

    ``pace=False`` runs full ``batch_size`` batches back to back (the pre-pacing behaviour, for comparisons).
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be between 1 and {MAX_BATCH}")
    cutoff = (now or utcnow()) - older_than
    started = time.perf_counter()
    if dry_run:
        sessions, ingredients = await count_expired(engine, cutoff)
        return PurgeResult(cutoff, True, sessions, ingredients, 0, time.perf_counter() - started)

    if engine.dialect.name != "postgresql":
        return await _run(engine, cutoff, batch_size, progress, started, pace)
    with translate_db_errors():
        async with engine.connect() as raw:
            # The lock lives on this connection (not in a transaction), so it outlasts the
            # batches and PostgreSQL frees it if this process dies.
            lock_conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            if not await _try_lock(lock_conn, wait):
                return PurgeResult(cutoff, False, 0, 0, 0, time.perf_counter() - started,
                                   skipped="another purge is running on this database")
            try:
                return await _run(engine, cutoff, batch_size, progress, started, pace)
            finally:
                await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})


_PROBE = text("SELECT 1 FROM fridge_sessions WHERE session_id = :sid")


async def _probe(engine: AsyncEngine) -> float:
    """Seconds one primary-key read takes right now (a new connection checkout included, as a request's)."""
    started = time.perf_counter()
    with translate_db_errors():
        async with engine.connect() as conn:
            await conn.execute(_PROBE, {"sid": secrets.token_urlsafe(24)})
    return time.perf_counter() - started


async def _run(
    engine: AsyncEngine, cutoff: datetime, batch_size: int, progress: Progress | None, started: float, pace: bool
) -> PurgeResult:
    expected = 0
    if progress is not None:
        expected, _ = await count_expired(engine, cutoff)
        progress(0, expected)
    pacer = None
    if pace:
        # What a live read takes before the purge starts: the probes after each batch are judged against it.
        quiet = sorted([await _probe(engine) for _ in range(5)])
        pacer = PurgePacer(batch_size, baseline=quiet[2])
    sessions = ingredients = batches = 0
    paused = 0.0
    probes: list[float] = []
    while True:
        size = pacer.size if pacer is not None else batch_size
        began = time.perf_counter()
        deleted, items = await _batch(engine, cutoff, size)
        took = time.perf_counter() - began
        sessions += deleted
        ingredients += items
        batches += 1 if deleted else 0
        if progress is not None and deleted:
            progress(sessions, max(expected, sessions))
        if deleted < size:
            break
        if pacer is not None:
            probe = await _probe(engine)
            probes.append(probe)
            pause = pacer.next_pause(took, probe)
            paused += pause
            await asyncio.sleep(pause)
    p99 = sorted(probes)[min(len(probes) - 1, int(0.99 * len(probes)))] * 1000 if probes else None
    return PurgeResult(cutoff, False, sessions, ingredients, batches, time.perf_counter() - started,
                       paused_seconds=round(paused, 3), probe_p99_ms=None if p99 is None else round(p99, 2))
