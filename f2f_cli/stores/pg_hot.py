"""The SQL store's request path on PostgreSQL: psycopg 3, a psycopg_pool pool, prepared statements.

Each hot operation is one round trip: ``get`` is one SELECT (the session row
joined with its ingredients, one snapshot), and every write (add, remove,
clear, touch) is one call of the ``f2f_session_write`` function (migration
``0004``), which bumps version and expiry, applies the change, checks
the limit and returns the new state in one statement. SQLAlchemy stays for the
schema, Alembic and the cold paths; going around it here is what brings the
store within reach of a bare psycopg call (``f2f bench sessions`` measures the
two side by side with these very statements).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from f2f_cli.errors import StoreUnavailable

# ``COLLATE "C"`` orders names by code point, the order Python's sort (and every other store) uses.
GET = (
    "SELECT s.created_at, s.updated_at, s.expires_at, s.version, i.name, i.added_at "
    "FROM fridge_sessions s LEFT JOIN fridge_session_ingredients i ON i.session_id = s.session_id "
    "WHERE s.session_id = %s AND s.expires_at > %s AND s.deleted_at IS NULL "
    'ORDER BY i.added_at, i.name COLLATE "C"'
)
WRITE = (
    "SELECT created_at, version, name, added_at, changed "
    "FROM f2f_session_write(%s::text, %s::text, %s::text[], %s::timestamptz, %s::timestamptz, %s::integer)"
)
TOO_MANY_SQLSTATE = "F2F01"
POOL_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5


class LimitExceeded(Exception):
    """The write would pass the ingredient limit; ``stored`` ingredients were there before it."""

    def __init__(self, stored: int) -> None:
        super().__init__(stored)
        self.stored = stored


def conninfo(database_url: str) -> str:
    """The libpq URL of an f2f database URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # Timestamps come back in UTC, as every other path returns them.
    await conn.execute("SET TIME ZONE 'UTC'")


def make_pool(database_url: str, size: int) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """A closed pool of autocommit connections (each statement is its own transaction); ``open()`` it in a loop."""
    return AsyncConnectionPool(
        conninfo(database_url),
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        configure=_configure,
        timeout=POOL_TIMEOUT,
        open=False,
        name="f2f-sql",
    )


@contextmanager
def translate_pg_errors() -> Iterator[None]:
    """Connection trouble becomes StoreUnavailable (503), never a traceback; the limit becomes LimitExceeded."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(f"SQL database unavailable: no connection within {POOL_TIMEOUT:g}s") from exc
    except (psycopg.Error, OSError) as exc:
        if isinstance(exc, psycopg.Error) and exc.sqlstate == TOO_MANY_SQLSTATE:
            raise LimitExceeded(int(exc.diag.message_detail or "0")) from None
        lines = str(exc).strip().splitlines()
        raise StoreUnavailable(f"SQL database unavailable: {lines[0] if lines else type(exc).__name__}") from exc


class PgHotPath:
    """The two statements of the request path, run on a pool this object owns."""

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]]) -> None:
        self.pool = pool
        self._opened = False

    async def open(self) -> None:
        """Start the pool (idempotent); the first call of ``get`` or ``write`` does it when nobody did."""
        if not self._opened:
            self._opened = True
            with translate_pg_errors():
                await self.pool.open(wait=False)

    async def close(self) -> None:
        if self._opened:
            await self.pool.close()

    async def get(self, session_id: str, now: datetime) -> list[tuple[Any, ...]]:
        if not self._opened:
            await self.open()
        with translate_pg_errors():
            async with self.pool.connection() as conn:
                cur = await conn.execute(GET, (session_id, now), prepare=True)
                return await cur.fetchall()

    async def write(
        self, op: str, session_id: str, names: Sequence[str], now: datetime, expires_at: datetime, limit: int
    ) -> list[tuple[Any, ...]]:
        if not self._opened:
            await self.open()
        with translate_pg_errors():
            async with self.pool.connection() as conn:
                cur = await conn.execute(WRITE, (op, session_id, list(names), now, expires_at, limit), prepare=True)
                return await cur.fetchall()
