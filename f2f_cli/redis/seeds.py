"""Check, at start, that the nodes a ``redis+cluster://`` URL names are primaries of one Cluster.

redis-py takes any reachable node as a seed and discovers the rest, so a URL that names a replica, a node
of another Cluster or a standalone Redis would otherwise start a fleet against the wrong data, or fail
later with an error that names no node. A node that does not answer is left alone: a node down at start
is a fault the fleet rides out, not a configuration error.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from f2f_cli.errors import ConfigError
from f2f_cli.redis.client import REDIS_FAILURES, RedisTarget, parse_redis_url, tls_kwargs


async def _node_view(target: RedisTarget, host: str, port: int, seconds: float) -> tuple[str, dict[str, Any]] | None:
    """(this node's id, its CLUSTER NODES parsed) or None when it does not answer; raises ConfigError when
    it is not in cluster mode."""
    client = Redis(host=host, port=port, username=target.username, password=target.password,
                   socket_connect_timeout=seconds, socket_timeout=seconds, **tls_kwargs(target))
    try:
        info = await client.info("cluster")
        if not int(info.get("cluster_enabled", 0)):
            raise ConfigError(f"F2F_REDIS_URL={target.display!r} names {host}:{port}, which is not in cluster "
                              "mode (cluster_enabled:0): use redis://host:port for a single Redis")
        myid = await client.execute_command("CLUSTER MYID")  # type: ignore[no-untyped-call]
        nodes = await client.execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call]
    except REDIS_FAILURES:
        return None
    finally:
        await client.aclose()
    return (myid.decode() if isinstance(myid, bytes) else str(myid)), _parse_nodes(nodes)


def _parse_nodes(reply: Any) -> dict[str, Any]:
    """``{node id: flags}`` from CLUSTER NODES (raw text, or redis-py's parsed dict)."""
    if isinstance(reply, dict):
        return {info["node_id"]: info["flags"] for info in reply.values()}
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    out: dict[str, Any] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            out[fields[0]] = fields[2]
    return out


async def check_cluster_seeds(url: str, *, seconds: float) -> None:
    """Raise ``ConfigError`` naming the node when a Cluster URL names a replica, a node of another Cluster
    than the first answering node, or a Redis not in cluster mode. Other URL forms pass unchecked."""
    target = parse_redis_url(url)
    if target.mode != "cluster":
        return
    cluster: dict[str, Any] | None = None
    first = ""
    for host, port in target.hosts:
        view = await _node_view(target, host, port, seconds)
        if view is None:
            continue
        myid, nodes = view
        name = f"{host}:{port}"
        if "slave" in str(nodes.get(myid, "")).split(","):
            raise ConfigError(f"F2F_REDIS_URL={target.display!r} names {name}, a replica: name the Cluster's "
                              "primaries (a replica becomes one only when its primary fails)")
        if cluster is None:
            cluster, first = nodes, name
        elif myid not in cluster:
            raise ConfigError(f"F2F_REDIS_URL={target.display!r} names {name}, which belongs to another Redis "
                              f"Cluster than {first}: every node named must be of one Cluster")
