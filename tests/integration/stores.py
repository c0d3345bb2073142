"""Store factories for the contract suite: one entry per backend.

Each factory takes the pytest request (to reach other fixtures) and the limits
to use, and yields a ready ``SessionStore`` that it cleans up afterwards.
Add a backend here and the whole contract suite runs against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.store import SessionStore
from f2f_cli.stores.memory import MemorySessionStore
from f2f_cli.stores.sql import SqlSessionStore, open_sql_store
from tests.clock import ShiftedClock
from tests.conftest import make_settings

StoreCM = AbstractAsyncContextManager[SessionStore]
StoreFactory = Callable[[pytest.FixtureRequest, int, int], StoreCM]


@asynccontextmanager
async def _sql(
    url: str, ttl: int, max_ingredients: int, clock: ShiftedClock | None = None
) -> AsyncIterator[SessionStore]:
    """The store as every entry point opens it (``Backends``): on PostgreSQL the psycopg request path."""
    settings = make_settings(
        F2F_DATABASE_URL=url, F2F_SESSION_TTL_SECONDS=str(ttl), F2F_MAX_INGREDIENTS=str(max_ingredients)
    )
    store = await open_sql_store(settings, clock=clock or utcnow)
    if clock is not None:
        store.test_clock = clock  # type: ignore[attr-defined]  # read by tests.clock.wait
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _sql_core(url: str, ttl: int, max_ingredients: int) -> AsyncIterator[SessionStore]:
    """The store on a bare engine (no psycopg pool): every operation through SQLAlchemy Core."""
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=url))
    try:
        yield SqlSessionStore(engine, ttl_seconds=ttl, max_ingredients=max_ingredients)
    finally:
        await engine.dispose()


def sqlite_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    # SQLite compares expiry with the store's clock, so expiry tests need not sleep.
    return _sql(request.getfixturevalue("sqlite_url"), ttl, max_ingredients, ShiftedClock())


def postgres_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _sql(request.getfixturevalue("pg_url"), ttl, max_ingredients)


def postgres_core_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _sql_core(request.getfixturevalue("pg_url"), ttl, max_ingredients)


@asynccontextmanager
async def _dual(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> AsyncIterator[SessionStore]:
    """SQL (PostgreSQL) as the authority, the shared Redis receiving copies, reads from Redis."""
    from f2f_cli.control import phase
    from f2f_cli.stores.breaker import CircuitBreaker
    from f2f_cli.stores.dual import DualSessionStore
    from f2f_cli.stores.redis import RedisSessionStore

    pg = request.getfixturevalue("pg_url")
    settings = make_settings(
        F2F_DATABASE_URL=pg,
        F2F_REDIS_URL=request.getfixturevalue("redis_url"),
        F2F_REDIS_KEY_PREFIX=request.getfixturevalue("redis_prefix"),
        F2F_SESSION_TTL_SECONDS=str(ttl),
        F2F_MAX_INGREDIENTS=str(max_ingredients),
        F2F_REDIS_COMMAND_TIMEOUT="5",
    )
    engine = create_engine_for(settings)
    cache = RedisSessionStore.from_settings(settings)
    sql = await open_sql_store(settings, engine=engine)

    async def copy_failed(session_id: str, reason: str) -> None:
        await phase.mark_redis_untrusted(engine, session_id, reason)

    try:
        yield DualSessionStore(sql, cache, read_from_cache=True, breaker=CircuitBreaker(), on_copy_failed=copy_failed)
    finally:
        await cache.close()
        await sql.close()
        await engine.dispose()


def dual_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _dual(request, ttl, max_ingredients)


@asynccontextmanager
async def _memory(ttl: int, max_ingredients: int) -> AsyncIterator[SessionStore]:
    clock = ShiftedClock()
    store = MemorySessionStore(ttl_seconds=ttl, max_ingredients=max_ingredients, clock=clock)
    store.test_clock = clock  # type: ignore[attr-defined]  # read by tests.clock.wait
    yield store


def memory_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _memory(ttl, max_ingredients)


@asynccontextmanager
async def _memory_dual(ttl: int, max_ingredients: int) -> AsyncIterator[SessionStore]:
    """The dual store's logic with no server: an in-memory authority and an in-memory cache."""
    from f2f_cli.stores.breaker import CircuitBreaker
    from f2f_cli.stores.dual import DualSessionStore

    clock = ShiftedClock()
    authority = MemorySessionStore(ttl_seconds=ttl, max_ingredients=max_ingredients, clock=clock)
    cache = MemorySessionStore(ttl_seconds=ttl, max_ingredients=max_ingredients, clock=clock)

    async def copy_failed(_session_id: str, _reason: str) -> None:
        raise AssertionError("an in-memory copy never fails")

    store = DualSessionStore(authority, cache, read_from_cache=True, breaker=CircuitBreaker(),
                             on_copy_failed=copy_failed)
    store.test_clock = clock  # type: ignore[attr-defined]  # read by tests.clock.wait
    yield store


def memory_dual_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _memory_dual(ttl, max_ingredients)


@asynccontextmanager
async def _redis(
    request: pytest.FixtureRequest, mode: str, ttl: int, max_ingredients: int, backup: bool = False
) -> AsyncIterator[SessionStore]:
    """The Redis store alone: the shared Redis, or this suite's own Cluster / Sentinel servers;
    ``backup`` is the store of the redis phase (each write also appends to the backup stream)."""
    from f2f_cli.stores.redis import RedisSessionStore
    from tests.integration.conftest import redis_url_for

    settings = make_settings(
        F2F_REDIS_URL=redis_url_for(request, mode),
        F2F_REDIS_KEY_PREFIX=request.getfixturevalue("redis_prefix"),
        F2F_SESSION_TTL_SECONDS=str(ttl),
        F2F_MAX_INGREDIENTS=str(max_ingredients),
        F2F_REDIS_COMMAND_TIMEOUT="5",
        F2F_REDIS_CONNECT_TIMEOUT="5",
    )
    store = RedisSessionStore.from_settings(settings, backup_stream=backup)
    try:
        yield store
    finally:
        await store.close()


def redis_store_factory(mode: str, *, backup: bool = False) -> StoreFactory:
    def factory(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
        return _redis(request, mode, ttl, max_ingredients, backup)

    return factory


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "memory-dual": memory_dual_store,
    "sqlite": sqlite_store,
    "postgres": postgres_store,
    "postgres-core": postgres_core_store,
    "dual": dual_store,
    "redis": redis_store_factory("standalone"),
    "redis-cluster": redis_store_factory("cluster"),
    "redis-sentinel": redis_store_factory("sentinel"),
    "redis-phase": redis_store_factory("standalone", backup=True),
}
