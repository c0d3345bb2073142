"""``redis.node_streams`` after a resharding moved a primary's first slot: redis-py applies a MOVED to its slot
map in place, so a client's view of "the first slot each primary serves" must notice the change itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio.cluster import RedisCluster

from f2f_cli.redis.client import create_redis_for_url
from f2f_cli.redis.keys import RedisKeys
from f2f_cli.redis.node_streams import NodeStreams
from tests.redis_servers import HOST, RedisClusterServers

pytestmark = pytest.mark.redis


async def test_a_moved_first_slot_is_noticed_without_a_fresh_map(
    redis_cluster_factory: Callable[..., RedisClusterServers], redis_prefix: str
) -> None:
    cluster = redis_cluster_factory()
    a, b, _ = cluster.primary_ports()
    keys = RedisKeys(redis_prefix, cluster=True)
    client = create_redis_for_url(cluster.url, connect_timeout=5, command_timeout=5)
    assert isinstance(client, RedisCluster)
    try:
        await client.initialize()
        streams = NodeStreams(keys)
        first_a = min(cluster.slots_of(a))
        first_b = min(cluster.slots_of(b))
        assert streams.streams(client)[f"{HOST}:{a}"] == keys.slot_stream(first_a)
        await asyncio.to_thread(cluster.reshard, a, b, 1)
        assert first_a in cluster.slots_of(b)
        assert not streams.moved(client)  # the client has not been told yet
        await client.get(keys.slot_stream(first_a))  # MOVED: redis-py updates that one slot in place
        assert streams.moved(client)
        # A's sessions now name A's new first slot, B's name their own first slot's stream as before.
        assert streams.for_slot(client, first_a + 1) == keys.slot_stream(first_a + 1)
        assert streams.for_slot(client, first_b) == keys.slot_stream(min(first_a, first_b))
        assert not streams.moved(client)
    finally:
        await client.aclose()
