"""One migrator at a time: a lease row in ``f2f_migrator_lease`` that a phase-changing ``f2f migrate`` holds.

The holder renews its heartbeat every second or so. A second migrator refuses at once,
naming the holder; a lease whose heartbeat is older than ``stale_after`` (the holder was
killed, its pod lost) may be taken over, but only when the operator says so.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_migrator_lease
from f2f_cli.db.upsert import insert_for
from f2f_cli.errors import PreconditionFailed

LEASE_ROW = 1


@dataclass(frozen=True, slots=True)
class Lease:
    token: str
    holder: str  # host:pid
    actor: str
    command: str
    step: str
    since: datetime
    heartbeat: datetime

    def silent_for(self, now: datetime) -> float:
        return max(0.0, (now - self.heartbeat).total_seconds())

    def stale(self, now: datetime, stale_after: timedelta) -> bool:
        return now - self.heartbeat > stale_after

    def describe(self, now: datetime) -> str:
        return (f"{self.holder} ({self.actor}) running '{self.command}' since {self.since:%Y-%m-%d %H:%M:%S}Z, "
                f"step {self.step}, last heartbeat {self.silent_for(now):.1f}s ago")


class LeaseHeld(PreconditionFailed):
    """Another migrator holds the lease."""

    code = "migrator_running"

    def __init__(self, message: str, lease: Lease) -> None:
        super().__init__(message)
        self.lease = lease


def holder_id() -> str:
    return f"{socket.gethostname()[:200]}:{os.getpid()}"


async def current(engine: AsyncEngine) -> Lease | None:
    with translate_db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(select(f2f_migrator_lease).where(f2f_migrator_lease.c.id == LEASE_ROW))).first()
    if row is None:
        return None
    values = dict(row._mapping)
    values.pop("id")
    return Lease(**values)


def refusal(lease: Lease, now: datetime, stale_after: timedelta) -> str:
    """What to tell the operator who finds the lease taken."""
    if lease.stale(now, stale_after):
        return (f"another migrator holds the lease but has stopped heartbeating: {lease.describe(now)}; "
                f"if it is gone, run the command again with --take-over")
    return (f"another migrator is running: {lease.describe(now)}; wait for it to finish "
            f"(a lease with no heartbeat for {stale_after.total_seconds():.0f}s may be taken over)")


async def acquire(
    engine: AsyncEngine, *, actor: str, command: str, stale_after: timedelta, take_over: bool = False
) -> Lease:
    """Take the lease, or raise LeaseHeld naming its holder.

    The row's primary key makes the first INSERT win; a take-over is an UPDATE guarded by the
    old token, so two operators taking over one dead lease cannot both succeed.
    """
    now = utcnow()
    mine = Lease(secrets.token_hex(16), holder_id(), actor[:200], command[:200], "start", now, now)
    values = {"id": LEASE_ROW, "token": mine.token, "holder": mine.holder[:255], "actor": mine.actor,
              "command": mine.command, "step": mine.step, "since": now, "heartbeat": now}
    with translate_db_errors():
        async with engine.begin() as conn:
            inserted = await conn.scalar(
                insert_for(engine.dialect.name, f2f_migrator_lease).values(values).on_conflict_do_nothing()
                .returning(f2f_migrator_lease.c.token)
            )
            if inserted == mine.token:
                return mine
    held = await current(engine)
    if held is None:  # released between our insert and our read: try once more
        return await acquire(engine, actor=actor, command=command, stale_after=stale_after, take_over=take_over)
    if not (take_over and held.stale(now, stale_after)):
        raise LeaseHeld(refusal(held, now, stale_after), held)
    with translate_db_errors():
        async with engine.begin() as conn:
            taken = await conn.execute(
                update(f2f_migrator_lease)
                .where(f2f_migrator_lease.c.id == LEASE_ROW, f2f_migrator_lease.c.token == held.token)
                .values({k: v for k, v in values.items() if k != "id"})
            )
    if taken.rowcount != 1:
        raise LeaseHeld("another migrator took the lease over first", held)
    return mine


async def renew(engine: AsyncEngine, token: str, *, step: str | None = None) -> bool:
    """Heartbeat (and the current step); False when the lease is no longer ours (taken over)."""
    values: dict[str, object] = {"heartbeat": utcnow()}
    if step is not None:
        values["step"] = step[:64]
    with translate_db_errors():
        async with engine.begin() as conn:
            result = await conn.execute(
                update(f2f_migrator_lease)
                .where(f2f_migrator_lease.c.id == LEASE_ROW, f2f_migrator_lease.c.token == token)
                .values(values)
            )
    return bool(result.rowcount == 1)


async def release(engine: AsyncEngine, token: str) -> None:
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                delete(f2f_migrator_lease).where(
                    f2f_migrator_lease.c.id == LEASE_ROW, f2f_migrator_lease.c.token == token
                )
            )
