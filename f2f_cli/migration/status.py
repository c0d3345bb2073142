"""What ``f2f migrate status`` shows: the phase, the instances, counts per store, backlog, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backup.worker import backup_lag
from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.control.faults import Conflict, conflict_report
from f2f_cli.control.phase import Control, Instance
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_instances, f2f_phase_history
from f2f_cli.errors import F2FError
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    from_phase: str | None
    to_phase: str | None
    epoch: int | None


@dataclass(slots=True)
class Status:
    control: Control
    instances: list[tuple[Instance, bool]]  # (instance, stale)
    sql_sessions: int | None = None
    redis_sessions: int | None = None
    backup_backlog: int | None = None
    redis_error: str | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    faults: Faults | None = None


CONFLICT_REPORT = "f2f_failover_conflicts"


@dataclass(slots=True)
class Faults:
    """Redis faults: the fleet's Redis state, restore progress, RPO estimate and the conflict report."""

    redis_state: str
    since: datetime | None
    rpo_estimate: int | None
    restore_done: int | None
    restore_total: int | None
    conflicts: int
    conflict_report: str
    latest_conflicts: list[Conflict]


async def backup_backlog(redis: RedisSessionStore) -> int:
    """Backup-stream entries not yet committed to SQL."""
    return (await backup_lag(redis.client, redis.keys)).total


async def collect(
    engine: AsyncEngine, sql: SqlSessionStore, redis: RedisSessionStore | None, *, window: timedelta,
    history: int = 10,
) -> Status:
    state = await control.get_control(engine)
    cutoff = utcnow() - window
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(select(f2f_instances).order_by(f2f_instances.c.host, f2f_instances.c.pid))).all()
            events = (
                await conn.execute(select(f2f_phase_history).order_by(f2f_phase_history.c.id.desc()).limit(history))
            ).all()
    instances = []
    for r in rows:
        inst = Instance(**r._mapping)
        instances.append((inst, inst.last_seen <= cutoff))
    status = Status(control=state, instances=instances)
    status.history = [HistoryEntry(e.at, e.actor, e.action, e.from_phase, e.to_phase, e.epoch) for e in events]
    total, latest = await conflict_report(engine)
    status.faults = Faults(state.redis_state.value, state.redis_state_since, state.rpo_estimate, state.restore_done,
                           state.restore_total, total, CONFLICT_REPORT, latest)
    status.sql_sessions = await sql.count()
    if redis is not None:
        try:
            status.redis_sessions = await redis.count()
            status.backup_backlog = await backup_backlog(redis)
        except F2FError as exc:
            status.redis_error = exc.message
    return status
