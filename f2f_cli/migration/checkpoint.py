"""Checkpoints of resumable bulk copies, one row per named job in ``f2f_checkpoints``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_checkpoints
from f2f_cli.db.upsert import insert_for


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    last_session_id: str | None
    copied: int
    skipped: int
    started_at: datetime
    updated_at: datetime


async def load(engine: AsyncEngine, name: str) -> Checkpoint | None:
    with translate_db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(select(f2f_checkpoints).where(f2f_checkpoints.c.name == name))).first()
    return Checkpoint(**row._mapping) if row is not None else None


async def save(engine: AsyncEngine, cp: Checkpoint) -> None:
    values = {
        "name": cp.name,
        "last_session_id": cp.last_session_id,
        "copied": cp.copied,
        "skipped": cp.skipped,
        "started_at": cp.started_at,
        "updated_at": utcnow(),
    }
    stmt = insert_for(engine.dialect.name, f2f_checkpoints).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={k: stmt.excluded[k] for k in values if k != "name"}
    )
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(stmt)


async def clear(engine: AsyncEngine, name: str) -> None:
    with translate_db_errors():
        async with engine.begin() as conn:
            await conn.execute(delete(f2f_checkpoints).where(f2f_checkpoints.c.name == name))
