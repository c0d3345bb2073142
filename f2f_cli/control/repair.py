"""The repair pass: copy every queued session from SQL (the authority in ``dual``) into Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control import phase
from f2f_cli.domain.model import Session
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


class VersionReader(Protocol):
    async def read_copies(self, session_ids: Sequence[str]) -> list[Session | None]: ...


async def repair_preview(
    engine: AsyncEngine, sql: SqlSessionStore, cache: VersionReader, *, limit: int = 100_000
) -> RepairReport:
    """What ``repair_pass`` would do now, changing nothing (``f2f migrate repair --dry-run``).

    The same reads and the same version test as the copy (apply only over an older version or
    nothing); ``trusted`` says whether the pass would empty the queue and trust Redis again.
    """
    report = RepairReport()
    entries = await phase.repair_queue(engine, limit)
    ids = [session_id for session_id, _queued_at in entries]
    held = await cache.read_copies(ids) if ids else []
    for session_id, current in zip(ids, held, strict=True):
        report.examined += 1
        copy = await sql.read_copy(session_id)
        if copy is None:
            report.gone += 1
        elif current is None or current.version < copy.version:
            report.copied += 1
    report.trusted = len(entries) < limit
    return report
