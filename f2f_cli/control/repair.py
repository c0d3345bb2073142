"""The repair pass: copy every queued session from SQL (the authority in ``dual``) into Redis."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control import phase
from f2f_cli.domain.store import SessionStore
from f2f_cli.stores.sql import SqlSessionStore


@dataclass(slots=True)
class RepairReport:
    examined: int = 0
    copied: int = 0
    gone: int = 0
    trusted: bool = False


async def repair_pass(
    engine: AsyncEngine, sql: SqlSessionStore, cache: SessionStore, *, batch: int = 500, max_rounds: int = 1000
) -> RepairReport:
    """Drain the repair queue; trust Redis again once it is empty.

    Copies are version-guarded, so repairers running at once on several
    instances are harmless. Raises if Redis fails: the entries stay queued.
    """
    report = RepairReport()
    for _ in range(max_rounds):
        entries = await phase.repair_queue(engine, batch)
        for session_id, _queued_at in entries:
            report.examined += 1
            copy = await sql.read_copy(session_id)
            if copy is None:
                report.gone += 1  # expired or purged: Redis expires it by TTL as well
                continue
            if await cache.apply_copy(copy):
                report.copied += 1
        report.trusted = await phase.repair_done(engine, entries)
        if report.trusted or not entries:
            break
    return report
