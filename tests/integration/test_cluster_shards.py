"""Shard states on a real local Cluster with replicas: a dead primary is ``failing-over`` until its replica
takes over, a shard whose replica is dead too is ``lost`` (``f2f_cli.redis.shards``, read by ``f2f migrate
status`` and ``/metrics``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from f2f_cli.redis.client import create_redis_for_url
from f2f_cli.redis.shards import Shard, ShardState, shard_states
from tests.redis_servers import HOST, RedisClusterServers


async def _until(client: object, primary: str, wanted: ShardState, limit: float = 60.0) -> list[Shard]:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        shards = await shard_states(client) or []  # type: ignore[arg-type]
        if any(s.primary == primary and s.state is wanted for s in shards):
            return shards
        await asyncio.sleep(0.1)
    raise AssertionError(f"{primary} never became {wanted}")


async def test_a_dead_primary_is_failing_over_and_a_dead_shard_lost(
    redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory(replicas=1, node_timeout_ms=2000)
    client = create_redis_for_url(cluster.url, connect_timeout=0.5, command_timeout=0.5)
    try:
        shards = await shard_states(client)
        assert shards is not None and [s.state for s in shards] == [ShardState.OK] * 3
        assert sum(s.slots for s in shards) == 16384
        first, second = cluster.primary_ports()[:2]
        cluster.kill(first)
        failing = await _until(client, f"{HOST}:{first}", ShardState.FAILING_OVER)
        assert sorted(s.state for s in failing).count(ShardState.OK) == 2
        cluster.wait_promoted(first)
        after = await shard_states(client) or []
        assert f"{HOST}:{first}" not in [s.primary for s in after]  # its replica serves the slots now
        assert [s.state for s in after] == [ShardState.OK] * 3
        cluster.kill(cluster.replica_of(second))
        cluster.kill(second)
        await _until(client, f"{HOST}:{second}", ShardState.LOST)
    finally:
        await client.aclose()

