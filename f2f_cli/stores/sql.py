"""The SQL session store (PostgreSQL or SQLite).

Every write is one transaction that starts by bumping the session row
(``version + 1``, sliding ``expires_at``). That UPDATE takes the row lock, so
concurrent writes to one session queue behind each other and the limit check
that follows sees a stable ingredient set, on PostgreSQL and SQLite alike.

Two ways to run the request path, one contract:
- opened with :func:`open_sql_store` on PostgreSQL, ``get``, ``add_ingredients``,
  ``remove_ingredient``, ``clear`` and ``touch`` are single round trips through a
  psycopg pool with prepared statements (``pg_hot``);
- otherwise (SQLite, the embedded default, or a store built on a bare engine by a
  cold-path tool) the same steps run as one SQLAlchemy Core transaction.
Everything else (create, delete, copies, listing, counting) is SQLAlchemy Core.

Names are checked and normalised here exactly as the Redis store does
(``normalize_ingredient(s)``), so no caller can store a name a copy to Redis would refuse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, and_, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.clock import Clock, utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.ids import check_session_id, new_session_id
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
from f2f_cli.settings import Settings

if TYPE_CHECKING:
    from f2f_cli.stores.pg_hot import PgHotPath

_Change = Callable[[AsyncConnection, datetime], Awaitable[tuple[str, ...]]]


def _live(now: datetime) -> Any:
    return and_(sessions_t.c.expires_at > now, sessions_t.c.deleted_at.is_(None))


# One statement (a join), so the session row and its ingredients come from the
# same snapshot even under READ COMMITTED. Built once: constructing it per call
# cost more than the database round trip.
_GET = (
    select(
        sessions_t.c.session_id,
        sessions_t.c.created_at,
        sessions_t.c.updated_at,
        sessions_t.c.expires_at,
        sessions_t.c.version,
        ingredients_t.c.name,
        ingredients_t.c.added_at,
    )
    .select_from(sessions_t.outerjoin(ingredients_t, ingredients_t.c.session_id == sessions_t.c.session_id))
    .where(
        sessions_t.c.session_id == bindparam("session_id"),
        sessions_t.c.expires_at > bindparam("now", type_=sessions_t.c.expires_at.type),
        sessions_t.c.deleted_at.is_(None),
    )
)


class SqlSessionStore:
    """``SessionStore`` over the ``fridge_sessions`` tables."""

    backend = "sql"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_seconds: int,
        max_ingredients: int,
        max_ingredient_length: int = DEFAULT_MAX_INGREDIENT_LENGTH,
        clock: Clock = utcnow,
        hot: PgHotPath | None = None,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_ingredients = max_ingredients
        self.max_ingredient_length = max_ingredient_length
        self._clock = clock
        self._hot = hot
        self._owns_engine = owns_engine
        # The read is one statement, so autocommit sees the same single snapshot a
        # transaction would, without the BEGIN and ROLLBACK round trips around it.
        self._read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # -- reads ---------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        check_session_id(session_id)
        if self._hot is not None:
            return _session_from_join(session_id, await self._hot.get(session_id, self._clock()))
        with translate_db_errors():
            async with self._read_engine.connect() as conn:
                rows = (await conn.execute(_GET, {"session_id": session_id, "now": self._clock()})).all()
        if not rows:
            raise SessionNotFound(f"session {session_id} not found or expired")
        first = rows[0]
        return Session(
            session_id=first.session_id,
            created_at=first.created_at,
            updated_at=first.updated_at,
            expires_at=first.expires_at,
            version=first.version,
            ingredients=sort_ingredients(Ingredient(r.name, r.added_at) for r in rows if r.name is not None),
        )

    async def count(self) -> int:
        with translate_db_errors():
            async with self.engine.connect() as conn:
                total = await conn.scalar(select(func.count()).select_from(sessions_t).where(_live(self._clock())))
        return int(total or 0)

    async def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        """Live sessions in id order, a page at a time (keyset pagination: bounded memory)."""
        after = ""
        while True:
            now = self._clock()
            with translate_db_errors():
                async with self.engine.connect() as conn:
                    heads = (
                        await conn.execute(
                            select(sessions_t)
                            .where(sessions_t.c.session_id > after, _live(now))
                            .order_by(sessions_t.c.session_id)
                            .limit(batch_size)
                        )
                    ).all()
                    if not heads:
                        return
                    ids = [h.session_id for h in heads]
                    items: dict[str, list[Ingredient]] = {i: [] for i in ids}
                    for r in await conn.execute(
                        select(ingredients_t).where(ingredients_t.c.session_id.in_(ids))
                    ):
                        items[r.session_id].append(Ingredient(r.name, r.added_at))
            for h in heads:
                yield session_from_row(h, items[h.session_id])
            after = ids[-1]

    # -- writes --------------------------------------------------------------

    async def create(self) -> Session:
        now = self._clock()
        session = Session(
            session_id=new_session_id(),
            created_at=now,
            updated_at=now,
            expires_at=now + self.ttl,
            version=1,
        )
        with translate_db_errors():
            async with self.engine.begin() as conn:
                await conn.execute(
                    sessions_t.insert().values(
                        session_id=session.session_id,
                        created_at=now,
                        updated_at=now,
                        expires_at=session.expires_at,
                        version=1,
                    )
                )
        return session

    async def touch(self, session_id: str) -> Session:
        check_session_id(session_id)
        if self._hot is not None:
            return (await self._hot_write("t", session_id)).session
        return (await self._write(session_id, _no_change)).session

    async def add_ingredients(self, session_id: str, raw_names: Sequence[str]) -> Mutation:
        check_session_id(session_id)
        names = normalize_ingredients(raw_names, self.max_ingredient_length)
        if not names:  # nothing asked, nothing changes: no new version, the expiry stays (as every store)
            return Mutation(session=await self.get(session_id), changed=())
        if self._hot is not None:
            return await self._hot_write("a", session_id, names)

        async def add(conn: AsyncConnection, now: datetime) -> tuple[str, ...]:
            if not names:
                return ()
            stmt = (
                self._insert(ingredients_t)
                .values([{"session_id": session_id, "name": n, "added_at": now} for n in names])
                .on_conflict_do_nothing(index_elements=["session_id", "name"])
                .returning(ingredients_t.c.name)
            )
            added = {r.name for r in await conn.execute(stmt)}
            return tuple(n for n in names if n in added)

        return await self._write(session_id, add, check_limit=True)

    async def remove_ingredient(self, session_id: str, raw_name: str) -> Mutation:
        check_session_id(session_id)
        name = normalize_ingredient(raw_name, self.max_ingredient_length)
        if self._hot is not None:
            return await self._hot_write("r", session_id, (name,))

        async def remove(conn: AsyncConnection, _now: datetime) -> tuple[str, ...]:
            stmt = (
                delete(ingredients_t)
                .where(ingredients_t.c.session_id == session_id, ingredients_t.c.name == name)
                .returning(ingredients_t.c.name)
            )
            return tuple(r.name for r in await conn.execute(stmt))

        return await self._write(session_id, remove)

    async def clear(self, session_id: str) -> Mutation:
        check_session_id(session_id)
        if self._hot is not None:
            return await self._hot_write("x", session_id)

        async def clear_all(conn: AsyncConnection, _now: datetime) -> tuple[str, ...]:
            stmt = delete(ingredients_t).where(ingredients_t.c.session_id == session_id).returning(ingredients_t.c.name)
            return tuple(sorted(r.name for r in await conn.execute(stmt)))

        return await self._write(session_id, clear_all)

    async def delete(self, session_id: str) -> None:
        await self.delete_returning_tombstone(session_id)

    async def delete_returning_tombstone(self, session_id: str) -> Session:
        """Turn the session into a tombstone (no ingredients, a new version, invisible) and return it.

        The tombstone is the copy the other store must receive so the delete wins there too.
        """
        now = self._clock()
        with translate_db_errors():
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        update(sessions_t)
                        .where(sessions_t.c.session_id == session_id, _live(now))
                        .values(version=sessions_t.c.version + 1, updated_at=now, deleted_at=now)
                        .returning(sessions_t)
                    )
                ).first()
                if row is None:
                    raise SessionNotFound(f"session {session_id} not found or expired")
                await conn.execute(delete(ingredients_t).where(ingredients_t.c.session_id == session_id))
        return session_from_row(row, [])

    async def read_copy(self, session_id: str) -> Session | None:
        """The unexpired state this store holds, tombstones included: what a repair copies."""
        now = self._clock()
        # One statement, so one snapshot: under READ COMMITTED a second query for the ingredients could
        # see a later write than the row's version (a torn copy that verify and repair would act on).
        query = (
            select(sessions_t, ingredients_t.c.name.label("item_name"), ingredients_t.c.added_at.label("item_at"))
            .select_from(sessions_t.outerjoin(ingredients_t, ingredients_t.c.session_id == sessions_t.c.session_id))
            .where(sessions_t.c.session_id == session_id, sessions_t.c.expires_at > now)
        )
        with translate_db_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        if not rows:
            return None
        return session_from_row(rows[0], [Ingredient(r.item_name, r.item_at) for r in rows if r.item_name is not None])

    async def apply_copy(self, copy: Session) -> bool:
        """Store a full-state copy (or tombstone) made by the version authority, if newer."""
        if copy.expires_at <= self._clock():
            return False
        values = {
            "session_id": copy.session_id,
            "created_at": copy.created_at,
            "updated_at": copy.updated_at,
            "expires_at": copy.expires_at,
            "version": copy.version,
            "deleted_at": copy.updated_at if copy.deleted else None,
        }
        stmt = self._insert(sessions_t).values(values)
        upsert = stmt.on_conflict_do_update(
            index_elements=["session_id"],
            set_={k: stmt.excluded[k] for k in values if k != "session_id"},
            where=sessions_t.c.version < stmt.excluded.version,
        ).returning(sessions_t.c.session_id)
        with translate_db_errors():
            async with self.engine.begin() as conn:
                if (await conn.execute(upsert)).first() is None:
                    return False
                await conn.execute(delete(ingredients_t).where(ingredients_t.c.session_id == copy.session_id))
                if copy.ingredients and not copy.deleted:
                    await conn.execute(
                        ingredients_t.insert(),
                        [
                            {"session_id": copy.session_id, "name": i.name, "added_at": i.added_at}
                            for i in copy.ingredients
                        ],
                    )
        return True

    async def discard(self, session_id: str) -> None:
        """Remove the row outright, no tombstone: for operator repair of a diverged copy."""
        with translate_db_errors():
            async with self.engine.begin() as conn:
                await conn.execute(delete(sessions_t).where(sessions_t.c.session_id == session_id))

    async def ping(self) -> None:
        with translate_db_errors():
            async with self.engine.connect() as conn:
                await conn.execute(select(literal(1)))

    async def open(self) -> None:
        """Start the psycopg pool of the request path (PostgreSQL); connections open in the background."""
        if self._hot is not None:
            await self._hot.open()

    async def close(self) -> None:
        """Close the psycopg pool, and the engine when this store made it (``open_sql_store``)."""
        if self._hot is not None:
            await self._hot.close()
        if self._owns_engine:
            await self.engine.dispose()

    # -- internals -----------------------------------------------------------

    async def _hot_write(self, op: str, session_id: str, names: Sequence[str] = ()) -> Mutation:
        """One call of ``f2f_session_write`` (see ``pg_hot``): the change and the new state in one round trip."""
        assert self._hot is not None
        from f2f_cli.stores.pg_hot import LimitExceeded

        now = self._clock()
        expires_at = now + self.ttl
        try:
            rows = await self._hot.write(op, session_id, names, now, expires_at, self.max_ingredients)
        except LimitExceeded as exc:
            raise TooManyIngredients(
                f"a session holds at most {self.max_ingredients} ingredients (it has {exc.stored})"
            ) from None
        if not rows:
            raise SessionNotFound(f"session {session_id} not found or expired")
        created_at, version = rows[0][0], rows[0][1]
        items: list[Ingredient] = []
        changed: list[str] = []
        for _c, _v, name, added_at, was_changed in rows:
            if name is None:
                continue
            if added_at is not None:
                items.append(Ingredient(name, added_at))
            if was_changed:
                changed.append(name)
        if op == "a":
            done = set(changed)
            changed = [n for n in names if n in done]  # the caller's order, as the other stores report it
        else:
            changed.sort()
        session = Session(
            session_id=session_id, created_at=created_at, updated_at=now, expires_at=expires_at,
            version=version, ingredients=sort_ingredients(items),
        )
        return Mutation(session=session, changed=tuple(changed))

    async def _write(self, session_id: str, change: _Change, *, check_limit: bool = False) -> Mutation:
        now = self._clock()
        expires_at = now + self.ttl
        with translate_db_errors():
            async with self.engine.begin() as conn:
                head = (
                    await conn.execute(
                        update(sessions_t)
                        .where(sessions_t.c.session_id == session_id, _live(now))
                        .values(version=sessions_t.c.version + 1, updated_at=now, expires_at=expires_at)
                        .returning(sessions_t.c.created_at, sessions_t.c.version)
                    )
                ).first()
                if head is None:
                    raise SessionNotFound(f"session {session_id} not found or expired")
                changed = await change(conn, now)
                rows = (
                    await conn.execute(
                        select(ingredients_t.c.name, ingredients_t.c.added_at).where(
                            ingredients_t.c.session_id == session_id
                        )
                    )
                ).all()
                if check_limit and len(rows) > self.max_ingredients:
                    # Raising inside begin() rolls the whole write back.
                    raise TooManyIngredients(
                        f"a session holds at most {self.max_ingredients} ingredients "
                        f"({len(rows) - len(changed)} stored, {len(changed)} new)"
                    )
        session = Session(
            session_id=session_id,
            created_at=head.created_at,
            updated_at=now,
            expires_at=expires_at,
            version=head.version,
            ingredients=sort_ingredients(Ingredient(r.name, r.added_at) for r in rows),
        )
        return Mutation(session=session, changed=changed)


async def _no_change(_conn: AsyncConnection, _now: datetime) -> tuple[str, ...]:
    return ()


def _session_from_join(session_id: str, rows: Sequence[tuple[Any, ...]]) -> Session:
    """A ``Session`` from the rows of ``pg_hot.GET`` (already in ``sort_ingredients`` order)."""
    if not rows:
        raise SessionNotFound(f"session {session_id} not found or expired")
    created_at, updated_at, expires_at, version = rows[0][:4]
    return Session(
        session_id=session_id,
        created_at=created_at,
        updated_at=updated_at,
        expires_at=expires_at,
        version=version,
        ingredients=tuple(Ingredient(r[4], r[5]) for r in rows if r[4] is not None),
    )


def sql_store_for(settings: Settings, *, engine: AsyncEngine | None = None, clock: Clock = utcnow
                  ) -> SqlSessionStore:
    """The SQL store for ``settings``, not yet connected: ``await store.open()`` in the event loop, then
    ``close()`` it when done (:func:`open_sql_store` does both first steps).

    On PostgreSQL the store carries the psycopg pool of the request path (``F2F_DB_POOL_SIZE``
    connections at most) and owns it. It owns the SQLAlchemy engine too unless one is passed in
    (then the caller disposes of it).
    """
    owns_engine = engine is None
    engine = engine if engine is not None else create_engine_for(settings)
    hot: PgHotPath | None = None
    if engine.dialect.name == "postgresql":
        from f2f_cli.stores.pg_hot import PgHotPath, make_pool

        hot = PgHotPath(make_pool(settings.database_url, settings.db_pool_size))
    return SqlSessionStore(
        engine,
        ttl_seconds=settings.session_ttl_seconds,
        max_ingredients=settings.max_ingredients,
        max_ingredient_length=settings.max_ingredient_length,
        clock=clock,
        hot=hot,
        owns_engine=owns_engine,
    )


async def open_sql_store(settings: Settings, *, engine: AsyncEngine | None = None, clock: Clock = utcnow
                         ) -> SqlSessionStore:
    """:func:`sql_store_for`, opened: the one way an entry point gets a ready SQL store."""
    store = sql_store_for(settings, engine=engine, clock=clock)
    await store.open()
    return store


def session_from_row(head: Row[Any] | Any, items: Iterable[Ingredient] = ()) -> Session:
    """A ``Session`` from a ``fridge_sessions`` row and its ingredients (tombstones included)."""
    return Session(
        session_id=head.session_id,
        created_at=head.created_at,
        updated_at=head.updated_at,
        expires_at=head.expires_at,
        version=head.version,
        ingredients=sort_ingredients(items),
        deleted=head.deleted_at is not None,
    )
