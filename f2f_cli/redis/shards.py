"""The state of each Redis Cluster shard (a primary that serves slots, and its replicas), as the Cluster sees it.

- ``ok``: the primary answers its peers;
- ``failing-over``: the Cluster flags the primary failing (``pfail``/``fail``) and a healthy replica can take
  its slots over: writes of its sessions are held, reads come from the SQL backup (``stores/backed.py``);
- ``lost``: the primary is failing and no healthy replica is left: its sessions are read from the backup
  until it comes back, empty, and the fleet restores it (the generation marker tells).

Read from ``CLUSTER NODES`` of the first node that answers; ``None`` for a client that is not a Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis._parsers.helpers import parse_cluster_nodes
from redis.asyncio.cluster import RedisCluster

from f2f_cli.redis.client import REDIS_FAILURES, RedisClient


class ShardState(StrEnum):
    OK = "ok"
    FAILING_OVER = "failing-over"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Shard:
    primary: str  # host:port
    slots: int
    state: ShardState


def _failing(flags: str) -> bool:
    return bool({"fail", "pfail", "fail?"} & set(flags.split(",")))


def shards_from_nodes(nodes: dict[str, dict[str, Any]]) -> list[Shard]:
    """Classify the shards of a parsed ``CLUSTER NODES`` reply (``{host:port: {flags, node_id, ...}}``)."""
    healthy_replicas: dict[str, int] = {}
    for info in nodes.values():
        if "slave" in info["flags"].split(",") and not _failing(info["flags"]):
            healthy_replicas[info["master_id"]] = healthy_replicas.get(info["master_id"], 0) + 1
    shards: list[Shard] = []
    for name, info in nodes.items():
        ranges = info.get("slots") or []
        if "master" not in info["flags"].split(",") or not ranges:
            continue
        count = sum(int(r[-1]) - int(r[0]) + 1 for r in ranges)
        if not _failing(info["flags"]):
            state = ShardState.OK
        elif healthy_replicas.get(info["node_id"], 0):
            state = ShardState.FAILING_OVER
        else:
            state = ShardState.LOST
        shards.append(Shard(name.partition("@")[0], count, state))
    return sorted(shards, key=lambda s: s.primary)


async def shard_states(client: RedisClient) -> list[Shard] | None:
    """Every shard of the Cluster with its state; ``None`` when ``client`` is not a Cluster client.

    Raises the last error when no node answered (Redis as a whole is unreachable)."""
    if not isinstance(client, RedisCluster):
        return None
    last: BaseException | None = None
    started = True
    try:
        if not client.nodes_manager.slots_cache:
            await client.initialize()
        nodes = client.get_nodes()
    except REDIS_FAILURES as exc:
        # redis-py's first start asks its default node (the primary of the first slots) for COMMAND and gives up
        # when that node is down: exactly when a shard is lost. Ask the addresses the client was given instead.
        last, started, nodes = exc, False, list(client.nodes_manager.startup_nodes.values())
    for node in nodes:
        try:
            if started:
                reply = await client.execute_command("CLUSTER NODES", target_nodes=node)
            else:  # the client did not start: straight to the node, parsed as the client would
                try:
                    raw = await node.execute_command("CLUSTER NODES")
                finally:
                    await node.disconnect()  # the client closed its own before giving up
                reply = raw if isinstance(raw, dict) else parse_cluster_nodes(raw)  # type: ignore[no-untyped-call]
        except REDIS_FAILURES as exc:
            last = exc
            continue
        return shards_from_nodes(reply)
    raise last if last is not None else ConnectionError("the Cluster client knows no node")
