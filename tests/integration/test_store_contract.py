"""The SessionStore contract, run unchanged against every backend in ``stores.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from f2f_cli.clock import utcnow
from f2f_cli.domain.ids import is_valid_session_id, new_session_id
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import InvalidIngredient, SessionNotFound, TooManyIngredients
from tests.clock import wait
from tests.integration.stores import STORE_FACTORIES

MakeStore = Callable[..., Awaitable[SessionStore]]


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    factory = STORE_FACTORIES[request.param]
    async with AsyncExitStack() as stack:

        async def make(ttl: int = 3600, max_ingredients: int = 100) -> SessionStore:
            return await stack.enter_async_context(factory(request, ttl, max_ingredients))

        yield make


async def test_create_then_get(make_store: MakeStore) -> None:
    store = await make_store(ttl=600)
    before = utcnow()
    created = await store.create()
    assert is_valid_session_id(created.session_id)
    assert created.version == 1
    assert created.ingredients == ()
    assert abs((created.expires_at - before - timedelta(seconds=600)).total_seconds()) < 2
    fetched = await store.get(created.session_id)
    assert fetched.session_id == created.session_id
    assert fetched.version == 1
    assert fetched.ingredients == ()
    assert isinstance(store, SessionStore)


async def test_unknown_session_is_not_found(make_store: MakeStore) -> None:
    store = await make_store()
    with pytest.raises(SessionNotFound):
        await store.get(new_session_id())
    with pytest.raises(SessionNotFound):
        await store.add_ingredients(new_session_id(), ["두부"])
    with pytest.raises(SessionNotFound):
        await store.delete(new_session_id())


async def test_adding_no_ingredient_changes_nothing(make_store: MakeStore) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    before = (await store.add_ingredients(sid, ["두부"])).session
    m = await store.add_ingredients(sid, [])
    assert m.changed == ()
    assert (m.session.version, m.session.expires_at, m.session.names) == (before.version, before.expires_at, {"두부"})
    after = await store.get(sid)
    assert (after.version, after.expires_at, after.updated_at) == (before.version, before.expires_at, before.updated_at)
    assert (await store.add_ingredients(sid, ["계란"])).session.version == before.version + 1
    with pytest.raises(SessionNotFound):
        await store.add_ingredients(new_session_id(), [])


async def test_every_write_bumps_version_and_reports_changes(make_store: MakeStore) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    m = await store.add_ingredients(sid, ["두부", "계란"])
    assert m.changed == ("두부", "계란")
    assert m.session.version == 2
    m = await store.add_ingredients(sid, ["계란", "대파"])
    assert m.changed == ("대파",)
    assert m.session.version == 3
    assert m.session.names == {"두부", "계란", "대파"}
    m = await store.remove_ingredient(sid, "계란")
    assert m.changed == ("계란",)
    assert m.session.names == {"두부", "대파"}
    m = await store.remove_ingredient(sid, "없는재료")
    assert m.changed == ()
    assert m.session.version == 5
    touched = await store.touch(sid)
    assert touched.version == 6
    m = await store.clear(sid)
    assert sorted(m.changed) == ["대파", "두부"]
    assert m.session.ingredients == ()
    final = await store.get(sid)
    assert final.version == 7
    assert final.ingredients == ()


async def test_ingredients_keep_added_at_and_order(make_store: MakeStore) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    first = await store.add_ingredients(sid, ["양파"])
    await asyncio.sleep(0.01)
    second = await store.add_ingredients(sid, ["감자", "양파"])
    got = await store.get(sid)
    assert [i.name for i in got.ingredients] == ["양파", "감자"]
    onion_first = next(i for i in first.session.ingredients if i.name == "양파")
    onion_now = next(i for i in got.ingredients if i.name == "양파")
    # Re-adding keeps the original added-at (stores may round to the millisecond).
    assert abs((onion_now.added_at - onion_first.added_at).total_seconds()) < 0.002
    assert got.ingredients == second.session.ingredients


async def test_limit_is_enforced_and_changes_nothing(make_store: MakeStore) -> None:
    store = await make_store(max_ingredients=3)
    sid = (await store.create()).session_id
    await store.add_ingredients(sid, ["a", "b"])
    with pytest.raises(TooManyIngredients) as info:
        await store.add_ingredients(sid, ["c", "d"])
    assert "3" in info.value.message
    after = await store.get(sid)
    assert after.names == {"a", "b"}
    assert after.version == 2
    m = await store.add_ingredients(sid, ["a", "c"])  # only one new: fits exactly
    assert m.session.names == {"a", "b", "c"}


async def test_delete_hides_the_session_for_good(make_store: MakeStore) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    await store.add_ingredients(sid, ["두부"])
    await store.delete(sid)
    with pytest.raises(SessionNotFound):
        await store.get(sid)
    with pytest.raises(SessionNotFound):
        await store.add_ingredients(sid, ["김치"])
    with pytest.raises(SessionNotFound):
        await store.delete(sid)


async def test_expired_session_is_invisible_before_any_purge(make_store: MakeStore) -> None:
    store = await make_store(ttl=1)
    sid = (await store.create()).session_id
    await wait(store, 1.3)
    with pytest.raises(SessionNotFound):
        await store.get(sid)
    with pytest.raises(SessionNotFound):
        await store.add_ingredients(sid, ["두부"])


async def test_a_write_slides_the_expiry(make_store: MakeStore) -> None:
    store = await make_store(ttl=2)
    created = await store.create()
    await wait(store, 1.0)
    m = await store.add_ingredients(created.session_id, ["두부"])
    assert m.session.expires_at > created.expires_at + timedelta(seconds=0.5)
    await wait(store, 1.4)  # past the first expiry, within the slid one
    assert (await store.get(created.session_id)).names == {"두부"}


async def test_concurrent_adds_lose_nothing(make_store: MakeStore) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    names = [f"재료{i:02d}" for i in range(50)]
    await asyncio.gather(*(store.add_ingredients(sid, [n]) for n in names))
    got = await store.get(sid)
    assert got.names == set(names)
    assert got.version == 51


async def test_64_clients_1000_distinct_adds_lose_nothing(make_store: MakeStore) -> None:
    store = await make_store(max_ingredients=1000)
    sid = (await store.create()).session_id
    names = iter([f"재료{i:04d}" for i in range(1000)])

    async def client() -> None:
        for name in names:  # the 64 clients share one iterator: 1,000 adds in all
            await store.add_ingredients(sid, [name])

    await asyncio.gather(*(client() for _ in range(64)))
    got = await store.get(sid)
    assert len(got.ingredients) == 1000
    assert got.version == 1001


async def test_concurrent_adds_never_exceed_the_limit(make_store: MakeStore) -> None:
    store = await make_store(max_ingredients=10)
    sid = (await store.create()).session_id
    results = await asyncio.gather(
        *(store.add_ingredients(sid, [f"x{i}"]) for i in range(25)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TooManyIngredients)]
    assert len(accepted) == 10
    assert len(refused) == 15
    got = await store.get(sid)
    assert len(got.ingredients) == 10
    assert got.version == 11


async def test_count_and_iter_sessions_see_live_sessions_only(make_store: MakeStore) -> None:
    store = await make_store()
    ids = {(await store.create()).session_id for _ in range(7)}
    gone = ids.pop()
    await store.delete(gone)
    assert await store.count() == len(ids)
    seen = [s.session_id async for s in store.iter_sessions(batch_size=2)]
    assert sorted(seen) == sorted(ids)


def _copy(base: Session, version: int, names: list[str], *, deleted: bool = False) -> Session:
    now = utcnow().replace(microsecond=(utcnow().microsecond // 1000) * 1000)
    return Session(
        session_id=base.session_id,
        created_at=base.created_at,
        updated_at=now,
        expires_at=now + timedelta(seconds=300),
        version=version,
        ingredients=tuple(Ingredient(n, now) for n in names),
        deleted=deleted,
    )


async def test_apply_copy_only_moves_forward(make_store: MakeStore) -> None:
    store = await make_store()
    base = await store.create()
    assert await store.apply_copy(_copy(base, 5, ["김치", "두부"]))
    got = await store.get(base.session_id)
    assert (got.version, got.names) == (5, {"김치", "두부"})
    assert not await store.apply_copy(_copy(base, 4, ["계란"]))  # older: ignored
    assert not await store.apply_copy(_copy(base, 5, ["계란"]))  # same version: ignored
    assert (await store.get(base.session_id)).names == {"김치", "두부"}


async def test_apply_copy_creates_missing_sessions_and_honours_tombstones(make_store: MakeStore) -> None:
    store = await make_store()
    base = Session(new_session_id(), utcnow(), utcnow(), utcnow(), 1)
    assert await store.apply_copy(_copy(base, 3, ["양파"]))
    assert (await store.get(base.session_id)).names == {"양파"}
    assert await store.apply_copy(_copy(base, 4, [], deleted=True))
    with pytest.raises(SessionNotFound):
        await store.get(base.session_id)
    # A late, older copy cannot bring the deleted session back.
    assert not await store.apply_copy(_copy(base, 3, ["양파"]))
    with pytest.raises(SessionNotFound):
        await store.get(base.session_id)


async def test_apply_copy_skips_expired_copies(make_store: MakeStore) -> None:
    store = await make_store()
    now = utcnow()
    stale = Session(new_session_id(), now - timedelta(hours=2), now - timedelta(hours=1), now - timedelta(seconds=1), 2)
    assert not await store.apply_copy(stale)
    with pytest.raises(SessionNotFound):
        await store.get(stale.session_id)


# Odd names every store must treat alike: the stored name, or the same error.
# (A name the SQL store accepted but Redis refused would break the copy to Redis in dual and backfill.)
ODD_NAMES = [
    ("  두부  ", "두부"),  # trimmed
    ("대   파", "대 파"),  # inner whitespace collapsed
    ("\t양\u00a0파\n", "양 파"),  # any Unicode space
    ("e\u0301clair", "\u00e9clair"),  # NFD -> NFC
    ("\u1100\u1161", "\uac00"),  # conjoining jamo -> one syllable (NFC)
    ("가" * 50, "가" * 50),  # exactly the length limit (characters, not bytes)
    ("", InvalidIngredient),
    ("   ", InvalidIngredient),
    ("가" * 51, InvalidIngredient),
    ("김\x00치", InvalidIngredient),  # control character
    ("김\u200b치", InvalidIngredient),  # format character (zero-width space)
    ("김\x1f치", "김 치"),  # the copy format's separator counts as a space (str.isspace): never stored
    ("\U000e0001", InvalidIngredient),  # tag character (Cf)
]


@pytest.mark.parametrize(("raw", "expected"), ODD_NAMES, ids=[repr(r)[:24] for r, _ in ODD_NAMES])
async def test_odd_names_are_stored_alike_or_refused_alike(
    make_store: MakeStore, raw: str, expected: str | type[Exception]
) -> None:
    store = await make_store()
    sid = (await store.create()).session_id
    if isinstance(expected, str):
        m = await store.add_ingredients(sid, [raw])
        assert m.changed == (expected,)
        assert (await store.get(sid)).names == {expected}
        # The same odd spelling names the same stored ingredient on the way out.
        removed = await store.remove_ingredient(sid, raw)
        assert removed.changed == (expected,)
        assert (await store.get(sid)).names == frozenset()
    else:
        with pytest.raises(expected):
            await store.add_ingredients(sid, ["양파", raw])
        with pytest.raises(expected):
            await store.remove_ingredient(sid, raw)
        got = await store.get(sid)
        assert (got.version, got.names) == (1, frozenset())  # nothing half-applied
