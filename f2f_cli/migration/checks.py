"""Preflight checks: read-only questions whose answers decide whether a step may run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backup.worker import backup_lag
from f2f_cli.clock import utcnow
from f2f_cli.control import lease
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db import migrate as schema
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_repair_queue
from f2f_cli.errors import F2FError
from f2f_cli.redis.client import for_each_primary
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore

# Policies that may evict a key that has no TTL: never acceptable for f2f's data.
EVICTS_PERSISTENT_KEYS = {"allkeys-lru", "allkeys-lfu", "allkeys-random"}
# Headroom kept free beyond the estimate for the copy.
MEMORY_HEADROOM = 1.5


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # ok, but the operator should read this


async def sql_schema(settings: Settings) -> Check:
    try:
        st = schema.state(settings.database_url)
    except F2FError as exc:
        return Check("sql reachable, schema at head", False, exc.message)
    if not st.at_head:
        return Check("sql reachable, schema at head", False,
                     f"schema at {st.current or 'empty'}, needs {st.head}: run 'f2f migrate db upgrade'")
    return Check("sql reachable, schema at head", True, f"revision {st.head}")


async def redis_reachable(redis: RedisSessionStore) -> Check:
    try:
        await redis.ping()
    except F2FError as exc:
        return Check("redis reachable", False, exc.message)
    return Check("redis reachable", True, "PONG")


async def _info(redis: RedisSessionStore, section: str) -> dict[str, dict[str, Any]]:
    replies = await for_each_primary(redis.client, "INFO", section)
    return {node: dict(reply) for node, reply in replies.items()}


async def eviction_policy(redis: RedisSessionStore) -> Check:
    name = "redis maxmemory-policy keeps keys without TTL"
    try:
        infos = await _info(redis, "memory")
    except Exception as exc:
        return Check(name, False, f"cannot read INFO memory: {exc}")
    policies = {node: str(info.get("maxmemory_policy", "?")) for node, info in infos.items()}
    bad = {n: p for n, p in policies.items() if p in EVICTS_PERSISTENT_KEYS}
    if bad:
        shown = ", ".join(f"{n}: {p}" for n, p in bad.items())
        return Check(name, False, f"{shown} evicts keys without TTL; set maxmemory-policy noeviction")
    volatile = {n: p for n, p in policies.items() if p != "noeviction"}
    if volatile:
        return Check(name, True, f"{', '.join(set(volatile.values()))}: sessions (they have a TTL) may be "
                     "evicted under memory pressure; noeviction is safer", warning=True)
    return Check(name, True, "noeviction")


async def memory_for(redis: RedisSessionStore, sessions: int, sample_bytes: int | None) -> Check:
    """Enough free Redis memory for ``sessions`` copies of ``sample_bytes`` each (plus headroom)."""
    name = "redis memory for the copy"
    try:
        infos = await _info(redis, "memory")
    except Exception as exc:
        return Check(name, False, f"cannot read INFO memory: {exc}")
    per_session = sample_bytes or 400
    need = int(sessions * per_session * MEMORY_HEADROOM)
    free = 0
    for info in infos.values():
        limit = int(info.get("maxmemory", 0)) or int(info.get("total_system_memory", 0))
        free += max(0, limit - int(info.get("used_memory", 0)))
    detail = (f"{sessions} sessions x ~{per_session} B x {MEMORY_HEADROOM} headroom = {_mib(need)}; "
              f"free {_mib(free)}")
    return Check(name, free >= need, detail)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


async def repair_queue_empty(engine: AsyncEngine) -> Check:
    with translate_db_errors():
        async with engine.connect() as conn:
            queued = int(await conn.scalar(select(func.count()).select_from(f2f_repair_queue)) or 0)
    state = await control.get_control(engine)
    ok = queued == 0 and state.redis_trusted and state.redis_state.value == "ok"
    detail = "trusted, repair queue empty" if ok else f"{queued} sessions await repair; trusted={state.redis_trusted}"
    if state.redis_state.value != "ok":  # Redis faults: the fleet restores Redis by itself; wait for it
        detail += f"; Redis is {state.redis_state.value} (see 'f2f migrate status')"
    return Check("redis copy trusted", ok, detail)


async def phase_is(engine: AsyncEngine, *expected: Phase) -> Check:
    state = await control.get_control(engine)
    wanted = " or ".join(p.value for p in expected)
    return Check(f"phase is {wanted}", state.phase in expected, f"phase is {state.phase.value} (epoch {state.epoch})")


async def worker_alive(engine: AsyncEngine, within: timedelta) -> Check:
    workers = await control.live_instances(engine, within=within, kind="worker")
    if not workers:
        return Check("backup worker heartbeat", False,
                     f"no 'f2f worker' heartbeat in the last {within.total_seconds():.0f}s: start one "
                     "(or fix the one that stopped) first; nothing was held or changed")
    return Check("backup worker heartbeat", True, ", ".join(f"{w.host}:{w.pid}" for w in workers))


async def no_other_migrator(engine: AsyncEngine, stale_after: timedelta) -> Check:
    """What the real run's lease acquisition will find (a dry run takes no lease)."""
    held = await lease.current(engine)
    if held is None:
        return Check("no other migrator running", True, "the migrator lease is free")
    return Check("no other migrator running", False, lease.refusal(held, utcnow(), stale_after))


async def backlog_drainable(redis: RedisSessionStore, budget: float) -> Check:
    """The backup stream can be drained while writes are held, within ``budget`` seconds.

    A worker that keeps up holds only the last moments of writes: draining its backlog after the
    hold takes about as long as the oldest entry has waited. An entry older than the budget means
    the worker is behind (or gone) and the hold would outlast it.
    """
    name = "backup backlog drains within the hold budget"
    try:
        lag = await backup_lag(redis.client, redis.keys)
    except F2FError as exc:
        return Check(name, False, exc.message)
    age = (lag.oldest_age_ms or 0) / 1000
    detail = f"{lag.total} entries, oldest {age:.1f}s old; budget {budget:.0f}s (--drain-timeout)"
    if lag.total and age > budget:
        return Check(name, False, detail + ": the worker is not keeping up; start or fix 'f2f worker', "
                     "wait for 'f2f worker --lag' to fall, then roll back")
    return Check(name, True, detail)
