"""``f2f worker`` on its own after Redis loses everything, and the Cluster's backup index."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from f2f_cli.backends import Backends
from f2f_cli.backup.worker import SWEEP_SLICE, BackupWorker, WorkerOptions, backup_lag
from f2f_cli.redis.client import REDIS_FAILURES
from f2f_cli.redis.keys import BACKUP_GROUP
from f2f_cli.redis.node_streams import NodeStreams
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings
from tests.integration.test_backup_worker import redis_state, sql_state
from tests.redis_servers import RedisClusterServers, RedisProcess, data_node, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_worker_recreates_its_group_after_redis_comes_back_empty(tmp_path: Path, pg_url: str) -> None:
    node = data_node(free_port(), tmp_path / "redis").start()  # our own Redis: the test restarts it empty
    settings = make_settings(
        F2F_REDIS_URL=node.url, F2F_DATABASE_URL=pg_url, F2F_REDIS_COMMAND_TIMEOUT="2", F2F_REDIS_CONNECT_TIMEOUT="2"
    )
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=50, block_ms=100))
    stop = asyncio.Event()
    task: asyncio.Task[object] | None = None
    try:
        before = [(await store.create()).session_id for _ in range(5)]
        task = asyncio.create_task(worker.run(stop))
        await _eventually(lambda: _drained(store), "the first writes to be backed up")
        assert set(before) <= set(sql_state(pg_url))

        node.kill()  # no persistence: it comes back with nothing, not even the stream or its group
        node.start()
        stream = store.keys.backup_streams()[0]

        async def group_back() -> bool:
            groups = await store.client.xinfo_groups(stream)
            return any(g["name"] in (BACKUP_GROUP, BACKUP_GROUP.encode()) for g in groups)

        async def counted() -> bool:
            return worker.stats.groups_recreated >= 1

        # No write has touched Redis since the restart: the worker alone must recreate the group. The group
        # can be seen a moment before the worker's own reply arrives and it counts the recreation.
        await _eventually(group_back, "the worker to recreate its consumer group")
        await _eventually(counted, "the worker to count the recreation")

        after = [(await store.create()).session_id for _ in range(3)]
        await store.add_ingredients(after[0], ["두부"])
        await _eventually(lambda: _drained(store), "writes after the restart to be backed up")
        state = sql_state(pg_url)
        assert state[after[0]] == (2, False, frozenset({"두부"}))
        assert set(after) <= set(state)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await worker.close()
        await backends.close()
        await store.close()
        node.stop()


async def _drained(store: RedisSessionStore) -> bool:
    return (await backup_lag(store.client, store.keys)).total == 0


async def test_cluster_writes_go_to_one_stream_per_primary_and_stale_maps_fall_back_to_the_index(
    redis_cluster: RedisClusterServers, pg_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        F2F_REDIS_URL=redis_cluster.url, F2F_REDIS_KEY_PREFIX=redis_prefix, F2F_DATABASE_URL=pg_url,
        F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="5",
    )  # fmt: skip
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=100, sweep_interval=3600))
    keys = store.keys
    try:
        await worker.prepare()
        ids = [(await store.create()).session_id for _ in range(12)]
        for sid in ids:
            await store.add_ingredients(sid, ["계란"])
        # Every entry went to its primary's node stream: no index entry, no per-slot stream.
        node_streams = NodeStreams(keys).streams(store.client)
        assert len(node_streams) == 3
        assert await store.client.smembers(keys.backup_index) == set()
        lengths = {s: int(await store.client.xlen(s)) for s in node_streams.values()}
        assert sum(lengths.values()) == 24
        assert set(await worker._indexed_streams()) == set(node_streams.values())

        while await worker.run_once():
            pass
        assert sql_state(pg_url) == await redis_state(store)

        # A client whose slot map is stale names another primary's stream: the script may not touch it,
        # so the entry goes to the session's own slot stream and the slot is indexed.
        stale = ids[0]
        home = store._node_streams.for_slot(store.client, keys.backup_slot(stale))
        elsewhere = next(s for s in node_streams.values() if s != home)
        store._node_streams.for_slot = lambda client, slot: elsewhere  # type: ignore[method-assign]
        await store.add_ingredients(stale, ["양파"])
        assert int(await store.client.xlen(elsewhere)) == 0
        assert int(await store.client.xlen(keys.backup_stream(stale))) == 1
        assert {int(m) for m in await store.client.smembers(keys.backup_index)} == {keys.backup_slot(stale)}
        while await worker.run_once():
            pass
        await worker._read()  # one more poll finds the slot stream empty and drops it from the index
        assert await store.client.smembers(keys.backup_index) == set()
        assert sql_state(pg_url)[stale] == (3, False, frozenset({"계란", "양파"}))

        # A writer that died between its script and the SADD: the entry is in a stream the index
        # does not name. The worker's periodic sweep finds it.
        await store.add_ingredients(stale, ["대파"])
        await store.client.srem(keys.backup_index, keys.backup_slot(stale))
        assert await worker.run_once() == 0
        # The periodic repair looks at 512 slot streams per step; 32 steps cover all 16,384.
        for _ in range(len(keys.backup_streams()) // SWEEP_SLICE):
            worker._next_slice_at = -math.inf
            await worker._indexed_streams()
            assert worker._slice is not None  # a step runs beside the poll, not inside it
            await worker._slice
        assert keys.backup_slot(stale) in {int(m) for m in await store.client.smembers(keys.backup_index)}
        while await worker.run_once():
            pass
        assert sql_state(pg_url)[stale] == (4, False, frozenset({"계란", "양파", "대파"}))
        assert (await backup_lag(store.client, keys)).total == 0
    finally:
        await worker.close()
        await backends.close()
        await store.close()


async def test_a_hung_cluster_primary_holds_back_no_other_primary_s_backup(
    pg_url: str, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers]
) -> None:
    """Each primary's stream is read in a task of its own: while one primary answers nothing (SIGSTOP), the
    entries of the others are committed and acknowledged; once it answers again, its own follow. The hung one
    is the primary that holds the backup index, which every poll reads."""
    cluster = redis_cluster_factory()  # our own: one of its primaries is paused
    settings = make_settings(
        F2F_REDIS_URL=cluster.url, F2F_REDIS_KEY_PREFIX=redis_prefix, F2F_DATABASE_URL=pg_url,
        F2F_REDIS_COMMAND_TIMEOUT="2", F2F_REDIS_CONNECT_TIMEOUT="2",
    )  # fmt: skip
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=100, block_ms=100, claim_idle_ms=500,
                                                     claim_interval=0.5))  # fmt: skip
    hung: RedisProcess | None = None
    try:
        await worker.prepare()
        ids = [(await store.create()).session_id for _ in range(30)]
        client: Any = store.client
        hung = cluster.node(client.nodes_manager.get_node_from_slot(client.keyslot(store.keys.backup_index)).port)
        port_of = {sid: client.nodes_manager.get_node_from_slot(store.keys.backup_slot(sid)).port for sid in ids}
        healthy = [sid for sid in ids if port_of[sid] != hung.port]
        on_hung = [sid for sid in ids if port_of[sid] == hung.port]
        assert healthy and on_hung
        while await worker.run_once():
            pass
        assert set(ids) <= set(sql_state(pg_url))

        hung_first_slot = min(cluster.slots_of(hung.port))
        hung.pause()
        for sid in healthy:
            await store.add_ingredients(sid, ["두부"])
        calls = 0
        while any(sql_state(pg_url)[sid][2] != {"두부"} for sid in healthy):
            calls += 1
            assert calls < 50, "the healthy primaries' entries were not committed while one primary hung"
            with contextlib.suppress(*REDIS_FAILURES):  # (none expected: a poll fails only when nothing answers)
                await worker.run_once()
        assert all(sql_state(pg_url)[sid][2] == {"두부"} for sid in healthy)
        healthy_streams = {NodeStreams(store.keys).for_slot(client, store.keys.backup_slot(sid)) for sid in healthy}
        hung_stream = NodeStreams(store.keys).for_slot(client, store.keys.backup_slot(on_hung[0]))
        assert hung_stream not in healthy_streams

        async def acknowledged() -> bool:
            await worker.run_once()
            lengths = [int(await client.xlen(s)) for s in healthy_streams]  # (the hung primary is not asked)
            return sum(lengths) == 0

        await _eventually(acknowledged, "the healthy primaries' entries to be acknowledged")
        # The index repair reads every primary: a step aimed at the hung one's slots stays out (it cannot
        # finish while the primary is stopped) and the poll that started it returned without it.
        worker._sweep_cursor, worker._next_slice_at = hung_first_slot, -math.inf
        await worker._indexed_streams()
        assert worker._slice is not None and not worker._slice.done()
        # The index read that outlasted a poll stays out; the next polls go on with the last slots read.
        index_read = worker._index_read
        assert index_read is not None and not index_read.done()
        await worker._indexed_streams()
        assert worker._index_read is index_read
        hung.resume()
        for sid in on_hung:
            await store.add_ingredients(sid, ["대파"])

        async def drained() -> bool:
            await worker.run_once()
            return await _drained(store)

        await _eventually(drained, "every entry to be backed up once the primary answers", limit=60)
        assert sql_state(pg_url) == await redis_state(store)
    finally:
        if hung is not None:
            hung.resume()
        await worker.close()
        await backends.close()
        await store.close()


async def _pending(store: RedisSessionStore) -> int:
    summary = await store.client.xpending(store.keys.backup_streams()[0], BACKUP_GROUP)
    return int(summary["pending"])


async def test_the_loop_goes_on_while_an_acknowledgement_waits_and_a_stop_settles_it(
    tmp_path: Path, pg_url: str
) -> None:
    """A committed batch's XACK/XDEL runs beside the next batch, not before it: with Redis refusing writes for
    a while (CLIENT PAUSE WRITE), a batch already read is committed and ``run_once`` returns while its
    acknowledgement still waits; once Redis takes writes again the entries go, and a stopping worker waits
    for its acknowledgements instead of leaving committed entries pending for another worker to claim."""
    node = data_node(free_port(), tmp_path / "redis").start()  # our own: the test pauses its writes
    settings = make_settings(
        F2F_REDIS_URL=node.url, F2F_DATABASE_URL=pg_url, F2F_REDIS_COMMAND_TIMEOUT="5", F2F_REDIS_CONNECT_TIMEOUT="2"
    )
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    backends = Backends.open(settings)
    # A long BLOCK: the read in flight must still be waiting when the second batch is written.
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=50, block_ms=20_000))
    stream = store.keys.backup_streams()[0]
    try:
        await worker.prepare()
        first = [(await store.create()).session_id for _ in range(3)]
        assert await worker.run_once() == 3  # commits, starts the next read and the acknowledgement
        await _eventually(lambda: _drained(store), "the first batch's acknowledgement")

        # One write: a blocked read returns with the first entry that arrives.
        second = [(await store.create()).session_id]

        async def delivered() -> bool:  # the read in flight took it: pending on this worker
            return await _pending(store) == 1

        await _eventually(delivered, "the read in flight to deliver the second batch")
        await store.client.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
        try:
            assert await asyncio.wait_for(worker.run_once(), 10) == 1
            assert set(first + second) <= set(sql_state(pg_url))  # committed ...
            assert await _pending(store) == 1  # ... and not yet acknowledged: Redis still takes no write
        finally:
            await store.client.execute_command("CLIENT", "UNPAUSE")
        await _eventually(lambda: _drained(store), "the acknowledgement once Redis takes writes again")

        await worker.close()  # (its read in flight blocks for 20 s) a worker with a short BLOCK stops quickly
        worker = BackupWorker.on(backends, WorkerOptions(batch_size=50, block_ms=100))
        third = [(await store.create()).session_id for _ in range(4)]
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))

        async def in_sql() -> bool:
            return set(third) <= set(sql_state(pg_url))

        await _eventually(in_sql, "the third batch in SQL")
        stop.set()
        await asyncio.wait_for(task, 30)
        assert await store.client.xlen(stream) == 0  # nothing committed was left pending at the stop
        assert await _pending(store) == 0
    finally:
        await worker.close()
        await backends.close()
        await store.close()
        node.stop()
