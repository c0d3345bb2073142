"""Bringing Redis back in line after a fault, run by one instance of the fleet at a time.

- After an automatic failover (``failed-over``), once Redis answers again: apply what its backup
  stream still holds to SQL (version-guarded: a session written since the failover is fenced and
  keeps its failover-time state), report each Redis state that lost to a failover-time write
  (``f2f_failover_conflicts``), drop the stream, and go on to the restore.
- While ``recovering``: write a new generation marker, copy every unexpired SQL session into Redis
  with the copy engine (``f2f_cli.stores.copying``, version-guarded, expiry kept), check the marker
  survived the copy (else Redis lost data again: start over), then record the marker and trust
  Redis again.

One instance does this: the holder of a PostgreSQL advisory lock (its session ends with the
connection, so a crashed restorer frees the lock and another instance takes over at its next poll).
SQLite has no such lock and serves one host: an in-process guard suffices there (two processes on one file
may both restore, which version-guarded copies make harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.control import faults
from f2f_cli.control.phase import RedisState, get_control
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.errors import StoreUnavailable
from f2f_cli.redis.codec import session_from_entry
from f2f_cli.redis.marker import markers_match, read_markers, write_markers
from f2f_cli.stores.copying import copy_to_redis, count_unexpired
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore

log = logging.getLogger("f2f.recovery")

# pg_advisory_lock key: "f2f" and "rest(ore)" in ASCII, so it never collides with an application's own.
LOCK_KEY = 0x663266_72657374
# SQLite: the engines of this process that are recovering (a plain set: one event loop, no await between
# the test and the add). Processes sharing one SQLite file may restore at once, which is harmless.
_local_holders: set[int] = set()
RESTORE_ATTEMPTS = 3
PROGRESS_EVERY = 0.5  # seconds between progress rows in f2f_control


@contextlib.asynccontextmanager
async def advisory_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    """Try to become the fleet's restorer; yields whether this instance is."""
    if engine.dialect.name != "postgresql":
        if id(engine) in _local_holders:
            yield False
            return
        _local_holders.add(id(engine))
        try:
            yield True
        finally:
            _local_holders.discard(id(engine))
        return
    with translate_db_errors():
        async with engine.connect() as conn:
            got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}))
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    with contextlib.suppress(Exception):
                        await conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                        await conn.commit()


@dataclass(slots=True)
class RecoveryReport:
    reconciled: bool = False
    stream_applied: int = 0
    conflicts: int = 0
    restored: bool = False
    copied: int = 0
    seconds: float = 0.0


async def recover(engine: AsyncEngine, sql: SqlSessionStore, redis: RedisSessionStore, *, actor: str,
                  settle_seconds: float = 0.0,
                  on_progress: Callable[[int, int], None] | None = None) -> RecoveryReport | None:
    """Do what the fleet's Redis state asks, if this instance holds the lock; None if another does.

    Raises ``StoreUnavailable`` when Redis is still unreachable (the next poll tries again).
    """
    report = RecoveryReport()
    async with advisory_lock(engine) as mine:
        if not mine:
            return None
        state = await get_control(engine)
        if state.redis_state is RedisState.FAILED_OVER:
            await redis.ping()
            report.stream_applied, conflicts = await _reconcile(engine, sql, redis)
            report.conflicts = len(conflicts)
            report.reconciled = await faults.reconciled(engine, conflicts=conflicts,
                                                        stream_applied=report.stream_applied, actor=actor)
            log.warning("Redis is back after a failover: %d backup-stream entries applied to SQL, %d conflicts "
                        "reported in f2f_failover_conflicts", report.stream_applied, report.conflicts)
            state = await get_control(engine)
        if state.redis_state is RedisState.RECOVERING:
            await _restore(engine, redis, report, actor=actor, settle_seconds=settle_seconds,
                           on_progress=on_progress)
    return report


async def _reconcile(engine: AsyncEngine, sql: SqlSessionStore,
                     redis: RedisSessionStore) -> tuple[int, list[faults.Conflict]]:
    """Apply the backup stream's remaining entries to SQL; list the Redis states that lost."""
    try:
        applied = await _apply_stream(sql, redis)
        conflicts: list[faults.Conflict] = []
        fenced = await faults.fenced_sessions(engine)
        for i in range(0, len(fenced), 500):
            part = fenced[i : i + 500]
            copies = await redis.read_copies([sid for sid, _ in part])
            for (sid, pre_version), held in zip(part, copies, strict=True):
                if held is None or held.version <= pre_version:
                    continue  # Redis held nothing SQL had not seen: no write lost
                now_sql = await sql.read_copy(sid)
                conflicts.append(faults.Conflict(sid, held.version, now_sql.version if now_sql else None, {
                    "ingredients": sorted(held.names), "deleted": held.deleted,
                    "updated_at": held.updated_at.isoformat(),
                }))
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    return applied, conflicts


async def _apply_stream(sql: SqlSessionStore, redis: RedisSessionStore) -> int:
    """Every entry still in the backup stream(s) into SQL (version-guarded), then deleted (XDEL keeps the
    worker's consumer group; a worker holding one of them pending acknowledges a missing entry)."""
    client, keys = redis.client, redis.keys
    streams = keys.backup_streams()
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    applied = 0
    for stream, length in zip(streams, lengths, strict=True):
        if not int(length):
            continue
        while entries := await client.xrange(stream, min="-", count=500):
            for _eid, fields in entries:
                if fields:
                    applied += int(await sql.apply_copy(session_from_entry(cast(Mapping[bytes, bytes], fields))))
            await client.xdel(stream, *[cast(bytes, eid) for eid, _ in entries])
    return applied


async def _restore(engine: AsyncEngine, redis: RedisSessionStore, report: RecoveryReport, *, actor: str,
                   settle_seconds: float, on_progress: Callable[[int, int], None] | None) -> None:
    """Copy everything, then once more what changed since the copy began.

    The second pass closes a window of ``dual``: an instance that has not yet seen the state move from
    ``failed-over`` to ``recovering`` (up to a poll interval) writes to SQL without copying to Redis, and
    the first pass may already have passed that session. After ``settle_seconds`` every instance copies.
    """
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        started_at = utcnow()
        started = time.perf_counter()
        generation = secrets.token_hex(8)
        copied = await _copy_all(engine, redis, generation, started_at, on_progress)
        if copied is not None:
            await asyncio.sleep(max(0.0, settle_seconds - (time.perf_counter() - started)))
            tally = await copy_to_redis(engine, redis, now=utcnow(), batch_size=1000,
                                        since=started_at - timedelta(seconds=1))
            copied += tally.applied
        if copied is None:
            log.warning("Redis lost data again during the restore (attempt %d); starting over", attempt)
            continue
        report.copied, report.seconds = copied, time.perf_counter() - started
        report.restored = await faults.restore_finished(
            engine, generation=generation, started=started_at, copied=copied, seconds=report.seconds, actor=actor,
        )
        log.warning("Redis restored from the SQL backup: %d sessions copied in %.1fs", copied, report.seconds)
        return
    raise StoreUnavailable(f"Redis lost data during each of {RESTORE_ATTEMPTS} restores; retrying later")


async def _copy_all(engine: AsyncEngine, redis: RedisSessionStore, generation: str, now: datetime,
                    on_progress: Callable[[int, int], None] | None) -> int | None:
    """One restore pass under a new marker: sessions copied, or None if the marker did not survive it."""
    try:
        # The marker goes in first: if Redis loses data during the copy, it is gone at the end.
        await write_markers(redis.client, redis.keys, generation)
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    total = await count_unexpired(engine, now)
    await faults.restore_progress(engine, 0, total)
    done = 0
    last_write = time.monotonic()

    async def batch_done(_last_id: str, codes: list[int]) -> None:
        nonlocal done, last_write
        done += len(codes)
        if on_progress is not None:
            on_progress(done, total)
        if time.monotonic() - last_write >= PROGRESS_EVERY:
            last_write = time.monotonic()
            await faults.restore_progress(engine, done, max(total, done))

    tally = await copy_to_redis(engine, redis, now=now, batch_size=1000, on_batch=batch_done)
    await faults.restore_progress(engine, done, max(total, done))
    try:
        survived = markers_match(await read_markers(redis.client, redis.keys), generation)
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    return tally.applied if survived else None
