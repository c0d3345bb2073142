"""``f2f worker``: Redis backup stream -> SQL, version-guarded, acknowledged after commit."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from f2f_cli.backends import Backends
from f2f_cli.backup.apply import KnownCopies, PackedCopy, apply_copies, apply_packed
from f2f_cli.backup.worker import BackupWorker, WorkerOptions, backup_lag
from f2f_cli.clock import utcnow
from f2f_cli.db.engine import create_engine_for, create_sync_engine_for
from f2f_cli.db.schema import f2f_instances, fridge_session_ingredients, fridge_sessions
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.redis.keys import BACKUP_GROUP
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings
from tests.integration.conftest import redis_url_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def sql_state(database_url: str) -> dict[str, tuple[int, bool, frozenset[str]]]:
    """Every SQL session row: version, tombstone flag, ingredient names."""
    engine = create_sync_engine_for(database_url)
    with engine.connect() as conn:
        names: dict[str, set[str]] = {}
        ing = fridge_session_ingredients.c
        for sid, name in conn.execute(select(ing.session_id, ing.name)):
            names.setdefault(sid, set()).add(name)
        ses = fridge_sessions.c
        rows = conn.execute(select(ses.session_id, ses.version, ses.deleted_at))
        state = {sid: (version, deleted is not None, frozenset(names.get(sid, ()))) for sid, version, deleted in rows}
    engine.dispose()
    return state


async def redis_state(store: RedisSessionStore) -> dict[str, tuple[int, bool, frozenset[str]]]:
    return {s.session_id: (s.version, s.deleted, s.names) async for s in store.iter_sessions(include_deleted=True)}


async def traffic(store: RedisSessionStore, sessions: int, rounds: int) -> list[str]:
    ids = [(await store.create()).session_id for _ in range(sessions)]
    for r in range(rounds):
        await asyncio.gather(*(store.add_ingredients(sid, [f"재료{r}"]) for sid in ids))
    await store.remove_ingredient(ids[0], "재료0")
    await store.delete(ids[1])
    await store.clear(ids[2])
    return ids


@pytest.fixture(params=["standalone", "cluster"])
async def backup_setup(
    request: pytest.FixtureRequest, sql_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Settings, RedisSessionStore]]:
    if request.param == "cluster" and "sqlite" in sql_url:
        pytest.skip("the cluster run uses PostgreSQL only (keeps the suite short)")
    settings = make_settings(
        F2F_REDIS_URL=redis_url_for(request, request.param),
        F2F_REDIS_KEY_PREFIX=redis_prefix,
        F2F_DATABASE_URL=sql_url,
        F2F_REDIS_COMMAND_TIMEOUT="5",
        F2F_REDIS_CONNECT_TIMEOUT="5",
    )
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    yield settings, store
    await store.close()


async def test_worker_copies_every_write_and_tombstone_to_sql(backup_setup: tuple[Settings, RedisSessionStore]) -> None:
    settings, store = backup_setup
    await traffic(store, sessions=20, rounds=5)
    lag = await backup_lag(store.client, store.keys)
    assert lag.total == 20 * 6 + 3
    assert lag.pending == 0

    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=37, block_ms=50, idle_sleep=0.01))
    try:
        await worker.prepare()
        while (await backup_lag(store.client, store.keys)).total:
            await worker.run_once()
        await worker._heartbeat(force=True)
        engine = create_sync_engine_for(settings.database_url)
        with engine.connect() as conn:
            kinds = conn.execute(select(f2f_instances.c.kind).where(f2f_instances.c.instance_id == worker.instance_id))
            assert kinds.scalar_one() == "worker"
        engine.dispose()
    finally:
        await worker.close()
        await backends.close()
    assert sql_state(settings.database_url) == await redis_state(store)
    assert worker.stats.entries == 20 * 6 + 3
    assert (await backup_lag(store.client, store.keys)).total == 0


def _copy(sid: str, version: int, names: tuple[str, ...]) -> Session:
    now = utcnow()
    return Session(sid, now, now, now + timedelta(hours=1), version, tuple(Ingredient(n, now) for n in names))


async def test_sql_upsert_never_replaces_newer_with_older(sql_url: str) -> None:
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=sql_url))
    sid = "E" * 32
    try:
        async with engine.begin() as conn:
            assert await apply_copies(conn, [_copy(sid, 3, ("a",)), _copy(sid, 5, ("b", "c")), _copy(sid, 4, ("d",))])
        async with engine.begin() as conn:
            assert await apply_copies(conn, [_copy(sid, 4, ("old",))]) == set()
            assert await apply_copies(conn, [_copy(sid, 5, ("same",))]) == set()
    finally:
        await engine.dispose()
    assert sql_state(sql_url)[sid] == (5, False, frozenset({"b", "c"}))


def _worker_process(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "F2F_REDIS_URL": settings.redis_url or "",
        "F2F_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "F2F_DATABASE_URL": settings.database_url,
        "F2F_LOG_LEVEL": "warning",
        "F2F_REDIS_CONNECT_TIMEOUT": "5",
        "F2F_REDIS_COMMAND_TIMEOUT": "5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "f2f_cli", "worker", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_for(predicate: object, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.chaos
async def test_killed_worker_mid_batch_loses_nothing(pg_url: str, redis_url: str, redis_prefix: str) -> None:
    settings = make_settings(
        F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix, F2F_DATABASE_URL=pg_url,
        F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="5",
    )  # fmt: skip
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    try:
        ids = await traffic(store, sessions=200, rounds=15)
        stream = store.keys.backup_stream(ids[0])
        # A consumer that read a batch and died before committing it: exactly what SIGKILL leaves behind.
        ghost = await store.client.xreadgroup(BACKUP_GROUP, "ghost", {stream: ">"}, count=50)
        assert len(ghost[0][1]) == 50

        first = _worker_process(settings, "--batch-size", "50", "--claim-idle-ms", "300")
        try:
            await _wait_for(lambda: _sql_has_rows(pg_url), "the first worker to commit a batch")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        # More acknowledged writes while no worker runs.
        for sid in ids[3:50]:
            await store.add_ingredients(sid, ["막판재료"])

        second = _worker_process(settings, "--batch-size", "50", "--claim-idle-ms", "300")
        try:

            async def drained() -> bool:
                return (await backup_lag(store.client, store.keys)).total == 0

            await _wait_for(drained, "the second worker to drain the stream")
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        assert sql_state(pg_url) == await redis_state(store)
        pending = await store.client.xpending(stream, BACKUP_GROUP)
        assert pending["pending"] == 0
    finally:
        await store.close()


async def _sql_has_rows(database_url: str) -> bool:
    return len(sql_state(database_url)) > 0


async def test_sigterm_stops_the_worker_cleanly_and_removes_its_heartbeat(
    pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        F2F_REDIS_URL=redis_url, F2F_REDIS_KEY_PREFIX=redis_prefix, F2F_DATABASE_URL=pg_url,
        F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="5",
    )  # fmt: skip
    proc = _worker_process(settings, "--block-ms", "100", "--consumer", "sigterm-test")
    try:

        async def registered() -> bool:
            engine = create_sync_engine_for(pg_url)
            with engine.connect() as conn:
                rows = conn.execute(select(f2f_instances.c.instance_id, f2f_instances.c.kind)).all()
            engine.dispose()
            return ("worker-sigterm-test", "worker") in [tuple(r) for r in rows]

        await _wait_for(registered, "the worker heartbeat row")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not await registered()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_coalescing_applies_only_the_newest_copy_of_a_hot_session(
    backup_setup: tuple[Settings, RedisSessionStore],
) -> None:
    """Many entries of one session in one batch: SQL ends at the newest, every entry is acknowledged."""
    settings, store = backup_setup
    hot = (await store.create()).session_id
    cold = (await store.create()).session_id
    for i in range(40):
        await store.add_ingredients(hot, [f"재료{i}"])
    await store.remove_ingredient(hot, "재료3")
    await store.add_ingredients(cold, ["두부"])
    entries = 2 + 40 + 1 + 1

    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=1000, block_ms=50))
    try:
        await worker.prepare()
        while (await backup_lag(store.client, store.keys)).total:
            await worker.run_once()
    finally:
        await worker.close()
        await backends.close()
    assert worker.stats.entries == entries
    # Two sessions: however the batches fell, far fewer session applies than entries.
    assert worker.stats.sessions < entries // 2
    state = sql_state(settings.database_url)
    assert state[hot] == (42, False, frozenset(f"재료{i}" for i in range(40) if i != 3))
    assert state == await redis_state(store)


async def test_ingredient_rows_are_rewritten_only_where_they_changed(pg_url: str) -> None:
    """PostgreSQL: a one-name add to a 90-ingredient session writes one row; the others keep their xmin."""
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=pg_url))
    sid = "D" * 32
    t0 = utcnow().replace(microsecond=0)
    base = tuple(Ingredient(f"재료{i:02d}", t0 + timedelta(milliseconds=i)) for i in range(90))

    def version(v: int, items: tuple[Ingredient, ...]) -> PackedCopy:
        return PackedCopy.from_session(Session(sid, t0, t0 + timedelta(seconds=v), t0 + timedelta(hours=1), v, items))

    try:
        async with engine.begin() as conn:
            first = await apply_packed(conn, [version(1, base)])
        assert first.changed == {sid} and first.ingredient_rows == 90
        before = _ingredient_xmins(pg_url, sid)
        added = Ingredient("두부", t0 + timedelta(seconds=2))
        async with engine.begin() as conn:
            second = await apply_packed(conn, [version(2, (*base, added))])
        assert second.ingredient_rows == 1
        after = _ingredient_xmins(pg_url, sid)
        assert {n: after[n] for n in before} == before  # the 90 untouched rows were not rewritten
        async with engine.begin() as conn:
            # A remove plus a re-dated name: one delete, one update.
            moved = Ingredient("재료05", t0 + timedelta(seconds=3))
            third = await apply_packed(conn, [version(3, (*base[:5], moved, *base[6:89], added))])
        assert third.ingredient_rows == 2
        sync_engine = create_sync_engine_for(pg_url)
        with sync_engine.connect() as sync:
            ing = fridge_session_ingredients.c
            rows = dict(sync.execute(select(ing.name, ing.added_at).where(ing.session_id == sid)).all())
        sync_engine.dispose()
        assert set(rows) == {i.name for i in base[:89]} | {"두부"}
        assert rows["재료05"] == moved.added_at and rows["두부"] == added.added_at
    finally:
        await engine.dispose()


async def test_names_that_need_quoting_in_an_array_literal_arrive_intact(pg_url: str) -> None:
    """PostgreSQL: the batch travels as array literals; quotes, backslashes, braces, commas, a name spelled
    NULL and spaces come back as written, with COMMIT sent in the last statement's round trip."""
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=pg_url))
    t0 = utcnow().replace(microsecond=0)
    odd = ('say "hi"', "back\\slash", "{braced}", "a,b", "NULL", " padded ", "두부 (국산)", '\\"', "'")
    sids = ['Q"' + "1" * 30, "Q\\" + "2" * 30, "Q{3," + "3" * 28]

    def copy(sid: str, v: int, names: tuple[str, ...]) -> PackedCopy:
        items = tuple(Ingredient(n, t0 + timedelta(milliseconds=i)) for i, n in enumerate(names))
        return PackedCopy.from_session(Session(sid, t0, t0 + timedelta(seconds=v), t0 + timedelta(hours=1), v, items))

    known = KnownCopies()
    try:
        for v, names in ((1, odd[:5]), (2, odd), (3, odd[2:])):  # SQL-side diff, then the worker's own
            async with engine.begin() as conn:
                result = await apply_packed(conn, [copy(sid, v, names) for sid in sids], known, commit=True)
            known.remember(result.chosen)
            assert result.changed == set(sids)
            assert {sid: sql_state(pg_url)[sid] for sid in sids} == {sid: (v, False, frozenset(names)) for sid in sids}
        assert result.diffed_in_worker == len(sids)
    finally:
        await engine.dispose()


def _ingredient_xmins(database_url: str, sid: str) -> dict[str, str]:
    engine = create_sync_engine_for(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, xmin::text FROM fridge_session_ingredients WHERE session_id = :sid"), {"sid": sid}
        ).all()
    engine.dispose()
    return {name: xmin for name, xmin in rows}


async def test_worker_side_diff_is_used_only_while_sql_holds_the_remembered_version(pg_url: str) -> None:
    """Two workers on one session: a worker diffs in Python only against the version SQL really holds."""
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=pg_url))
    sid = "K" * 32
    t0 = utcnow().replace(microsecond=0)

    def version(v: int, names: tuple[str, ...]) -> PackedCopy:
        items = tuple(Ingredient(n, t0 + timedelta(milliseconds=i)) for i, n in enumerate(names))
        return PackedCopy.from_session(Session(sid, t0, t0 + timedelta(seconds=v), t0 + timedelta(hours=1), v, items))

    async def apply(known: KnownCopies, copy: PackedCopy) -> int:
        async with engine.begin() as conn:
            result = await apply_packed(conn, [copy], known)
        known.remember(result.chosen)
        assert sql_state(pg_url)[sid] == (copy.version, False, frozenset(copy.to_session().names))
        return result.diffed_in_worker

    first, second = KnownCopies(), KnownCopies()
    try:
        assert await apply(first, version(1, ("a", "b", "c"))) == 0  # nothing known yet: SQL-side diff
        assert await apply(second, version(2, ("a", "b", "c", "x"))) == 0  # the other worker, v1 unknown to it
        # The first worker remembers v1 but SQL holds v2: diffing against v1 would keep "x".
        assert await apply(first, version(3, ("b", "c", "y"))) == 0
        assert await apply(first, version(4, ("b", "c", "y", "z"))) == 1  # SQL holds v3, which it knows
        tomb = PackedCopy(sid, 5, version(5, ()).created_ms, version(5, ()).updated_ms, version(5, ()).expires_ms,
                          True, "")  # fmt: skip
        async with engine.begin() as conn:
            result = await apply_packed(conn, [tomb], first)
        assert result.diffed_in_worker == 1
        assert sql_state(pg_url)[sid] == (5, True, frozenset())
    finally:
        await engine.dispose()


async def test_two_workers_applying_copies_of_the_same_sessions_at_once_end_on_the_newest(pg_url: str) -> None:
    """PostgreSQL, the worker's own way (KnownCopies, COMMIT in the pipeline): two workers take turns on the
    versions of the same sessions (odd / even, as a consumer group may hand them out) and apply them at the same
    time; whatever interleaving and whichever path (remembered copy or SQL's rows) each batch took, SQL ends
    on the newest copy of every session, ingredients included. A batch that PostgreSQL aborts (two workers
    locking rows in opposite orders) is applied again, as the worker does."""
    rng = random.Random(27)
    names = [f"재료{i}" for i in range(12)]
    t0 = utcnow().replace(microsecond=0)
    sids = [f"W{i:031d}" for i in range(40)]

    def copy(sid: str, v: int) -> PackedCopy:
        chosen = rng.sample(names, rng.randint(0, 8))
        items = tuple(Ingredient(n, t0 + timedelta(milliseconds=v * 10 + i)) for i, n in enumerate(chosen))
        return PackedCopy.from_session(Session(sid, t0, t0 + timedelta(seconds=v), t0 + timedelta(hours=1), v, items))

    versions = {sid: [copy(sid, v) for v in range(1, 31)] for sid in sids}
    newest = {sid: (30, False, frozenset(versions[sid][-1].to_session().names)) for sid in sids}

    async def worker(parity: int) -> None:
        engine = create_engine_for(make_settings(F2F_DATABASE_URL=pg_url))
        known = KnownCopies()
        try:
            for v in range(1 + parity, 31, 2):
                batch = [versions[sid][v - 1] for sid in rng.sample(sids, len(sids))]
                for _ in range(20):
                    try:
                        async with engine.begin() as conn:
                            result = await apply_packed(conn, batch, known, commit=True)
                        break
                    except DBAPIError:  # deadlock: PostgreSQL aborted this batch, the worker retries it
                        await asyncio.sleep(0.01)
                else:
                    raise AssertionError("a batch never committed")
                known.remember(result.chosen)
                await asyncio.sleep(0)
        finally:
            await engine.dispose()

    await asyncio.gather(worker(0), worker(1))
    state = sql_state(pg_url)
    assert {sid: state[sid] for sid in sids} == newest


def _info_worker(pg_url: str, redis_url: str, redis_prefix: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    env.update({"F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix, "F2F_DATABASE_URL": pg_url,
                "F2F_REDIS_COMMAND_TIMEOUT": "5", "F2F_REDIS_CONNECT_TIMEOUT": "5"})  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "f2f_cli", "worker", "--block-ms", "100", "--consumer", "log-test"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_worker_logs_start_and_stop_at_info_by_default(pg_url: str, redis_url: str, redis_prefix: str) -> None:
    """`f2f worker` is a service: without F2F_LOG_LEVEL its info lines show (the CLI default is quiet)."""
    proc = _info_worker(pg_url, redis_url, redis_prefix)
    try:

        async def registered() -> bool:
            engine = create_sync_engine_for(pg_url)
            with engine.connect() as conn:
                ids = list(conn.execute(select(f2f_instances.c.instance_id)).scalars())
            engine.dispose()
            return "worker-log-test" in ids

        await _wait_for(registered, "the worker heartbeat row")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 0, text
    assert "INFO" in text and "worker log-test started" in text and "backlog 0 entries" in text
    # It names what it reads; `f2f worker --lag` counts the streams that hold entries: no number to disagree.
    assert "started: one backup stream, batch" in text and "stream(s)" not in text
    assert "worker log-test stopping after 0 entries" in text
