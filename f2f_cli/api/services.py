"""What the app needs at run time, created in the lifespan and reached via ``request.app.state.services``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.engine import create_engine_for
from f2f_cli.errors import F2FError
from f2f_cli.sessions.sql import SqlSessionStore
from f2f_cli.sessions.store import SessionStore
from f2f_cli.settings import Settings


class Services:
    """The engine, the stores and the phase the process follows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine_for(settings)
        self.sql_store = SqlSessionStore(
            self.engine,
            ttl_seconds=settings.session_ttl_seconds,
            max_ingredients=settings.max_ingredients,
        )
        self.phase = "postgres"

    def store(self) -> SessionStore:
        """The store that serves requests in the current phase."""
        return self.sql_store

    async def start(self) -> None:
        """Nothing to warm up yet: connections open lazily on the first request."""

    async def stop(self) -> None:
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        """Check exactly the stores the current phase needs; 'ok' or the reason per store."""
        checks: dict[str, str] = {}
        try:
            await self.sql_store.ping()
            checks["sql"] = "ok"
        except F2FError as exc:
            checks["sql"] = exc.message
        return checks
