"""The local Cluster with replicas that the failover and backup tests share behaves like a real one."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.redis_servers import HOST, RedisClusterServers


def test_a_killed_primary_is_replaced_by_its_replica(
    redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory(replicas=1, node_timeout_ms=1000)
    assert len(cluster.all_ports) == 6
    primaries = cluster.primary_ports()
    assert primaries == sorted(cluster.ports)
    victim = primaries[0]
    replica = cluster.replica_of(victim)
    assert replica in cluster.replica_ports

    client = redis.RedisCluster(host=HOST, port=primaries[1])
    try:
        # A key on the victim's slots, written before the kill, is on its replica after the promotion.
        key = next(f"k{i}" for i in range(10_000) if client.get_node_from_key(f"k{i}").port == victim)
        client.set(key, "kept")
        client.wait(1, 2000, target_nodes=client.get_node_from_key(key))
        cluster.kill(victim)
        assert cluster.wait_promoted(victim) == 3
        assert replica in cluster.primary_ports()
    finally:
        client.close()
    with redis.RedisCluster(host=HOST, port=replica) as fresh:
        assert fresh.get(key) == b"kept"
