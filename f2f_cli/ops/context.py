"""What every operator command opens: the SQL engine and store, the phase, Redis when configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control.phase import Control, Phase, get_control
from f2f_cli.control.specs import current_spec, spec_of
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import InvalidInput, NotAvailable
from f2f_cli.settings import Settings
from f2f_cli.stores.sql import SqlSessionStore

if TYPE_CHECKING:
    from f2f_cli.stores.redis import RedisSessionStore

StoreName = Literal["sql", "redis"]
STORE_CHOICES = ("sql", "redis", "auto")


class OpsContext:
    """One SQL engine, the SQL store over it, and a Redis store opened on first use."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.sql = SqlSessionStore(
            engine, ttl_seconds=settings.session_ttl_seconds, max_ingredients=settings.max_ingredients
        )
        self._redis: RedisSessionStore | None = None

    @property
    def redis_configured(self) -> bool:
        return self.settings.redis_url is not None

    def redis(self) -> RedisSessionStore:
        """The Redis store (raises ``NotAvailable`` when F2F_REDIS_URL is unset)."""
        if self._redis is None:
            if not self.redis_configured:
                raise NotAvailable("Redis is not configured: set F2F_REDIS_URL")
            from f2f_cli.stores.redis import RedisSessionStore

            # Operator copies never feed the backup stream: SQL is written directly where needed.
            self._redis = RedisSessionStore.from_settings(self.settings, backup_stream=False)
        return self._redis

    def store(self, name: StoreName) -> SessionStore:
        return self.sql if name == "sql" else self.redis()

    async def control(self) -> Control:
        return await get_control(self.engine)

    async def phase(self) -> Phase:
        return (await self.control()).phase

    async def stores_of_phase(self) -> list[StoreName]:
        """The stores that hold sessions in the current phase, the version authority first."""
        stores: list[StoreName] = []
        for name in spec_of(await self.phase()).holds_sessions_in:
            stores.append("redis" if name == "redis" else "sql")
        return stores

    async def resolve_store(self, choice: str) -> StoreName:
        """``auto`` is the store reads come from now; ``sql``/``redis`` are taken as given."""
        if choice not in STORE_CHOICES:
            raise InvalidInput(f"unknown store {choice!r}: use sql, redis or auto")
        if choice == "auto":
            control = await self.control()
            return "redis" if current_spec(control).reads_redis(control.redis_trusted) else "sql"
        if choice == "redis":
            self.redis()
        return "sql" if choice == "sql" else "redis"

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
        await self.engine.dispose()


@asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[OpsContext]:
    ctx = OpsContext(settings, create_engine_for(settings))
    try:
        yield ctx
    finally:
        await ctx.close()
