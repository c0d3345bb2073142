"""The packed copy format, held to itself across its writers and readers.

PostgreSQL renders packed copies in SQL for bulk copies (stores/copying.py), Python packs and
unpacks them (redis/codec.py) and the APPLY_COPIES Lua script applies them in Redis. A change
to any one of them without the others fails here.
"""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.redis.codec import EPOCH, pack_copy, session_from_hash, session_from_view, unpack_copy
from f2f_cli.redis.scripts import READ, READ_VIEW
from f2f_cli.stores.copying import for_each_packed_batch
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings

ODD_NAMES = ["두부", "대파 흰 부분", "tofu", "calçots", "x" * 60, "🥚 egg"]


async def test_sql_rendered_copies_unpack_to_what_the_store_holds(pg_url: str, redis_url: str,
                                                                 redis_prefix: str) -> None:
    settings = make_settings(F2F_DATABASE_URL=pg_url, F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix)
    engine = create_engine_for(settings)
    # Names up to 60 characters: the store applies F2F_MAX_INGREDIENT_LENGTH, set here above the default 50.
    sql = SqlSessionStore(engine, ttl_seconds=600, max_ingredients=100, max_ingredient_length=60)
    redis = RedisSessionStore.from_settings(settings)
    try:
        full = (await sql.create()).session_id
        await sql.add_ingredients(full, ODD_NAMES)
        empty = (await sql.create()).session_id
        gone = (await sql.create()).session_id
        await sql.add_ingredients(gone, ["김치"])
        await sql.delete(gone)
        expected = {sid: await sql.read_copy(sid) for sid in (full, empty, gone)}

        rendered: dict[str, str] = {}

        async def collect(batch: list[tuple[str, str]]) -> bool:
            rendered.update(batch)
            return True

        await for_each_packed_batch(engine, utcnow() - timedelta(seconds=1), collect, batch_size=10)
        assert set(rendered) == set(expected)
        for sid, packed in rendered.items():
            copy = expected[sid]
            assert copy is not None
            assert unpack_copy(sid, packed) == copy  # SQL's rendering reads back as the stored state
            assert unpack_copy(sid, pack_copy(copy)) == copy  # Python's packing round-trips

        # And the Lua side applies SQL's rendering to the same state.
        assert await redis.apply_packed(sorted(rendered.items())) == [1, 1, 1]
        for sid, copy in expected.items():
            assert await redis.read_copy(sid) == copy
    finally:
        await redis.close()
        await engine.dispose()


# -- the rendered read (READ_VIEW, and every write's reply) -------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    created=st.integers(0, 9_000_000_000_000),
    updated=st.integers(0, 10**10),
    expires_in=st.integers(600_000, 7_000_000_000_000),
    version=st.integers(1, 2**52),
    offsets=st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(lambda n: n[0] != " "),
        st.integers(-10**6, 10**10), max_size=8),
    deleted=st.booleans(),
)
def test_the_rendered_view_decodes_to_the_hash_exactly(
    redis_url: str, redis_prefix: str, created: int, updated: int, expires_in: int, version: int,
    offsets: dict[str, int], deleted: bool,
) -> None:
    """Redis renders the session as JSON with times as seconds and three decimals; decoded, it is the
    session the plain hash gives, to the millisecond, whatever the names hold (quotes, backslashes,
    slashes, control characters, any script) and wherever the times fall."""
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}:s:{{{'v' * 32}}}"
    expires = int(time.time() * 1000) + expires_in  # an expiry in the past would delete the key
    try:
        client.delete(key)
        fields: dict[str, object] = {" v": version, " c": created, " u": updated, **offsets}
        if deleted:
            fields[" d"] = 1
        client.hset(key, mapping=fields)
        client.pexpireat(key, expires)
        rendered = client.eval(READ_VIEW, 1, key)
        flat, expires_ms = client.eval(READ, 1, key)
    finally:
        client.delete(key)
        client.close()
    view = session_from_view("v" * 32, rendered)
    assert view == session_from_hash("v" * 32, flat, int(expires_ms))
    assert view.created_at == EPOCH + timedelta(milliseconds=created)
    assert view.expires_at == EPOCH + timedelta(milliseconds=expires)
    assert [i.added_at for i in view.ingredients] == sorted(
        EPOCH + timedelta(milliseconds=created + off) for off in offsets.values())
    assert view.version == version and view.deleted == deleted


def test_a_missing_or_unexpiring_key_renders_nothing(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}:s:{{{'w' * 32}}}"
    try:
        assert client.eval(READ_VIEW, 1, key) is None
        client.hset(key, mapping={" v": 1, " c": 0, " u": 0})
        assert client.eval(READ_VIEW, 1, key) is None  # no expiry: not a session f2f wrote
    finally:
        client.delete(key)
        client.close()
