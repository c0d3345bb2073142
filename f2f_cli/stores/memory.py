"""An in-memory session store: the contract without a server, for tests and for tools that need a scratch store.

It keeps every rule the SQL and Redis stores keep (atomic writes, version and
expiry on every write, tombstones, the ingredient limit, copies that only move
forward), so the dual store, the phase runtime and the timing wrapper can be
tested with no PostgreSQL or Redis. State lives in one process and is lost
with it: it is never a production backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

from f2f_cli.clock import Clock, utcnow
from f2f_cli.domain.ids import new_session_id
from f2f_cli.domain.model import (
    DEFAULT_MAX_INGREDIENT_LENGTH,
    Ingredient,
    Mutation,
    Session,
    normalize_ingredient,
    normalize_ingredients,
    sort_ingredients,
)
from f2f_cli.errors import SessionNotFound, TooManyIngredients

# Given the current ingredients (by name, changed in place) and the time, returns the names it changed.
_Change = Callable[[dict[str, Ingredient], datetime], tuple[str, ...]]


class MemorySessionStore:
    backend = "memory"

    def __init__(
        self,
        *,
        ttl_seconds: int,
        max_ingredients: int,
        max_ingredient_length: int = DEFAULT_MAX_INGREDIENT_LENGTH,
        clock: Clock = utcnow,
    ) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_ingredients = max_ingredients
        self.max_ingredient_length = max_ingredient_length
        self._clock = clock
        # Every state this store holds, tombstones and expired rows included (as SQL keeps them until a purge).
        self._rows: dict[str, Session] = {}

    # Each operation below runs without an await between its read and its write, so on one event
    # loop it is atomic exactly as a SQL transaction or a Lua script is.

    def _live(self, session_id: str, now: datetime) -> Session:
        row = self._rows.get(session_id)
        if row is None or row.deleted or row.expires_at <= now:
            raise SessionNotFound(f"session {session_id} not found or expired")
        return row

    async def get(self, session_id: str) -> Session:
        return self._live(session_id, self._clock())

    async def count(self) -> int:
        now = self._clock()
        return sum(1 for row in self._rows.values() if not row.deleted and row.expires_at > now)

    async def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        """Live sessions in id order (the order the SQL store pages in)."""
        for session_id in sorted(self._rows):
            row = self._rows.get(session_id)
            if row is not None and not row.deleted and row.expires_at > self._clock():
                yield row

    async def create(self) -> Session:
        now = self._clock()
        session_id = new_session_id()
        while session_id in self._rows:  # 192 random bits: never in practice, but never a silent overwrite
            session_id = new_session_id()
        session = Session(session_id, created_at=now, updated_at=now, expires_at=now + self.ttl, version=1)
        self._rows[session_id] = session
        return session

    async def touch(self, session_id: str) -> Session:
        return self._write(session_id, lambda _items, _now: ()).session

    async def add_ingredients(self, session_id: str, raw_names: Sequence[str]) -> Mutation:
        names = normalize_ingredients(raw_names, self.max_ingredient_length)  # the rules every store applies
        if not names:  # nothing asked, nothing changes: no new version, the expiry stays
            return Mutation(session=await self.get(session_id), changed=())

        def add(items: dict[str, Ingredient], now: datetime) -> tuple[str, ...]:
            added = [n for n in dict.fromkeys(names) if n not in items]
            for name in added:
                items[name] = Ingredient(name, now)
            return tuple(added)

        return self._write(session_id, add, check_limit=True)

    async def remove_ingredient(self, session_id: str, raw_name: str) -> Mutation:
        name = normalize_ingredient(raw_name, self.max_ingredient_length)

        def remove(items: dict[str, Ingredient], _now: datetime) -> tuple[str, ...]:
            return (name,) if items.pop(name, None) is not None else ()

        return self._write(session_id, remove)

    async def clear(self, session_id: str) -> Mutation:
        def clear_all(items: dict[str, Ingredient], _now: datetime) -> tuple[str, ...]:
            removed = tuple(sorted(items))
            items.clear()
            return removed

        return self._write(session_id, clear_all)

    async def delete(self, session_id: str) -> None:
        await self.delete_returning_tombstone(session_id)

    async def delete_returning_tombstone(self, session_id: str) -> Session:
        now = self._clock()
        row = self._live(session_id, now)
        # A tombstone keeps its expiry, so it outlives every copy that could still arrive.
        tombstone = Session(session_id, row.created_at, now, row.expires_at, row.version + 1, (), deleted=True)
        self._rows[session_id] = tombstone
        return tombstone

    async def read_copy(self, session_id: str) -> Session | None:
        """The unexpired state this store holds, tombstones included: what a repair copies."""
        row = self._rows.get(session_id)
        return row if row is not None and row.expires_at > self._clock() else None

    async def apply_copy(self, copy: Session) -> bool:
        if copy.expires_at <= self._clock():
            return False
        current = self._rows.get(copy.session_id)
        if current is not None and current.version >= copy.version:
            return False
        self._rows[copy.session_id] = Session(
            copy.session_id, copy.created_at, copy.updated_at, copy.expires_at, copy.version,
            () if copy.deleted else sort_ingredients(copy.ingredients), deleted=copy.deleted,
        )
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _write(self, session_id: str, change: _Change, *, check_limit: bool = False) -> Mutation:
        now = self._clock()
        row = self._live(session_id, now)
        items = {i.name: i for i in row.ingredients}
        changed = change(items, now)
        if check_limit and len(items) > self.max_ingredients:
            raise TooManyIngredients(
                f"a session holds at most {self.max_ingredients} ingredients "
                f"({len(items) - len(changed)} stored, {len(changed)} new)"
            )
        session = Session(
            session_id, row.created_at, now, now + self.ttl, row.version + 1, sort_ingredients(items.values())
        )
        self._rows[session_id] = session
        return Mutation(session=session, changed=changed)
