"""A store wrapper that times every operation and hands the figures to an observer.

The core knows nothing of Prometheus: the API passes an observer that feeds
its histograms. The backend label is asked of ``backend_of`` at each call, so
a wrapper around the phase facade reports sql, dual or redis as the phase moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager

from f2f_cli.domain.model import Mutation, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError

# (backend, operation, outcome, seconds); outcome is "ok", an F2FError code, "cancelled" or "error".
StoreObserver = Callable[[str, str, str, float], None]


class TimedStore:
    def __init__(self, inner: SessionStore, observer: StoreObserver, backend_of: Callable[[], str]) -> None:
        self.backend = inner.backend
        self._inner = inner
        self._observe = observer
        self._backend_of = backend_of

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        backend = self._backend_of()
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except F2FError as exc:
            outcome = exc.code
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._observe(backend, operation, outcome, time.perf_counter() - started)

    async def create(self) -> Session:
        with self._timed("create"):
            return await self._inner.create()

    async def get(self, session_id: str) -> Session:
        with self._timed("get"):
            return await self._inner.get(session_id)

    async def delete(self, session_id: str) -> None:
        with self._timed("delete"):
            await self._inner.delete(session_id)

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        with self._timed("add_ingredients"):
            return await self._inner.add_ingredients(session_id, names)

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        with self._timed("remove_ingredient"):
            return await self._inner.remove_ingredient(session_id, name)

    async def clear(self, session_id: str) -> Mutation:
        with self._timed("clear"):
            return await self._inner.clear(session_id)

    async def touch(self, session_id: str) -> Session:
        with self._timed("touch"):
            return await self._inner.touch(session_id)

    async def count(self) -> int:
        with self._timed("count"):
            return await self._inner.count()

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        return self._inner.iter_sessions(batch_size)

    async def apply_copy(self, copy: Session) -> bool:
        with self._timed("apply_copy"):
            return await self._inner.apply_copy(copy)

    async def read_copy(self, session_id: str) -> Session | None:
        with self._timed("read_copy"):
            return await self._inner.read_copy(session_id)

    async def ping(self) -> None:
        with self._timed("ping"):
            await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
