"""``f2f sessions list``: one summary row per session, streamed a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Session
from f2f_cli.domain.store import SessionStore


class SessionRow(msgspec.Struct, frozen=True):
    session_id: str
    store: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    ttl_seconds: float
    ingredients: int
    version: int


class ListFilter(msgspec.Struct, frozen=True):
    expiring_within: timedelta | None = None
    ingredient: str | None = None

    def accepts(self, session: Session, now: datetime) -> bool:
        if self.expiring_within is not None and session.expires_at > now + self.expiring_within:
            return False
        return self.ingredient is None or self.ingredient in session.names


async def list_sql(
    engine: AsyncEngine, flt: ListFilter, *, limit: int | None = None, page_size: int = 500
) -> AsyncIterator[SessionRow]:
    """Live SQL sessions in id order; keyset pagination, so memory stays bounded by one page."""
    count = (
        select(func.count())
        .select_from(ingredients_t)
        .where(ingredients_t.c.session_id == sessions_t.c.session_id)
        .scalar_subquery()
    )
    after = ""
    emitted = 0
    while limit is None or emitted < limit:
        now = utcnow()
        conditions = [sessions_t.c.session_id > after, sessions_t.c.expires_at > now, sessions_t.c.deleted_at.is_(None)]
        if flt.expiring_within is not None:
            conditions.append(sessions_t.c.expires_at <= now + flt.expiring_within)
        if flt.ingredient is not None:
            conditions.append(
                exists().where(
                    and_(ingredients_t.c.session_id == sessions_t.c.session_id, ingredients_t.c.name == flt.ingredient)
                )
            )
        size = page_size if limit is None else min(page_size, limit - emitted)
        query = (
            select(
                sessions_t.c.session_id,
                sessions_t.c.created_at,
                sessions_t.c.updated_at,
                sessions_t.c.expires_at,
                sessions_t.c.version,
                count.label("n"),
            )
            .where(*conditions)
            .order_by(sessions_t.c.session_id)
            .limit(size)
        )
        with translate_db_errors():
            async with engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        for r in rows:
            yield SessionRow(
                session_id=r.session_id,
                store="sql",
                created_at=r.created_at,
                updated_at=r.updated_at,
                expires_at=r.expires_at,
                ttl_seconds=round((r.expires_at - now).total_seconds(), 3),
                ingredients=int(r.n),
                version=r.version,
            )
        emitted += len(rows)
        if len(rows) < size:
            return
        after = rows[-1].session_id


async def list_store(
    store: SessionStore, flt: ListFilter, *, limit: int | None = None, page_size: int = 500
) -> AsyncIterator[SessionRow]:
    """Any store through ``iter_sessions`` (Redis: SCAN over every primary, unordered)."""
    emitted = 0
    async for session in store.iter_sessions(page_size):
        if limit is not None and emitted >= limit:
            return
        now = utcnow()
        if not flt.accepts(session, now):
            continue
        emitted += 1
        yield row_of(session, store.backend, now)


def row_of(session: Session, store: str, now: datetime) -> SessionRow:
    return SessionRow(
        session_id=session.session_id,
        store=store,
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        ttl_seconds=round(session.ttl_seconds(now), 3),
        ingredients=len(session.ingredients),
        version=session.version,
    )
