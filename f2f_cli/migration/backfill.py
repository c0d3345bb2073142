"""Backfill: copy every unexpired SQL session into Redis, batched, pipelined and resumable.

Each copy carries its absolute expiry (so the remaining TTL is kept to the
millisecond) and its version; Redis applies it only if newer than what it
holds, so the backfill can run beside live dual writes, be interrupted and be
run again without ever replacing a newer copy.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.migration import checkpoint as checkpoints
from f2f_cli.migration.progress import Progress, SilentProgress
from f2f_cli.redis.client import scan_keys
from f2f_cli.stores.copying import copy_to_redis, count_unexpired
from f2f_cli.stores.redis import RedisSessionStore

CHECKPOINT = "backfill"


@dataclass(slots=True)
class BackfillReport:
    total: int = 0
    copied: int = 0
    skipped_newer: int = 0
    skipped_expired: int = 0
    resumed_from: str | None = None
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def rate(self) -> float:
        done = self.copied + self.skipped_newer + self.skipped_expired
        return done / self.seconds if self.seconds > 0 else 0.0


class RateLimiter:
    """Keeps a long copy under ``per_second`` items on average (protects production)."""

    def __init__(self, per_second: float | None) -> None:
        self.per_second = per_second
        self._start = time.monotonic()
        self._done = 0

    async def wait(self, amount: int) -> None:
        self._done += amount
        if not self.per_second:
            return
        ahead = self._done / self.per_second - (time.monotonic() - self._start)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def backfill(
    engine: AsyncEngine,
    redis: RedisSessionStore,
    *,
    batch_size: int = 1000,
    max_rate: float | None = None,
    resume: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    checkpoint_name: str = CHECKPOINT,
) -> BackfillReport:
    progress = progress or SilentProgress()
    started = time.monotonic()
    now = utcnow()
    previous = await checkpoints.load(engine, checkpoint_name) if resume else None
    after = previous.last_session_id if previous else None
    report = BackfillReport(resumed_from=after, dry_run=dry_run)
    report.total = await count_unexpired(engine, now, after=after)
    if dry_run:
        return report
    cp = checkpoints.Checkpoint(
        name=checkpoint_name,
        last_session_id=after,
        copied=previous.copied if previous else 0,
        skipped=previous.skipped if previous else 0,
        started_at=previous.started_at if previous else now,
        updated_at=now,
    )
    limiter = RateLimiter(max_rate)
    progress.start("backfill", report.total)

    async def batch_done(last_id: str, codes: list[int]) -> None:
        nonlocal cp
        copied = codes.count(1)
        cp = checkpoints.Checkpoint(
            name=cp.name,
            last_session_id=last_id,
            copied=cp.copied + copied,
            skipped=cp.skipped + len(codes) - copied,
            started_at=cp.started_at,
            updated_at=cp.updated_at,
        )
        # The checkpoint moves only after Redis has every copy of the batch.
        await checkpoints.save(engine, cp)
        progress.advance("backfill", len(codes))
        await limiter.wait(len(codes))

    tally = await copy_to_redis(engine, redis, now=now, batch_size=batch_size, after=after, on_batch=batch_done)
    report.copied, report.skipped_newer, report.skipped_expired = tally.applied, tally.not_newer, tally.expired
    progress.finish("backfill")
    await checkpoints.clear(engine, checkpoint_name)
    report.seconds = time.monotonic() - started
    return report


async def clear_stale_copies(redis: RedisSessionStore, *, batch_size: int = 1000) -> int:
    """Remove every session copy Redis holds; returns how many.

    Only for the start of a move out of ``postgres``: Redis was not maintained there, so what it
    still holds from an earlier dual or redis phase is stale, and a copy whose version a lost
    write left at or above SQL's would make the version-guarded backfill keep the wrong one.
    """
    removed = 0
    batch: list[bytes] = []

    async def flush() -> None:
        nonlocal removed
        pipe = redis.client.pipeline(transaction=False)
        for key in batch:
            pipe.unlink(key)  # one key per command: keys of a Cluster live in different slots
        removed += sum(int(n) for n in await pipe.execute())
        batch.clear()

    async for key in scan_keys(redis.client, redis.keys.session_pattern, count=batch_size):
        batch.append(key)
        if len(batch) >= batch_size:
            await flush()
    if batch:
        await flush()
    return removed
