"""The packed copy format, held to itself across its writers and readers.

PostgreSQL renders packed copies in SQL for bulk copies (stores/copying.py), Python packs and
unpacks them (redis/codec.py) and the APPLY_COPIES Lua script applies them in Redis. A change
to any one of them without the others fails here.
"""

from __future__ import annotations

from datetime import timedelta

from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for
from f2f_cli.redis.codec import pack_copy, unpack_copy
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
