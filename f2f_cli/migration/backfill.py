"""Backfill: copy every unexpired SQL session into Redis, batched, pipelined and resumable.

Each copy carries its absolute expiry (so the remaining TTL is kept to the
millisecond) and its version; Redis applies it only if newer than what it
holds, so the backfill can run beside live dual writes, be interrupted and be
run again without ever replacing a newer copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.migration import checkpoint as checkpoints
from f2f_cli.migration.copies import count_unexpired, for_each_copy_batch
from f2f_cli.migration.progress import Progress, SilentProgress
from f2f_cli.sessions.model import Session, utcnow
from f2f_cli.sessions.redis import RedisSessionStore

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

    async def apply(batch: list[Session]) -> None:
        nonlocal cp
        statuses = await redis.apply_copies(batch)
        copied = statuses.count(1)
        report.copied += copied
        report.skipped_newer += statuses.count(0)
        report.skipped_expired += statuses.count(2)
        cp = checkpoints.Checkpoint(
            name=cp.name,
            last_session_id=batch[-1].session_id,
            copied=cp.copied + copied,
            skipped=cp.skipped + len(batch) - copied,
            started_at=cp.started_at,
            updated_at=cp.updated_at,
        )
        # The checkpoint moves only after Redis has every copy of the batch.
        await checkpoints.save(engine, cp)
        progress.advance("backfill", len(batch))
        await limiter.wait(len(batch))

    # One batch is written to Redis while the next is read from SQL; batches still
    # complete (and checkpoint) strictly in order.
    in_flight: asyncio.Task[None] | None = None

    async def copy(batch: list[Session]) -> bool:
        nonlocal in_flight
        if in_flight is not None:
            await in_flight
        in_flight = asyncio.create_task(apply(batch))
        return True

    try:
        await for_each_copy_batch(engine, now, copy, batch_size=batch_size, after=after)
        if in_flight is not None:
            await in_flight
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await in_flight
    progress.finish("backfill")
    await checkpoints.clear(engine, checkpoint_name)
    report.seconds = time.monotonic() - started
    return report
