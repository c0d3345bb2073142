"""Reads of the SQL store that the API never needs: rows as stored, expired ones included."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.stores.sql import session_from_row


async def read_row(engine: AsyncEngine, session_id: str) -> Session | None:
    """The row for ``session_id`` whatever its state (live, tombstone, expired but not purged)."""
    with translate_db_errors():
        async with engine.connect() as conn:
            head = (await conn.execute(select(sessions_t).where(sessions_t.c.session_id == session_id))).first()
            if head is None:
                return None
            rows = await conn.execute(
                select(ingredients_t.c.name, ingredients_t.c.added_at).where(ingredients_t.c.session_id == session_id)
            )
            items = [Ingredient(r.name, r.added_at) for r in rows]
    return session_from_row(head, items)
