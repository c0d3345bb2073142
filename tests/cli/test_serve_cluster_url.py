"""``f2f serve`` refuses a Redis Cluster URL that names the wrong nodes, naming the node, with exit 2 (a
configuration error): a replica, a node of another Cluster, a Redis not in cluster mode (issue #28)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from f2f_cli.errors import EXIT_USAGE
from tests.cli.conftest import Invoke
from tests.redis_servers import HOST, RedisClusterServers, data_node, free_port


def test_bad_cluster_urls_are_refused_at_start_naming_the_node(
    invoke: Invoke, tmp_path: Path, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    one = redis_cluster_factory(replicas=1)
    other = redis_cluster_factory()
    single = data_node(free_port(), tmp_path / "single").start()
    try:
        replica = one.replica_ports[0]
        cases = {
            f"redis+cluster://{HOST}:{one.ports[0]},{HOST}:{replica}": (f"{HOST}:{replica}", "a replica"),
            f"redis+cluster://{HOST}:{one.ports[0]},{HOST}:{other.ports[1]}": (f"{HOST}:{other.ports[1]}",
                                                                               "another Redis Cluster"),
            f"redis+cluster://{HOST}:{single.port}": (f"{HOST}:{single.port}", "not in cluster mode"),
        }
        for url, (node, why) in cases.items():
            r = invoke("serve", env={"F2F_REDIS_URL": url})
            assert r.exit_code == EXIT_USAGE, r.output
            assert node in r.output and why in r.output, r.output
            assert "Traceback" not in r.output
    finally:
        single.stop()


async def test_a_good_cluster_url_passes_and_a_dead_seed_is_not_a_configuration_error(
    redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    from f2f_cli.redis.seeds import check_cluster_seeds

    cluster = redis_cluster_factory()
    await check_cluster_seeds(cluster.url, seconds=2)
    await check_cluster_seeds(f"{cluster.url},{HOST}:{free_port()}", seconds=2)
    await check_cluster_seeds(f"redis://{HOST}:{free_port()}", seconds=2)  # only Cluster URLs are checked
