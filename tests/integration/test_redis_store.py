"""The SessionStore contract on Redis standalone, a real 3-node Cluster and Sentinel."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st
from redis.crc import key_slot

from f2f_cli.clock import utcnow
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import InvalidSessionId, SessionNotFound, StoreUnavailable, TooManyIngredients
from f2f_cli.redis.codec import session_from_entry
from f2f_cli.redis.keys import BACKUP_GROUP
from f2f_cli.redis.node_streams import NodeStreams
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore

pytestmark = pytest.mark.redis


def _ttl(store: RedisSessionStore) -> timedelta:
    return timedelta(milliseconds=store._ttl_ms)


async def test_is_a_session_store(redis_store: RedisSessionStore) -> None:
    assert isinstance(redis_store, SessionStore)
    await redis_store.ping()


async def test_create_get_and_every_write_bumps_version_and_slides_expiry(redis_store: RedisSessionStore) -> None:
    created = await redis_store.create()
    assert created.version == 1
    assert created.ingredients == ()
    assert created.expires_at == created.updated_at + _ttl(redis_store)
    assert await redis_store.get(created.session_id) == created

    added = await redis_store.add_ingredients(created.session_id, ["계란", " 대파 ", "계란", "두부"])
    assert added.changed == ("계란", "대파", "두부")
    assert added.session.version == 2
    assert added.session.names == {"계란", "대파", "두부"}

    again = await redis_store.add_ingredients(created.session_id, ["계란", "김치"])
    assert again.changed == ("김치",)
    assert again.session.version == 3

    removed = await redis_store.remove_ingredient(created.session_id, "대파")
    assert removed.changed == ("대파",)
    assert "대파" not in removed.session.names
    absent = await redis_store.remove_ingredient(created.session_id, "없는재료")
    assert absent.changed == ()
    assert absent.session.version == 5

    touched = await redis_store.touch(created.session_id)
    assert touched.version == 6
    assert touched.expires_at == touched.updated_at + _ttl(redis_store)
    assert touched.expires_at >= removed.session.expires_at

    cleared = await redis_store.clear(created.session_id)
    assert set(cleared.changed) == {"계란", "두부", "김치"}
    assert cleared.session.ingredients == ()
    assert cleared.session.version == 7
    assert await redis_store.get(created.session_id) == cleared.session


async def test_ingredients_keep_added_at_in_order(redis_store: RedisSessionStore) -> None:
    s = await redis_store.create()
    first = await redis_store.add_ingredients(s.session_id, ["양파"])
    second = await redis_store.add_ingredients(s.session_id, ["감자"])
    by_name = {i.name: i.added_at for i in second.session.ingredients}
    assert by_name["양파"] == first.session.ingredients[0].added_at
    assert by_name["양파"] <= by_name["감자"]
    assert list(second.session.ingredients) == sorted(second.session.ingredients, key=lambda i: (i.added_at, i.name))


async def test_unknown_and_malformed_ids(redis_store: RedisSessionStore) -> None:
    unknown = "A" * 32
    with pytest.raises(SessionNotFound):
        await redis_store.get(unknown)
    for write in (
        redis_store.add_ingredients(unknown, ["쌀"]),
        redis_store.remove_ingredient(unknown, "쌀"),
        redis_store.clear(unknown),
        redis_store.touch(unknown),
        redis_store.delete(unknown),
    ):
        with pytest.raises(SessionNotFound):
            await write
    with pytest.raises(InvalidSessionId):
        await redis_store.get("not-an-id")


async def test_delete_leaves_a_tombstone_that_blocks_reads_writes_and_older_copies(
    redis_store: RedisSessionStore,
) -> None:
    s = await redis_store.create()
    live = (await redis_store.add_ingredients(s.session_id, ["마늘"])).session
    await redis_store.delete(s.session_id)
    with pytest.raises(SessionNotFound):
        await redis_store.get(s.session_id)
    with pytest.raises(SessionNotFound):
        await redis_store.add_ingredients(s.session_id, ["마늘"])
    with pytest.raises(SessionNotFound):
        await redis_store.delete(s.session_id)

    tomb = await redis_store.read_copy(s.session_id)
    assert tomb is not None and tomb.deleted
    assert tomb.version == live.version + 1
    assert tomb.ingredients == ()
    assert tomb.expires_at == live.expires_at  # expires when the session would have

    assert await redis_store.apply_copy(live) is False  # a late, older copy cannot resurrect it
    with pytest.raises(SessionNotFound):
        await redis_store.get(s.session_id)
    assert await redis_store.count() == 0
    assert [x async for x in redis_store.iter_sessions()] == []
    assert [x.session_id async for x in redis_store.iter_sessions(include_deleted=True)] == [s.session_id]


async def test_expired_session_is_invisible(redis_store: RedisSessionStore) -> None:
    s = await redis_store.create()
    await redis_store.client.pexpire(redis_store.keys.session(s.session_id), 1)
    await asyncio.sleep(0.05)
    with pytest.raises(SessionNotFound):
        await redis_store.get(s.session_id)
    with pytest.raises(SessionNotFound):
        await redis_store.add_ingredients(s.session_id, ["쌀"])


async def test_limit_is_enforced_and_changes_nothing(redis_settings: Settings) -> None:
    store = RedisSessionStore.from_settings(dataclasses.replace(redis_settings, max_ingredients=3))
    try:
        s = await store.create()
        await store.add_ingredients(s.session_id, ["a", "b"])
        with pytest.raises(TooManyIngredients):
            await store.add_ingredients(s.session_id, ["c", "d"])
        after = await store.get(s.session_id)
        assert after.names == {"a", "b"}
        assert after.version == 2
        ok = await store.add_ingredients(s.session_id, ["a", "c"])  # present names do not count
        assert ok.session.names == {"a", "b", "c"}
    finally:
        await store.close()


async def test_64_clients_1000_distinct_adds_lose_nothing(redis_settings: Settings) -> None:
    store = RedisSessionStore.from_settings(dataclasses.replace(redis_settings, max_ingredients=1000))
    try:
        s = await store.create()
        names = [f"재료{i:04d}" for i in range(1000)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)

        async def client() -> None:
            while not queue.empty():
                await store.add_ingredients(s.session_id, [queue.get_nowait()])

        await asyncio.gather(*(client() for _ in range(64)))
        final = await store.get(s.session_id)
        assert final.names == set(names)
        assert final.version == 1001
    finally:
        await store.close()


async def test_limit_holds_under_concurrency(redis_settings: Settings) -> None:
    store = RedisSessionStore.from_settings(dataclasses.replace(redis_settings, max_ingredients=50))
    try:
        s = await store.create()
        outcomes = await asyncio.gather(
            *(store.add_ingredients(s.session_id, [f"n{i}", f"m{i}"]) for i in range(64)), return_exceptions=True
        )
        accepted = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, TooManyIngredients) for o in refused)
        assert len(accepted) == 25
        final = await store.get(s.session_id)
        assert len(final.names) == 50
        assert final.version == 1 + len(accepted)
    finally:
        await store.close()


def _copy(session_id: str, version: int, names: tuple[str, ...] = ("쌀",), deleted: bool = False) -> Session:
    now = utcnow().replace(microsecond=0)
    return Session(
        session_id=session_id,
        created_at=now - timedelta(minutes=5),
        updated_at=now,
        expires_at=now + timedelta(hours=1),
        version=version,
        ingredients=() if deleted else tuple(Ingredient(n, now - timedelta(minutes=1)) for n in names),
        deleted=deleted,
    )


async def test_apply_copy_is_version_guarded(redis_store: RedisSessionStore) -> None:
    sid = "B" * 32
    v5 = _copy(sid, 5, ("김", "밥"))
    assert await redis_store.apply_copy(v5) is True
    assert await redis_store.get(sid) == v5  # whole-second times survive the millisecond encoding
    assert await redis_store.apply_copy(_copy(sid, 4, ("old",))) is False
    assert await redis_store.apply_copy(_copy(sid, 5, ("same",))) is False
    assert (await redis_store.get(sid)).names == {"김", "밥"}
    v6 = _copy(sid, 6, ("new",))
    assert await redis_store.apply_copy(v6) is True
    assert await redis_store.get(sid) == v6
    ttl_ms = await redis_store.client.pttl(redis_store.keys.session(sid))
    assert 0 < ttl_ms <= 3_600_000

    # the next write continues from the copy's version
    assert (await redis_store.touch(sid)).version == 7


async def test_tombstone_copy_replaces_and_blocks(redis_store: RedisSessionStore) -> None:
    sid = "C" * 32
    assert await redis_store.apply_copy(_copy(sid, 3)) is True
    tomb = _copy(sid, 4, deleted=True)
    assert await redis_store.apply_copy(tomb) is True
    with pytest.raises(SessionNotFound):
        await redis_store.get(sid)
    stored = await redis_store.read_copy(sid)
    assert stored == tomb
    assert await redis_store.apply_copy(_copy(sid, 3)) is False
    with pytest.raises(SessionNotFound):
        await redis_store.get(sid)


async def test_expired_copy_is_skipped_and_removes_older(redis_store: RedisSessionStore) -> None:
    sid = "D" * 32
    assert await redis_store.apply_copy(_copy(sid, 1)) is True
    old = _copy(sid, 2)
    expired = msgspec.structs.replace(old, expires_at=utcnow() - timedelta(seconds=1))
    assert await redis_store.apply_copy(expired) is False
    assert await redis_store.read_copy(sid) is None


async def test_iter_sessions_and_count_cover_every_node(redis_store: RedisSessionStore) -> None:
    made = {(await redis_store.create()).session_id for _ in range(40)}
    await redis_store.delete(next(iter(made)))
    seen = [s async for s in redis_store.iter_sessions(batch_size=7)]
    assert {s.session_id for s in seen} == made - {next(iter(made))}
    assert len(seen) == 39
    assert await redis_store.count() == 39


async def test_backup_stream_gets_each_write_on_the_sessions_primary(redis_backup_store: RedisSessionStore) -> None:
    store = redis_backup_store
    s = await store.create()
    await store.add_ingredients(s.session_id, ["고추장", "참기름"])
    await store.delete(s.session_id)
    stream = store.keys.backup_stream(s.session_id)
    if store.keys.cluster:
        # The primary's node stream: another slot (in general) of the node that serves the session.
        client: Any = store.client
        stream = NodeStreams(store.keys).for_slot(client, store.keys.backup_slot(s.session_id))
        home = client.nodes_manager.get_node_from_slot(key_slot(store.keys.session(s.session_id).encode()))
        assert client.nodes_manager.get_node_from_slot(key_slot(stream.encode())) is home
    entries = await store.client.xrange(stream)
    copies = [session_from_entry(fields) for _, fields in entries if fields[b"i"] == s.session_id.encode()]
    assert [c.version for c in copies] == [1, 2, 3]
    assert copies[1].names == {"고추장", "참기름"}
    assert copies[2].deleted and copies[2].ingredients == ()
    assert copies[2].expires_at == copies[1].expires_at
    groups = await store.client.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [BACKUP_GROUP.encode()]


async def test_full_backup_stream_refuses_writes(redis_settings: Settings) -> None:
    store = RedisSessionStore.from_settings(redis_settings, backup_stream=True)
    store._backup_max_entries = 2
    try:
        s = await store.create()
        await store.touch(s.session_id)
        with pytest.raises(StoreUnavailable, match="backup stream is full"):
            await store.touch(s.session_id)
        assert (await store.get(s.session_id)).version == 2
    finally:
        await store.close()


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(st.permutations(list(range(1, 9))))
def test_apply_copy_in_any_order_keeps_the_newest(order: list[int]) -> None:
    async def scenario() -> None:
        from tests.conftest import REDIS_TEST_URL, RUN_ID, make_settings

        prefix = f"f2ft{RUN_ID}hyp" + "".join(map(str, order))
        settings = make_settings(
            F2F_REDIS_URL=REDIS_TEST_URL,
            F2F_REDIS_KEY_PREFIX=prefix,
            F2F_REDIS_CONNECT_TIMEOUT="5",
            F2F_REDIS_COMMAND_TIMEOUT="5",
        )
        store = RedisSessionStore.from_settings(settings)
        sid = "H" * 32
        try:
            newest = 0
            for version in order:
                applied = await store.apply_copy(_copy(sid, version, (f"v{version}",), deleted=version == 6))
                assert applied == (version > newest)
                newest = max(newest, version)
            final = await store.read_copy(sid)
            assert final is not None and final.version == 8 and final.names == {"v8"}
        finally:
            await store.client.delete(store.keys.session(sid))
            await store.close()

    asyncio.run(scenario())
