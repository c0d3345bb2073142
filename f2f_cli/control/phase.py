"""The phase every instance follows, kept in ``f2f_control`` (one row), and instance heartbeats."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_control, f2f_instances, f2f_phase_history, f2f_repair_queue
from f2f_cli.db.upsert import insert_for
from f2f_cli.errors import PreconditionFailed, SchemaNotReady


class Phase(StrEnum):
    POSTGRES = "postgres"
    DUAL_WRITE = "dual-write"
    DUAL = "dual"
    CUTOVER = "cutover"
    REDIS = "redis"


class RedisState(StrEnum):
    """The fleet's view of Redis beside the phase (docs/ARCHITECTURE.md, "Redis faults")."""

    OK = "ok"
    # Redis lost data (or is being refilled after a failover): one instance restores it from SQL.
    RECOVERING = "recovering"
    # The fleet failed over to SQL authority; the returning Redis awaits reconciliation.
    FAILED_OVER = "failed-over"


@dataclass(frozen=True, slots=True)
class Control:
    phase: Phase
    epoch: int
    changed_at: datetime
    changed_by: str
    redis_trusted: bool
    redis_state: RedisState = RedisState.OK
    redis_generation: str | None = None
    redis_state_since: datetime | None = None
    rpo_estimate: int | None = None
    restore_done: int | None = None
    restore_total: int | None = None
    # Only in cutover: the phase it came from (where a lapse returns) and the one it opens, and the
    # deadline the migrator renews. changed_at/changed_by then say since when and by whom writes are held.
    cutover_from: Phase | None = None
    cutover_to: Phase | None = None
    hold_deadline: datetime | None = None

    def hold_lapsed(self, now: datetime) -> bool:
        """A cut-over whose migrator stopped renewing it: the fleet must go back by itself."""
        return self.phase is Phase.CUTOVER and self.hold_deadline is not None and self.hold_deadline < now


@dataclass(frozen=True, slots=True)
class Instance:
    instance_id: str
    kind: str
    host: str
    pid: int
    phase_seen: str
    epoch_seen: int
    started_at: datetime
    last_seen: datetime
    redis_ok_at: datetime | None = None


def live_window(poll_seconds: float) -> timedelta:
    """An instance that has not written a heartbeat for this long is considered gone."""
    return timedelta(seconds=max(10.0, 5 * poll_seconds))


def new_instance_id(kind: str) -> str:
    return f"{kind}-{socket.gethostname()[:40]}-{os.getpid()}-{os.urandom(3).hex()}"


async def read_control(conn: AsyncConnection) -> Control:
    row = (await conn.execute(select(f2f_control).where(f2f_control.c.id == 1))).first()
    if row is None:
        raise SchemaNotReady("f2f_control has no row: run 'f2f migrate db upgrade'")
    return Control(
        Phase(row.phase), row.epoch, row.changed_at, row.changed_by, row.redis_trusted,
        RedisState(row.redis_state), row.redis_generation, row.redis_state_since, row.rpo_estimate,
        row.restore_done, row.restore_total,
        cutover_from=Phase(row.cutover_from) if row.cutover_from else None,
        cutover_to=Phase(row.cutover_to) if row.cutover_to else None,
        hold_deadline=row.hold_deadline,
    )


async def get_control(engine: AsyncEngine) -> Control:
    with translate_db_errors():
        async with engine.connect() as conn:
            return await read_control(conn)


async def set_phase(
    engine: AsyncEngine,
    phase: Phase,
    *,
    actor: str,
    action: str,
    expect: Phase | None = None,
    detail: dict[str, Any] | None = None,
    toward: Phase | None = None,
    hold_for: timedelta | None = None,
) -> Control:
    """Move to ``phase`` with a new epoch, in one transaction with its audit row.

    With ``expect``, the move only happens from that phase (compare-and-set), so
    two operators racing cannot both step. A move into ``cutover`` names the phase
    it opens (``toward``) and the deadline its migrator must keep renewing
    (``hold_for``); every other move clears them.
    """
    now = utcnow()
    with translate_db_errors():
        async with engine.begin() as conn:
            before = await read_control(conn)
            if expect is not None and before.phase is not expect:
                raise PreconditionFailed(f"phase is {before.phase}, expected {expect}")
            cutover = phase is Phase.CUTOVER
            moved = await conn.execute(
                update(f2f_control)
                .where(f2f_control.c.id == 1, f2f_control.c.epoch == before.epoch)
                .values(
                    phase=phase.value, epoch=before.epoch + 1, changed_at=now, changed_by=actor[:200],
                    cutover_from=before.phase.value if cutover else None,
                    cutover_to=toward.value if cutover and toward else None,
                    hold_deadline=now + hold_for if cutover and hold_for else None,
                )
            )
            if moved.rowcount != 1:
                # Another transaction moved the phase between our read and our update.
                raise PreconditionFailed(f"the phase changed meanwhile (epoch {before.epoch} is gone)")
            await _history(conn, now, actor, action, before.phase.value, phase.value, before.epoch + 1, detail)
            await _notify(conn, before.epoch + 1)
            return await read_control(conn)


async def _history(
    conn: AsyncConnection, at: datetime, actor: str, action: str, from_phase: str | None, to_phase: str | None,
    epoch: int | None, detail: dict[str, Any] | None,
) -> None:
    await conn.execute(
        insert(f2f_phase_history).values(
            at=at, actor=actor[:200], action=action[:64], from_phase=from_phase, to_phase=to_phase, epoch=epoch,
            detail=json.dumps(detail, ensure_ascii=False) if detail else None,
        )
    )


async def _notify(conn: AsyncConnection, epoch: int) -> None:
    if conn.dialect.name == "postgresql":
        # Instances that LISTEN hear of the change at once instead of at their next poll.
        await conn.exec_driver_sql(f"NOTIFY f2f_control, '{epoch}'")


async def record_attempt(
    engine: AsyncEngine, *, actor: str, action: str, phase: Phase, detail: dict[str, Any] | None = None
) -> None:
    """A history row for a step that changed no phase: a refused, failed or interrupted attempt."""
    with translate_db_errors():
        async with engine.begin() as conn:
            await _history(conn, utcnow(), actor, action, phase.value, None, None, detail)


async def renew_hold(engine: AsyncEngine, epoch: int, hold_for: timedelta) -> bool:
    """Push the cut-over deadline of ``epoch`` out by ``hold_for``; False once it lapsed or moved on.

    A lapse is final: a migrator that was silent too long finds its cut-over gone rather than
    reviving one the fleet may already be leaving.
    """
    now = utcnow()
    with translate_db_errors():
        async with engine.begin() as conn:
            result = await conn.execute(
                update(f2f_control)
                .where(
                    f2f_control.c.id == 1,
                    f2f_control.c.phase == Phase.CUTOVER.value,
                    f2f_control.c.epoch == epoch,
                    f2f_control.c.hold_deadline >= now,
                )
                .values(hold_deadline=now + hold_for)
            )
            return bool(result.rowcount == 1)


async def return_lapsed_cutover(engine: AsyncEngine, epoch: int, *, actor: str) -> Control | None:
    """Return the fleet from a cut-over whose deadline passed to the phase it came from.

    Every instance that sees the lapse calls this; the update is guarded by the epoch and the
    deadline, so exactly one succeeds (and writes the history row). Returns the new control, or None
    when another instance (or the migrator) moved first.
    """
    now = utcnow()
    with translate_db_errors():
        async with engine.begin() as conn:
            before = await read_control(conn)
            if before.epoch != epoch or not before.hold_lapsed(now) or before.cutover_from is None:
                return None
            moved = await conn.execute(
                update(f2f_control)
                .where(
                    f2f_control.c.id == 1,
                    f2f_control.c.phase == Phase.CUTOVER.value,
                    f2f_control.c.epoch == epoch,
                    f2f_control.c.hold_deadline < now,
                )
                .values(
                    phase=before.cutover_from.value, epoch=epoch + 1, changed_at=now, changed_by=actor[:200],
                    cutover_from=None, cutover_to=None, hold_deadline=None,
                )
            )
            if moved.rowcount != 1:
                return None
            held_ms = round((now - before.changed_at).total_seconds() * 1000)
            await _history(conn, now, actor, "cutover lapsed", Phase.CUTOVER.value, before.cutover_from.value,
                           epoch + 1, {"toward": before.cutover_to.value if before.cutover_to else None,
                                       "held_by": before.changed_by, "writes_held_ms": held_ms})
            await _notify(conn, epoch + 1)
            return await read_control(conn)


async def reset_repair_queue(engine: AsyncEngine) -> None:
    """Forget queued repairs and trust Redis: only right before a full copy makes Redis whole."""
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(delete(f2f_repair_queue))
            await conn.execute(update(f2f_control).where(f2f_control.c.id == 1).values(redis_trusted=True))


async def mark_redis_untrusted(engine: AsyncEngine, session_id: str, reason: str) -> None:
    """Queue ``session_id`` for repair and stop every instance trusting Redis, atomically."""
    now = utcnow()
    stmt = insert_for(engine.dialect.name, f2f_repair_queue).values(
        session_id=session_id, queued_at=now, reason=reason[:200]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["session_id"], set_={"queued_at": now, "reason": reason[:200]}
    )
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(stmt)
            await conn.execute(update(f2f_control).where(f2f_control.c.id == 1).values(redis_trusted=False))


async def repair_queue(engine: AsyncEngine, limit: int = 500) -> list[tuple[str, datetime]]:
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(f2f_repair_queue.c.session_id, f2f_repair_queue.c.queued_at)
                .order_by(f2f_repair_queue.c.queued_at)
                .limit(limit)
            )
            return [(r.session_id, r.queued_at) for r in rows]


async def repair_done(engine: AsyncEngine, done: list[tuple[str, datetime]]) -> bool:
    """Drop repaired entries (unless re-queued since) and trust Redis again once the queue is empty."""
    with translate_db_errors():
        async with engine.begin() as conn:
            for session_id, queued_at in done:
                await conn.execute(
                    delete(f2f_repair_queue).where(
                        f2f_repair_queue.c.session_id == session_id, f2f_repair_queue.c.queued_at == queued_at
                    )
                )
            remaining = await conn.scalar(select(func.count()).select_from(f2f_repair_queue))
            if remaining:
                return False
            # While Redis is being restored or reconciled, only the restore may trust it again.
            trusted = await conn.execute(
                update(f2f_control)
                .where(f2f_control.c.id == 1, f2f_control.c.redis_state == RedisState.OK.value)
                .values(redis_trusted=True)
            )
            return bool(trusted.rowcount)


async def heartbeat(
    engine: AsyncEngine, instance_id: str, kind: str, phase: str, epoch: int, started_at: datetime,
    *, redis_ok_at: datetime | None = None,
) -> None:
    """Record that this instance is alive, what it has acknowledged and (serve) when it last reached Redis."""
    now = utcnow()
    values = {
        "instance_id": instance_id,
        "kind": kind,
        "host": socket.gethostname()[:255],
        "pid": os.getpid(),
        "phase_seen": phase,
        "epoch_seen": epoch,
        "started_at": started_at,
        "last_seen": now,
        "redis_ok_at": redis_ok_at,
    }
    stmt = insert_for(engine.dialect.name, f2f_instances).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["instance_id"],
        set_={"phase_seen": phase, "epoch_seen": epoch, "last_seen": now, "redis_ok_at": redis_ok_at},
    )
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(stmt)


async def remove_instance(engine: AsyncEngine, instance_id: str) -> None:
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(delete(f2f_instances).where(f2f_instances.c.instance_id == instance_id))


async def live_instances(engine: AsyncEngine, *, within: timedelta, kind: str | None = None) -> list[Instance]:
    """Instances whose heartbeat is newer than ``within``: the ones a phase step must wait for."""
    query = select(f2f_instances).where(f2f_instances.c.last_seen > utcnow() - within)
    if kind is not None:
        query = query.where(f2f_instances.c.kind == kind)
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(f2f_instances.c.host, f2f_instances.c.pid))).all()
    return [Instance(**r._mapping) for r in rows]
