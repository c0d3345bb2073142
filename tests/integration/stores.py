"""Store factories for the contract suite: one entry per backend.

Each factory takes the pytest request (to reach other fixtures) and the limits
to use, and yields a ready ``SessionStore`` that it cleans up afterwards.
Add a backend here and the whole contract suite runs against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from f2f_cli.db.engine import create_engine_for
from f2f_cli.sessions.sql import SqlSessionStore
from f2f_cli.sessions.store import SessionStore
from tests.conftest import make_settings

StoreCM = AbstractAsyncContextManager[SessionStore]
StoreFactory = Callable[[pytest.FixtureRequest, int, int], StoreCM]


@asynccontextmanager
async def _sql(url: str, ttl: int, max_ingredients: int) -> AsyncIterator[SessionStore]:
    settings = make_settings(F2F_DATABASE_URL=url)
    engine = create_engine_for(settings)
    try:
        yield SqlSessionStore(engine, ttl_seconds=ttl, max_ingredients=max_ingredients)
    finally:
        await engine.dispose()


def sqlite_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _sql(request.getfixturevalue("sqlite_url"), ttl, max_ingredients)


def postgres_store(request: pytest.FixtureRequest, ttl: int, max_ingredients: int) -> StoreCM:
    return _sql(request.getfixturevalue("pg_url"), ttl, max_ingredients)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": sqlite_store,
    "postgres": postgres_store,
}
