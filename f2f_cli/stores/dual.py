"""The dual store: SQL is the version authority, Redis receives full-state copies.

Used in ``dual-write`` (reads from SQL) and ``dual`` (reads from Redis with
fallback to SQL and read-repair). A failing Redis never fails a request here:
the write has already committed in SQL, the session id goes to the repair
queue and Redis is flagged untrusted before the response leaves, so every
instance reads from SQL until a repair pass has caught Redis up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from f2f_cli.domain.model import Mutation, Session
from f2f_cli.domain.store import AuthorityStore, SessionStore
from f2f_cli.errors import SessionNotFound
from f2f_cli.stores.breaker import CircuitBreaker

log = logging.getLogger("f2f.dual")

CopyFailed = Callable[[str, str], Awaitable[None]]


class DualEvents:
    """Counters the metrics endpoint reads (no Prometheus import in the core)."""

    def __init__(self) -> None:
        self.fallbacks = 0
        self.read_repairs = 0
        self.copy_failures = 0


class DualSessionStore:
    backend = "dual"

    def __init__(
        self,
        sql: AuthorityStore,
        cache: SessionStore,
        *,
        read_from_cache: bool,
        breaker: CircuitBreaker,
        on_copy_failed: CopyFailed,
        cache_trusted: Callable[[], bool] = lambda: True,
        events: DualEvents | None = None,
    ) -> None:
        self.sql = sql
        self.cache = cache
        self.read_from_cache = read_from_cache
        self.breaker = breaker
        self._on_copy_failed = on_copy_failed
        self._cache_trusted = cache_trusted
        self.events = events or DualEvents()

    # -- reads ---------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        if self.read_from_cache and self._cache_trusted() and self.breaker.allow():
            try:
                session = await self.cache.get(session_id)
            except SessionNotFound:
                self.breaker.success()  # Redis answered: a miss, not a fault
            except Exception as exc:
                self.breaker.failure()
                self.events.fallbacks += 1
                log.debug("redis read failed, serving from SQL: %s", exc)
            else:
                self.breaker.success()
                return session
            session = await self.sql.get(session_id)
            await self._read_repair(session)
            return session
        return await self.sql.get(session_id)

    async def count(self) -> int:
        return await self.sql.count()

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        return self.sql.iter_sessions(batch_size)

    # -- writes: SQL first, then the copy ------------------------------------

    async def create(self) -> Session:
        session = await self.sql.create()
        await self._copy(session)
        return session

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        mutation = await self.sql.add_ingredients(session_id, names)
        await self._copy(mutation.session)
        return mutation

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        mutation = await self.sql.remove_ingredient(session_id, name)
        await self._copy(mutation.session)
        return mutation

    async def clear(self, session_id: str) -> Mutation:
        mutation = await self.sql.clear(session_id)
        await self._copy(mutation.session)
        return mutation

    async def touch(self, session_id: str) -> Session:
        session = await self.sql.touch(session_id)
        await self._copy(session)
        return session

    async def delete(self, session_id: str) -> None:
        await self._copy(await self.sql.delete_returning_tombstone(session_id))

    async def apply_copy(self, copy: Session) -> bool:
        """Into SQL (the authority) first; Redis gets the same copy when SQL took it."""
        if not await self.sql.apply_copy(copy):
            return False
        await self._copy(copy)
        return True

    async def read_copy(self, session_id: str) -> Session | None:
        """The authority's copy: SQL holds the truth in the dual phases."""
        return await self.sql.read_copy(session_id)

    async def ping(self) -> None:
        await self.sql.ping()

    async def close(self) -> None:
        """The SQL engine and the Redis client belong to the runtime."""

    # -- internals -----------------------------------------------------------

    async def _copy(self, session: Session) -> None:
        if not self.breaker.allow():
            await self._copy_failed(session.session_id, "redis circuit open")
            return
        try:
            await self.cache.apply_copy(session)
        except asyncio.CancelledError:
            # The client went away after SQL committed: the copy is still owed.
            await asyncio.shield(self._copy_failed(session.session_id, "copy cancelled"))
            raise
        except Exception as exc:
            self.breaker.failure()
            await self._copy_failed(session.session_id, f"redis copy failed: {type(exc).__name__}")
        else:
            self.breaker.success()

    async def _copy_failed(self, session_id: str, reason: str) -> None:
        self.events.copy_failures += 1
        await self._on_copy_failed(session_id, reason)

    async def _read_repair(self, session: Session) -> None:
        if not self.breaker.allow():
            return
        try:
            if await self.cache.apply_copy(session):
                self.events.read_repairs += 1
            self.breaker.success()
        except Exception as exc:
            self.breaker.failure()
            log.debug("read-repair failed: %s", exc)
