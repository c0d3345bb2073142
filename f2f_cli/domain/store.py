"""The ``SessionStore`` protocol every backend (SQL, Redis, dual) implements.

Contract (tests/integration/test_store_contract.py checks it on every backend):
- every write is atomic, increments ``version`` by one and slides ``expires_at``
  to now + TTL;
- an expired or deleted session is invisible: reads and writes raise
  ``SessionNotFound`` even before any purge;
- ``add_ingredients`` adds only absent names and raises ``TooManyIngredients``
  (changing nothing) when the result would exceed the limit;
- ``apply_copy`` stores a full-state copy (or tombstone) made by the other
  store only if it is newer than what this store holds, and says if it did;
  ``read_copy`` is the other half: the unexpired state held, tombstones
  included, or None. Every copy between stores (backfill, repair, restore,
  the backup worker, operator tools) is these two operations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from f2f_cli.domain.model import Mutation, Session


@runtime_checkable
class SessionStore(Protocol):
    backend: str

    async def create(self) -> Session: ...

    async def get(self, session_id: str) -> Session: ...

    async def delete(self, session_id: str) -> None: ...

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation: ...

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation: ...

    async def clear(self, session_id: str) -> Mutation: ...

    async def touch(self, session_id: str) -> Session: ...

    async def count(self) -> int: ...

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]: ...

    async def apply_copy(self, copy: Session) -> bool: ...

    async def read_copy(self, session_id: str) -> Session | None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class AuthorityStore(SessionStore, Protocol):
    """A store that can be the version authority of the dual phases (SQL; the in-memory store in tests).

    A delete there must hand back its tombstone: the copy the other store needs so the delete wins there too.
    """

    async def delete_returning_tombstone(self, session_id: str) -> Session: ...
