"""The control-table side of Redis faults: every write to ``f2f_control``, the history, the failover
fence and the conflict report that data-loss detection, recovery and automatic failover make.

Each state change is one compare-and-set transaction with its history row, so when several
instances see the same fault at once exactly one records it (and counts it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from f2f_cli.clock import utcnow
from f2f_cli.control.phase import Control, Phase, RedisState, read_control
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import (
    f2f_control,
    f2f_failover_conflicts,
    f2f_failover_fence,
    f2f_instances,
    f2f_phase_history,
    f2f_repair_queue,
    fridge_sessions,
)

# The first SQL write to a session after a failover raises its version by this much, so no copy the
# lost Redis line made (at most the backup stream's cap ahead of SQL) can ever replace it: the
# backup worker's version guard then keeps the failover-time write, and the reconciliation reports
# the Redis state that lost. 2**32 leaves room for 2**21 failovers per session below Lua's 2**53.
FENCE_JUMP = 2**32


async def _history(conn: AsyncConnection, *, actor: str, action: str, before: Control, after: Control,
                   detail: dict[str, Any]) -> None:
    await conn.execute(
        insert(f2f_phase_history).values(
            at=utcnow(), actor=actor[:200], action=action, from_phase=before.phase.value,
            to_phase=after.phase.value, epoch=after.epoch, detail=json.dumps(detail, ensure_ascii=False),
        )
    )


async def _notify(conn: AsyncConnection, epoch: int) -> None:
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"NOTIFY f2f_control, '{int(epoch)}'")


Extra = Callable[[AsyncConnection], Awaitable[None]]


async def _change_state(engine: AsyncEngine, *, where: list[ColumnElement[bool]], values: dict[str, Any], actor: str,
                        action: str, detail: dict[str, Any], also: Extra | None = None) -> Control | None:
    """One compare-and-set of ``f2f_control`` with its history row and NOTIFY, in one transaction.

    ``where`` is the state this instance saw; when another instance moved it first nothing is written and the
    answer is None. ``also`` runs in the same transaction after the update (e.g. clearing the fence table)."""
    with translate_db_errors():
        async with engine.begin() as conn:
            before = await read_control(conn)
            changed = await conn.execute(update(f2f_control).where(f2f_control.c.id == 1, *where).values(**values))
            if not changed.rowcount:
                return None
            if also is not None:
                await also(conn)
            after = await read_control(conn)
            await _history(conn, actor=actor, action=action, before=before, after=after, detail=detail)
            await _notify(conn, after.epoch)
            return after


async def establish_generation(engine: AsyncEngine, value: str) -> str | None:
    """Record ``value`` as the generation marker unless one is recorded already; return the recorded one."""
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                update(f2f_control)
                .where(f2f_control.c.id == 1, f2f_control.c.redis_generation.is_(None))
                .values(redis_generation=value)
            )
            return (await read_control(conn)).redis_generation


async def enter_recovering(
    engine: AsyncEngine, *, expected_generation: str, found: list[str | None], rpo_estimate: int | None,
    actor: str, rpo_upper: int | None = None,
) -> bool:
    """Redis lost data: the fleet recovers. False when another instance recorded this loss first."""
    after = await _change_state(
        engine,
        where=[f2f_control.c.redis_state == RedisState.OK.value, f2f_control.c.redis_generation == expected_generation,
               f2f_control.c.phase == Phase.REDIS.value],
        values={"redis_state": RedisState.RECOVERING.value, "redis_state_since": utcnow(),
                "rpo_estimate": rpo_estimate, "restore_done": 0, "restore_total": None, "redis_trusted": False},
        actor=actor, action="redis-data-loss",
        detail={"rpo_estimate": rpo_estimate, "rpo_upper_bound": rpo_upper, "expected_marker": expected_generation,
                "markers_found": found},
    )
    return after is not None


@dataclass(frozen=True, slots=True)
class Votes:
    live: int
    unreachable: int

    @property
    def majority(self) -> bool:
        return self.live > 0 and self.unreachable * 2 > self.live


async def failover_votes(engine: AsyncEngine, *, window: timedelta, unreachable_for: timedelta) -> Votes:
    """Live ``serve`` instances, and those whose own last heartbeat says Redis was out of reach for
    ``unreachable_for`` (judged at their heartbeat, so a stale row never counts as a fresh fault)."""
    now = utcnow()
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(f2f_instances.c.started_at, f2f_instances.c.last_seen, f2f_instances.c.redis_ok_at)
                .where(f2f_instances.c.kind == "serve", f2f_instances.c.last_seen > now - window)
            )).all()
    unreachable = sum(1 for r in rows if r.last_seen - (r.redis_ok_at or r.started_at) >= unreachable_for)
    return Votes(live=len(rows), unreachable=unreachable)


async def auto_failover(engine: AsyncEngine, *, expect_epoch: int, rpo_estimate: int | None, votes: Votes,
                        actor: str, rpo_upper: int | None = None) -> Control | None:
    """Move the fleet from ``redis`` to SQL authority in one update (phase dual, Redis untrusted,
    epoch + 1); None when the phase moved meanwhile (another instance failed over first)."""
    now = utcnow()

    async def clear_fence(conn: AsyncConnection) -> None:
        await conn.execute(delete(f2f_failover_fence))

    return await _change_state(
        engine,
        where=[f2f_control.c.phase == Phase.REDIS.value, f2f_control.c.epoch == expect_epoch],
        values={"phase": Phase.DUAL.value, "epoch": expect_epoch + 1, "changed_at": now, "changed_by": actor[:200],
                "redis_trusted": False, "redis_state": RedisState.FAILED_OVER.value, "redis_state_since": now,
                "rpo_estimate": rpo_estimate, "restore_done": None, "restore_total": None},
        actor=actor, action="auto-failover",
        detail={"rpo_estimate": rpo_estimate, "rpo_upper_bound": rpo_upper, "live_serve_instances": votes.live,
                "unreachable": votes.unreachable},
        also=clear_fence,
    )


async def fence(engine: AsyncEngine, session_id: str) -> None:
    """Before the first failover-time write to ``session_id``: record its SQL version and raise it by
    ``FENCE_JUMP`` (same transaction), so the lost Redis line can never overwrite what follows."""
    now = utcnow()
    ins: Any = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(f2f_failover_fence)
    stmt = ins.from_select(
        ["session_id", "pre_version", "fenced_at"],
        select(fridge_sessions.c.session_id, fridge_sessions.c.version,
               literal(now, f2f_failover_fence.c.fenced_at.type))
        .where(fridge_sessions.c.session_id == session_id),
    ).on_conflict_do_nothing(index_elements=["session_id"])
    with translate_db_errors():
        async with engine.begin() as conn:
            if (await conn.execute(stmt)).rowcount:
                await conn.execute(
                    update(fridge_sessions).where(fridge_sessions.c.session_id == session_id)
                    .values(version=fridge_sessions.c.version + FENCE_JUMP)
                )


async def fenced_sessions(engine: AsyncEngine) -> list[tuple[str, int]]:
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = await conn.execute(select(f2f_failover_fence.c.session_id, f2f_failover_fence.c.pre_version)
                                      .order_by(f2f_failover_fence.c.session_id))
            return [(r.session_id, r.pre_version) for r in rows]


@dataclass(frozen=True, slots=True)
class Conflict:
    session_id: str
    redis_version: int
    sql_version: int | None
    lost: dict[str, Any]


async def reconciled(engine: AsyncEngine, *, conflicts: list[Conflict], stream_applied: int, actor: str) -> bool:
    """The returning Redis is reconciled: record the conflicts and start the restore (failed-over →
    recovering, Redis still untrusted). False when the state moved meanwhile."""
    now = utcnow()

    async def record(conn: AsyncConnection) -> None:
        if conflicts:
            await conn.execute(insert(f2f_failover_conflicts), [
                {"found_at": now, "session_id": c.session_id, "redis_version": c.redis_version,
                 "sql_version": c.sql_version, "lost": json.dumps(c.lost, ensure_ascii=False)}
                for c in conflicts
            ])
        await conn.execute(delete(f2f_failover_fence))

    after = await _change_state(
        engine,
        where=[f2f_control.c.redis_state == RedisState.FAILED_OVER.value],
        values={"redis_state": RedisState.RECOVERING.value, "restore_done": 0, "restore_total": None},
        actor=actor, action="failover-reconciled",
        detail={"stream_entries_applied": stream_applied, "conflicts": len(conflicts),
                "report": "f2f_failover_conflicts" if conflicts else None},
        also=record,
    )
    return after is not None


async def restore_progress(engine: AsyncEngine, done: int, total: int | None) -> None:
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                update(f2f_control).where(f2f_control.c.id == 1, f2f_control.c.redis_state
                                          == RedisState.RECOVERING.value)
                .values(restore_done=done, restore_total=total)
            )


async def restore_finished(engine: AsyncEngine, *, generation: str, started: datetime, copied: int, seconds: float,
                           actor: str) -> bool:
    """Redis holds every backed-up session again under marker ``generation``: trust it (recovering → ok).

    Repairs queued before the restore began are covered by it and dropped; a copy that failed since
    keeps Redis untrusted until the ordinary repair pass has made it.
    """
    with translate_db_errors():
        async with engine.begin() as conn:
            before = await read_control(conn)
            if before.redis_state is not RedisState.RECOVERING:
                return False
            await conn.execute(delete(f2f_repair_queue).where(f2f_repair_queue.c.queued_at < started))
            remaining = await conn.scalar(select(func.count()).select_from(f2f_repair_queue))
            await conn.execute(
                update(f2f_control).where(f2f_control.c.id == 1)
                .values(redis_state=RedisState.OK.value, redis_generation=generation, redis_state_since=utcnow(),
                        redis_trusted=not remaining)
            )
            after = await read_control(conn)
            await _history(conn, actor=actor, action="redis-restored", before=before, after=after, detail={
                "copied": copied, "seconds": round(seconds, 3),
                "per_second": round(copied / seconds, 1) if seconds > 0 else None,
            })
            await _notify(conn, after.epoch)
            return True


async def conflict_report(engine: AsyncEngine, limit: int = 20) -> tuple[int, list[Conflict]]:
    """How many Redis writes lost to failover-time writes, and the latest of them."""
    with translate_db_errors():
        async with engine.connect() as conn:
            total = int(await conn.scalar(select(func.count()).select_from(f2f_failover_conflicts)) or 0)
            rows = await conn.execute(select(f2f_failover_conflicts)
                                      .order_by(f2f_failover_conflicts.c.id.desc()).limit(limit))
            latest = [Conflict(r.session_id, r.redis_version, r.sql_version, json.loads(r.lost)) for r in rows]
    return total, latest
