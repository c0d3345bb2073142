"""``f2f sessions restore``: reload Redis from the SQL copy after Redis lost its data.

Every unexpired SQL row (live sessions and tombstones) goes to Redis through the
version-guarded ``APPLY_COPY`` script, pipelined a page at a time, with the
expiry it has in SQL, so the remaining TTL is kept and a session Redis already
holds at the same or a newer version is never replaced. Reading the next SQL
page overlaps with writing the previous ones to Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from f2f_cli.errors import PreconditionFailed
from f2f_cli.sessions.model import utcnow
from f2f_cli.sessions.ops.bulkcopy import BulkApplier, fast_path_possible, packed_pages
from f2f_cli.sessions.ops.context import OpsContext
from f2f_cli.sessions.ops.sqlcopies import count_copies, sql_copy_pages
from f2f_cli.sessions.phase import Phase

Progress = Callable[[int, int], None]


class RestoreResult(msgspec.Struct, frozen=True):
    phase: str
    since: datetime | None
    dry_run: bool
    candidates: int
    applied: int
    not_newer: int
    expired: int
    seconds: float
    per_second: float


async def restore_redis(
    ctx: OpsContext,
    *,
    since: timedelta | None = None,
    dry_run: bool = False,
    page_size: int = 1000,
    writers: int = 4,
    progress: Progress | None = None,
) -> RestoreResult:
    phase = await ctx.phase()
    if phase is Phase.POSTGRES:
        raise PreconditionFailed("phase is postgres: Redis holds no sessions in this phase, nothing to restore")
    redis = ctx.redis()
    await redis.ping()
    started = time.perf_counter()
    cutoff = None if since is None else utcnow() - since
    candidates = await count_copies(ctx.engine, since=cutoff)
    if dry_run:
        return RestoreResult(phase.value, cutoff, True, candidates, 0, 0, 0, 0.0, 0.0)

    fast = fast_path_possible(ctx.engine, redis)
    bulk = BulkApplier(redis) if fast else None
    queue: asyncio.Queue[list[Any] | None] = asyncio.Queue(maxsize=writers * 2)
    tally = {"applied": 0, "not_newer": 0, "expired": 0, "done": 0}
    if progress is not None:
        progress(0, candidates)

    async def write() -> None:
        while (page := await queue.get()) is not None:
            codes = await (bulk.apply(page) if bulk is not None else redis.apply_copies(page))
            tally["applied"] += codes.count(1)
            tally["not_newer"] += codes.count(0)
            tally["expired"] += codes.count(2)
            tally["done"] += len(page)
            if progress is not None:
                progress(tally["done"], max(candidates, tally["done"]))

    async def read() -> None:
        try:
            pages: AsyncIterator[list[Any]] = (
                packed_pages(ctx.engine, since=cutoff, page_size=page_size)
                if fast
                else sql_copy_pages(ctx.engine, since=cutoff, page_size=page_size)
            )
            async for page in pages:
                await queue.put(page)
        finally:
            for _ in range(writers):
                await queue.put(None)

    tasks = [asyncio.create_task(read()), *(asyncio.create_task(write()) for _ in range(writers))]
    try:
        # The first failure (SQL or Redis) ends the restore; nothing waits on a dead peer.
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    seconds = time.perf_counter() - started
    return RestoreResult(
        phase.value, cutoff, False, candidates, tally["applied"], tally["not_newer"], tally["expired"],
        round(seconds, 3), round(tally["done"] / seconds, 1) if seconds > 0 else 0.0,
    )
