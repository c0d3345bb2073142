"""Engine factories for the async request path and the synchronous tools."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from f2f_cli.settings import Settings, sync_database_url

# Waiting writers on SQLite retry for this long before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; foreign keys make the
    # ingredient rows follow their session on delete, as on PostgreSQL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine_for(settings: Settings) -> AsyncEngine:
    """The async engine for ``settings.database_url``."""
    url = settings.database_url
    kwargs: dict[str, Any] = {"pool_pre_ping": False}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        kwargs["pool_timeout"] = 5
        kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sync_engine_for(database_url: str) -> Engine:
    """A synchronous engine (Alembic, bulk operator tools)."""
    url = sync_database_url(database_url)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
