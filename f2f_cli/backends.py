"""The one way to open f2f's backends: the SQL engine and store, and Redis stores when configured.

The API, the operator commands, the migrator, the backup worker and the benches
all open what they need through ``Backends.open(settings)`` and close it with
``close()`` (or ``async with``), so pool sizes, timeouts and store limits are
decided in one place and no constructor opens a connection pool by itself.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.engine import create_engine_for
from f2f_cli.errors import RedisNotConfigured
from f2f_cli.settings import Settings
from f2f_cli.stores.sql import SqlSessionStore, sql_store_for

if TYPE_CHECKING:
    from f2f_cli.redis.client import RedisClient
    from f2f_cli.stores.redis import RedisSessionStore

REDIS_NEEDED = "this needs Redis"


class Backends:
    """An open SQL engine and store; Redis stores opened on first use and closed with the rest."""

    def __init__(self, settings: Settings, engine: AsyncEngine, sql: SqlSessionStore) -> None:
        self.settings = settings
        self.engine = engine
        self.sql = sql
        self._redis: dict[bool, RedisSessionStore] = {}
        self._clients: list[RedisClient] = []

    @classmethod
    def open(cls, settings: Settings) -> Backends:
        """Create the engine and the SQL store (no connection is made until first use; ``await
        backends.sql.open()`` starts the psycopg pool early, as ``f2f serve`` does)."""
        engine = create_engine_for(settings)
        # On PostgreSQL the store also carries the psycopg pool of its request path (opened on first use).
        return cls(settings, engine, sql_store_for(settings, engine=engine))

    @property
    def redis_configured(self) -> bool:
        return self.settings.redis_url is not None

    def redis(self, *, backup_stream: bool = False) -> RedisSessionStore:
        """The Redis session store (one per backup mode); ``RedisNotConfigured`` (exit 2) without F2F_REDIS_URL.

        ``backup_stream=True`` is the ``redis`` phase's store: every write also appends a
        full-state copy to the backup stream. Operator copies use the plain one.
        """
        store = self._redis.get(backup_stream)
        if store is None:
            if not self.redis_configured:
                raise RedisNotConfigured(REDIS_NEEDED)
            from f2f_cli.stores.redis import RedisSessionStore

            store = self._redis[backup_stream] = RedisSessionStore.from_settings(
                self.settings, backup_stream=backup_stream
            )
        return store

    def redis_client(self, *, command_timeout: float | None = None, max_connections: int | None = None) -> RedisClient:
        """A Redis client of its own (for work that needs other timeouts than the session path)."""
        if not self.redis_configured:
            raise RedisNotConfigured(REDIS_NEEDED)
        from f2f_cli.redis.client import create_redis

        client = create_redis(self.settings, command_timeout=command_timeout, max_connections=max_connections)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        stores, self._redis = list(self._redis.values()), {}
        clients, self._clients = self._clients, []
        for store in stores:
            await store.close()
        for client in clients:
            await client.aclose()
        await self.sql.close()
        await self.engine.dispose()

    async def __aenter__(self) -> Backends:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
