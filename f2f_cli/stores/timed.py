"""A store wrapper that times every operation and hands the figures to an observer.

The core knows nothing of Prometheus: the API passes an observer that feeds
its histograms. The backend label is asked of ``backend_of`` at each call, so
a wrapper around the phase facade reports sql, dual or redis as the phase moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from f2f_cli import tracing
from f2f_cli.domain.model import Mutation, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError

# (backend, operation, outcome, seconds); outcome is "ok", an F2FError code, "cancelled" or "error".
StoreObserver = Callable[[str, str, str, float], None]
T = TypeVar("T")


class TimedStore:
    def __init__(self, inner: SessionStore, observer: StoreObserver, backend_of: Callable[[], str]) -> None:
        self.backend = inner.backend
        self._inner = inner
        self._observe = observer
        self._backend_of = backend_of
        # Whether OTEL_* turned tracing on before this store was made (the app starts it first).
        self._traced = tracing.current() is not None

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        if self._traced:
            # The store call as a child of the request span; the Redis commands and SQL statements nest in it.
            with tracing.span(f"store.{operation}", **{"f2f.store.backend": self._backend_of()}):
                return await self._measured(operation, call)
        return await self._measured(operation, call)

    async def _measured(self, operation: str, call: Awaitable[T]) -> T:
        # A plain try/finally: a @contextmanager generator cost more than the bookkeeping itself.
        backend = self._backend_of()
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call
            outcome = "ok"
            return result
        except F2FError as exc:
            outcome = exc.code
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._observe(backend, operation, outcome, time.perf_counter() - started)

    async def create(self) -> Session:
        return await self._timed("create", self._inner.create())

    async def get(self, session_id: str) -> Session:
        return await self._timed("get", self._inner.get(session_id))

    async def delete(self, session_id: str) -> None:
        await self._timed("delete", self._inner.delete(session_id))

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        return await self._timed("add_ingredients", self._inner.add_ingredients(session_id, names))

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        return await self._timed("remove_ingredient", self._inner.remove_ingredient(session_id, name))

    async def clear(self, session_id: str) -> Mutation:
        return await self._timed("clear", self._inner.clear(session_id))

    async def touch(self, session_id: str) -> Session:
        return await self._timed("touch", self._inner.touch(session_id))

    async def count(self) -> int:
        return await self._timed("count", self._inner.count())

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        return self._inner.iter_sessions(batch_size)

    async def apply_copy(self, copy: Session) -> bool:
        return await self._timed("apply_copy", self._inner.apply_copy(copy))

    async def read_copy(self, session_id: str) -> Session | None:
        return await self._timed("read_copy", self._inner.read_copy(session_id))

    async def ping(self) -> None:
        await self._timed("ping", self._inner.ping())

    async def close(self) -> None:
        await self._inner.close()
