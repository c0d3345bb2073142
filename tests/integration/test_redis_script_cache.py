"""A Redis that lost its script cache (restart, failover, SCRIPT FLUSH) must not wedge the bulk tools."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from f2f_cli.clock import utcnow
from f2f_cli.domain.ids import new_session_id
from f2f_cli.domain.model import Ingredient, Session
from f2f_cli.stores.redis import RedisSessionStore
from tests.conftest import make_settings
from tests.redis_servers import data_node, free_port


def _copy(version: int) -> Session:
    now = utcnow()
    return Session(new_session_id(), now, now, now + timedelta(minutes=5), version, (Ingredient("두부", now),))


async def test_bulk_copies_and_reads_reload_scripts_after_a_flush(tmp_path: Path) -> None:
    node = data_node(free_port(), tmp_path / "redis").start()
    store = RedisSessionStore.from_settings(make_settings(F2F_REDIS_URL=node.url, F2F_REDIS_COMMAND_TIMEOUT="5"))
    try:
        first = [_copy(2), _copy(3)]
        assert await store.apply_copies(first) == [1, 1]
        await store.client.script_flush()  # what a restarted Redis looks like to a long-lived client
        second = [_copy(4)]
        assert await store.apply_copies(second) == [1]
        await store.client.script_flush()
        got = await store.read_copies([s.session_id for s in first + second])
        assert [g.version if g else None for g in got] == [2, 3, 4]
        await store.client.script_flush()
        assert len([s async for s in store.iter_sessions()]) == 3
        await store.client.script_flush()  # the request path's read (one EVALSHA) reloads it too
        assert (await store.get(first[0].session_id)).version == 2
    finally:
        await store.close()
        node.stop()
