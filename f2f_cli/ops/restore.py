"""``f2f sessions restore``: reload Redis from the SQL copy after Redis lost its data.

Every unexpired SQL row (live sessions and tombstones) goes to Redis through the
same copy engine as the backfill (``f2f_cli.stores.copying``): version-guarded,
with the expiry it has in SQL, so the remaining TTL is kept and a session Redis
already holds at the same or a newer version is never replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from f2f_cli.clock import utcnow
from f2f_cli.control.specs import spec_of
from f2f_cli.errors import PreconditionFailed
from f2f_cli.ops.context import OpsContext
from f2f_cli.stores.copying import copy_to_redis, count_unexpired

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
    progress: Progress | None = None,
) -> RestoreResult:
    phase = await ctx.phase()
    if "redis" not in spec_of(phase).holds_sessions_in:
        raise PreconditionFailed(f"phase is {phase}: Redis holds no sessions in this phase, nothing to restore")
    redis = ctx.redis()
    await redis.ping()
    started = time.perf_counter()
    cutoff = None if since is None else utcnow() - since
    candidates = await count_unexpired(ctx.engine, utcnow(), since=cutoff)
    if dry_run:
        return RestoreResult(phase.value, cutoff, True, candidates, 0, 0, 0, 0.0, 0.0)

    if progress is not None:
        progress(0, candidates)
    done = 0

    async def batch_done(_last_id: str, codes: list[int]) -> None:
        nonlocal done
        done += len(codes)
        if progress is not None:
            progress(done, max(candidates, done))

    tally = await copy_to_redis(ctx.engine, redis, now=utcnow(), batch_size=page_size, since=cutoff,
                                on_batch=batch_done)
    seconds = time.perf_counter() - started
    return RestoreResult(
        phase.value, cutoff, False, candidates, tally.applied, tally.not_newer, tally.expired,
        round(seconds, 3), round(tally.done / seconds, 1) if seconds > 0 else 0.0,
    )
