"""Pages of full-state SQL copies (live sessions and unexpired tombstones), for bulk copy tools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.sessions.model import Ingredient, Session, utcnow
from f2f_cli.sessions.sql import translate_db_errors


def _unexpired(now: datetime, since: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [sessions_t.c.expires_at > now]
    if since is not None:
        conditions.append(sessions_t.c.updated_at >= since)
    return conditions


async def count_copies(engine: AsyncEngine, *, since: datetime | None = None) -> int:
    with translate_db_errors():
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sessions_t).where(*_unexpired(utcnow(), since)))
    return int(n or 0)


async def sql_copy_pages(
    engine: AsyncEngine, *, since: datetime | None = None, page_size: int = 2000
) -> AsyncIterator[list[Session]]:
    """Keyset pages in id order; each page is two queries (heads, then their ingredients)."""
    after = ""
    while True:
        now = utcnow()
        with translate_db_errors():
            async with engine.connect() as conn:
                heads = (
                    await conn.execute(
                        select(sessions_t)
                        .where(sessions_t.c.session_id > after, *_unexpired(now, since))
                        .order_by(sessions_t.c.session_id)
                        .limit(page_size)
                    )
                ).all()
                if not heads:
                    return
                ids = [h.session_id for h in heads]
                items: dict[str, list[Ingredient]] = {i: [] for i in ids}
                rows = await conn.execute(
                    select(ingredients_t.c.session_id, ingredients_t.c.name, ingredients_t.c.added_at).where(
                        ingredients_t.c.session_id.in_(ids)
                    )
                )
                for r in rows:
                    items[r.session_id].append(Ingredient(r.name, r.added_at))
        yield [
            Session(
                session_id=h.session_id,
                created_at=h.created_at,
                updated_at=h.updated_at,
                expires_at=h.expires_at,
                version=h.version,
                ingredients=tuple(items[h.session_id]),
                deleted=h.deleted_at is not None,
            )
            for h in heads
        ]
        if len(heads) < page_size:
            return
        after = ids[-1]
