"""A store for a phase whose backend is not configured: every call is a clean 503, never a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import NoReturn

from f2f_cli.domain.model import Mutation, Session
from f2f_cli.errors import StoreUnavailable


class UnavailableStore:
    """Implements ``SessionStore``; each operation raises ``StoreUnavailable`` with the reason."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason

    def _fail(self) -> NoReturn:
        raise StoreUnavailable(self.reason)

    async def create(self) -> Session:
        self._fail()

    async def get(self, session_id: str) -> Session:
        self._fail()

    async def delete(self, session_id: str) -> None:
        self._fail()

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        self._fail()

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        self._fail()

    async def clear(self, session_id: str) -> Mutation:
        self._fail()

    async def touch(self, session_id: str) -> Session:
        self._fail()

    async def count(self) -> int:
        self._fail()

    async def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        self._fail()
        yield  # pragma: no cover - makes this an async generator, as the protocol expects

    async def apply_copy(self, copy: Session) -> bool:
        self._fail()

    async def read_copy(self, session_id: str) -> Session | None:
        self._fail()

    async def ping(self) -> None:
        self._fail()

    async def close(self) -> None:
        return None
