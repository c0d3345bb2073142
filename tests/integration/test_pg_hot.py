"""The PostgreSQL request path of the SQL store (psycopg pool, ``f2f_session_write``): what the contract suite
cannot see from outside: the migration that carries the function, and failures turned into clean errors."""

from __future__ import annotations

import psycopg
import pytest

from f2f_cli.db import migrate as schema
from f2f_cli.errors import StoreUnavailable
from f2f_cli.stores.pg_hot import conninfo
from f2f_cli.stores.sql import open_sql_store
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def _has_function(url: str) -> bool:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'f2f_session_write'").fetchone()
        assert row is not None
        return int(row[0]) == 1


def test_migration_0004_adds_and_drops_the_write_function(empty_pg_url: str) -> None:
    schema.upgrade(empty_pg_url)
    assert _has_function(empty_pg_url)
    schema.downgrade(empty_pg_url, "0003")
    assert not _has_function(empty_pg_url)
    schema.upgrade(empty_pg_url)
    assert _has_function(empty_pg_url)


def test_migration_0004_is_a_no_op_on_sqlite(sqlite_url: str) -> None:
    schema.downgrade(sqlite_url, "0003")
    schema.upgrade(sqlite_url)
    assert schema.state(sqlite_url).at_head


async def test_an_unreachable_database_is_a_clean_503() -> None:
    # Nothing listens on port 1 of loopback: every pooled connection attempt fails at once.
    settings = make_settings(F2F_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", F2F_DB_POOL_SIZE="1")
    store = await open_sql_store(settings)
    try:
        store._hot.pool.timeout = 0.5  # type: ignore[union-attr]  # fail fast in the test, not the 5 s default
        with pytest.raises(StoreUnavailable, match="SQL database unavailable"):
            await store.get("a" * 32)
        with pytest.raises(StoreUnavailable):
            await store.add_ingredients("a" * 32, ["두부"])
    finally:
        await store.close()


async def test_the_write_function_missing_is_a_clean_error(empty_pg_url: str) -> None:
    schema.upgrade(empty_pg_url, "0003")  # a database one revision behind: no f2f_session_write
    store = await open_sql_store(make_settings(F2F_DATABASE_URL=empty_pg_url))
    try:
        created = await store.create()
        with pytest.raises(StoreUnavailable):
            await store.add_ingredients(created.session_id, ["두부"])
        assert (await store.get(created.session_id)).version == 1  # nothing half-applied
    finally:
        await store.close()
