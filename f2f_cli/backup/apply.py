"""Version-guarded bulk upsert of full-state session copies into SQL (used by ``f2f worker``).

A minimal stand-in for ``SqlSessionStore.apply_copy`` in bulk: one statement
upserts every session row ``WHERE version < :new``, and only the rows that
statement actually changed get their ingredients rewritten, in the same
transaction. Older copies never replace newer rows; replaying a copy is a no-op.
A tombstone copy becomes a row with ``deleted_at`` set and no ingredients; SQL
hides rows past ``expires_at``, so a session that expires in Redis expires in
SQL at the same instant without another message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from f2f_cli.db.schema import fridge_session_ingredients, fridge_sessions
from f2f_cli.domain.model import Session


def newest_per_session(copies: Sequence[Session]) -> list[Session]:
    """One copy per session (the highest version), sorted by id so concurrent
    workers lock rows in the same order and cannot deadlock each other."""
    best: dict[str, Session] = {}
    for copy in copies:
        held = best.get(copy.session_id)
        if held is None or copy.version > held.version:
            best[copy.session_id] = copy
    return [best[k] for k in sorted(best)]


async def apply_copies(conn: AsyncConnection, copies: Sequence[Session]) -> set[str]:
    """Apply ``copies`` inside the caller's transaction; return the ids that changed."""
    chosen = newest_per_session(copies)
    if not chosen:
        return set()
    rows: list[dict[str, Any]] = [
        {
            "session_id": c.session_id,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "expires_at": c.expires_at,
            "version": c.version,
            "deleted_at": c.updated_at if c.deleted else None,
        }
        for c in chosen
    ]
    dialect = conn.dialect.name
    ins: Any = postgresql.insert(fridge_sessions) if dialect == "postgresql" else sqlite.insert(fridge_sessions)
    stmt = ins.on_conflict_do_update(
        index_elements=[fridge_sessions.c.session_id],
        set_={name: ins.excluded[name] for name in ("created_at", "updated_at", "expires_at", "version", "deleted_at")},
        where=fridge_sessions.c.version < ins.excluded.version,
    ).returning(fridge_sessions.c.session_id)
    result = await conn.execute(stmt, rows)
    changed = {row[0] for row in result.all()}
    if not changed:
        return changed
    ids = sorted(changed)
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        await conn.execute(delete(fridge_session_ingredients).where(fridge_session_ingredients.c.session_id.in_(part)))
    ingredient_rows = [
        {"session_id": c.session_id, "name": i.name, "added_at": i.added_at}
        for c in chosen
        if c.session_id in changed and not c.deleted
        for i in c.ingredients
    ]
    if ingredient_rows:
        await conn.execute(insert(fridge_session_ingredients), ingredient_rows)
    return changed
