"""One dialect-aware INSERT for upserts: PostgreSQL and SQLite both speak ON CONFLICT, through different classes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(dialect: str, table: Table) -> Any:
    """``INSERT`` into ``table`` with ``on_conflict_do_update``/``_do_nothing`` and ``excluded`` for ``dialect``.

    Typed ``Any`` because the two dialects' Insert classes share those methods without a common base.
    """
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
