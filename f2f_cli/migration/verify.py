"""Compare SQL and Redis session by session, and optionally repair from the trusted store.

Both directions are covered: every unexpired SQL session is looked up in Redis
(pipelined), and every Redis session key is looked up in SQL. Remaining TTLs
may differ by ``ttl_tolerance`` seconds (clocks, rounding); ingredients,
added-at times, versions and deletion must match exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Session
from f2f_cli.migration.progress import Progress, SilentProgress
from f2f_cli.redis.client import scan_keys
from f2f_cli.redis.codec import datetime_to_ms
from f2f_cli.stores.copying import count_unexpired, for_each_copy_batch
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore

# Candidate differences are re-read for this long before they count (writes in flight land).
SETTLE_SECONDS = 2.0
SETTLE_PAUSE = 0.1
SETTLE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Difference:
    session_id: str
    kind: str  # missing_in_redis | missing_in_sql | version | ingredients | deleted | ttl
    sql: str
    redis: str


@dataclass(slots=True)
class VerifyReport:
    compared: int = 0
    differences: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    first: list[Difference] = field(default_factory=list)
    sampled: bool = False
    repaired: int = 0

    @property
    def clean(self) -> bool:
        return self.differences == 0


def _describe(s: Session | None) -> str:
    if s is None:
        return "absent"
    state = "deleted" if s.deleted else f"{len(s.ingredients)} ingredients"
    return f"v{s.version}, {state}, expires {s.expires_at:%Y-%m-%dT%H:%M:%S}Z"


def compare(sql: Session | None, redis: Session | None, ttl_tolerance: float) -> str | None:
    """The kind of the first difference between two copies of one session, or None."""
    if sql is None and redis is None:
        return None
    if redis is None:
        return None if sql is not None and sql.deleted else "missing_in_redis"
    if sql is None:
        return None if redis.deleted else "missing_in_sql"
    if sql.version != redis.version:
        return "version"
    if sql.deleted != redis.deleted:
        return "deleted"
    if not sql.deleted and _ms_items(sql) != _ms_items(redis):
        return "ingredients"
    if abs((sql.expires_at - redis.expires_at).total_seconds()) > ttl_tolerance:
        return "ttl"
    return None


def _ms_items(session: Session) -> dict[str, int]:
    """Ingredients with added-at in whole milliseconds: the precision Redis keeps (rows written
    by older code may carry microseconds)."""
    return {i.name: datetime_to_ms(i.added_at) for i in session.ingredients}


class _Collector:
    """Collects candidate differences during the scan, then settles them.

    Under live traffic a write can land between the read of one store and the other,
    so a candidate is read again from both stores, in passes, for up to
    ``SETTLE_SECONDS``; only what still differs then counts. When there are more than
    ``SETTLE_LIMIT`` candidates (a flushed Redis, say) they are counted as found.
    """

    def __init__(self, report: VerifyReport, keep: int, sql: SqlSessionStore, redis: RedisSessionStore,
                 ttl_tolerance: float) -> None:
        self.report = report
        self.keep = keep
        self.sql = sql
        self.redis = redis
        self.ttl_tolerance = ttl_tolerance
        self.candidates: dict[str, tuple[Session | None, Session | None]] = {}
        self.pairs: list[tuple[Session | None, Session | None]] = []

    def add(self, sql_copy: Session | None, redis_copy: Session | None) -> None:
        self.report.compared += 1
        if compare(sql_copy, redis_copy, self.ttl_tolerance) is not None:
            sid = (sql_copy or redis_copy).session_id  # type: ignore[union-attr]
            self.candidates[sid] = (sql_copy, redis_copy)

    async def settle(self) -> None:
        pending = self.candidates
        if len(pending) <= SETTLE_LIMIT:
            deadline = time.monotonic() + SETTLE_SECONDS
            while pending:
                fresh: dict[str, tuple[Session | None, Session | None]] = {}
                for sid in pending:
                    # Each pair read back to back, SQL first as every write lands there first: reading all of
                    # Redis before SQL let every write to a hot session in between show as SQL being ahead.
                    sql_copy = await self.sql.read_copy(sid)
                    (redis_copy,) = await self.redis.read_copies([sid])
                    if compare(sql_copy, redis_copy, self.ttl_tolerance) is not None:
                        fresh[sid] = (sql_copy, redis_copy)
                pending = fresh
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(SETTLE_PAUSE)
        for sid, (sql_copy, redis_copy) in pending.items():
            kind = compare(sql_copy, redis_copy, self.ttl_tolerance)
            assert kind is not None
            self.report.differences += 1
            self.report.by_kind[kind] = self.report.by_kind.get(kind, 0) + 1
            if len(self.report.first) < self.keep:
                self.report.first.append(Difference(sid, kind, _describe(sql_copy), _describe(redis_copy)))
            self.pairs.append((sql_copy, redis_copy))


async def verify(
    engine: AsyncEngine,
    sql_store: SqlSessionStore,
    redis: RedisSessionStore,
    *,
    sample: int | None = None,
    ttl_tolerance: float = 2.0,
    batch_size: int = 1000,
    keep: int = 20,
    progress: Progress | None = None,
) -> tuple[VerifyReport, list[tuple[Session | None, Session | None]]]:
    """The report and every differing pair (for ``repair``)."""
    progress = progress or SilentProgress()
    now = utcnow()
    report = VerifyReport(sampled=sample is not None)
    found = _Collector(report, keep, sql_store, redis, ttl_tolerance)
    total = await count_unexpired(engine, now)
    progress.start("verify", min(total, sample) if sample is not None else total)
    seen = 0

    async def check(batch: list[Session]) -> bool:
        nonlocal seen
        if sample is not None:
            batch = batch[: max(0, sample - seen)]
        copies = await redis.read_copies([s.session_id for s in batch])
        for sql_copy, redis_copy in zip(batch, copies, strict=True):
            found.add(sql_copy, redis_copy)
        seen += len(batch)
        progress.advance("verify", len(batch))
        return sample is None or seen < sample

    await for_each_copy_batch(engine, now, check, batch_size=batch_size)
    progress.finish("verify")
    # The other direction: Redis keys with no unexpired SQL row.
    checked = 0
    id_batches = _redis_id_batches(redis, batch_size)
    async with contextlib.aclosing(id_batches):
        async for ids in id_batches:
            missing = await _absent_in_sql(engine, ids, now)
            for copy in await redis.read_copies(missing) if missing else []:
                found.add(None, copy)
            checked += len(ids)
            if sample is not None and checked >= sample:
                break
    await found.settle()
    return report, found.pairs


async def repair(
    pairs: list[tuple[Session | None, Session | None]],
    *,
    trust: str,
    sql_store: SqlSessionStore,
    redis: RedisSessionStore,
) -> int:
    """Make the untrusted store match the trusted one for each differing pair; returns fixes made."""
    fixed = 0
    for sql_copy, redis_copy in pairs:
        if trust == "sql":
            if sql_copy is None and redis_copy is not None:
                await redis.discard(redis_copy.session_id)
                fixed += 1
            elif sql_copy is not None:
                await redis.discard(sql_copy.session_id)  # a same-version divergence would block the guard
                fixed += int(await redis.apply_copy(sql_copy))
        elif redis_copy is not None:
            await sql_store.discard(redis_copy.session_id)
            fixed += int(await sql_store.apply_copy(redis_copy))
        elif sql_copy is not None:
            await sql_store.discard(sql_copy.session_id)
            fixed += 1
    return fixed


async def _redis_id_batches(redis: RedisSessionStore, size: int) -> AsyncGenerator[list[str], None]:
    batch: list[str] = []
    async for key in scan_keys(redis.client, redis.keys.session_pattern, count=size):
        batch.append(redis.keys.session_id_of(key))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _absent_in_sql(engine: AsyncEngine, ids: list[str], now: datetime) -> list[str]:
    with translate_db_errors():
        async with engine.connect() as conn:
            present = {
                r.session_id
                for r in await conn.execute(
                    select(sessions_t.c.session_id).where(
                        sessions_t.c.session_id.in_(ids), sessions_t.c.expires_at > now
                    )
                )
            }
    return [i for i in ids if i not in present]
