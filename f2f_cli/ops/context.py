"""What every operator command opens: the SQL engine and store, the phase, Redis when configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

from f2f_cli.backends import Backends
from f2f_cli.control.phase import Control, Phase, get_control
from f2f_cli.control.specs import current_spec, spec_of
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import InvalidInput
from f2f_cli.settings import Settings

if TYPE_CHECKING:
    from f2f_cli.stores.redis import RedisSessionStore

StoreName = Literal["sql", "redis"]
STORE_CHOICES = ("sql", "redis", "auto")


class OpsContext:
    """The backends an operator command works on: SQL always, Redis on first use."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.settings = backends.settings
        self.engine = backends.engine
        self.sql = backends.sql

    @property
    def redis_configured(self) -> bool:
        return self.backends.redis_configured

    def redis(self) -> RedisSessionStore:
        """The Redis store (raises ``RedisNotConfigured`` when F2F_REDIS_URL is unset).

        Operator copies never feed the backup stream: SQL is written directly where needed.
        """
        return self.backends.redis(backup_stream=False)

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



@asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[OpsContext]:
    async with Backends.open(settings) as backends:
        yield OpsContext(backends)
