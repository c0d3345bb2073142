"""The generation marker: a value Redis carries (on every primary) and ``f2f_control`` records.

Redis without persistence comes back empty after a restart, and nothing else tells a client so:
a session that is gone looks exactly like one that expired. The marker makes the difference
visible: as long as a primary holds the value ``f2f_control`` recorded, it has not lost its data
since the marker was written; a missing (or foreign) marker means it has.

On a Cluster every primary carries its own marker, in the first slot it serves, so a single
primary restarted empty is seen too. A resharding that moves that slot away makes the new owner
look as if it lost data; the cost is one needless restore (version-guarded, so harmless).
"""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster

from f2f_cli.redis.client import REDIS_FAILURES, RedisClient
from f2f_cli.redis.keys import RedisKeys


def marker_keys(client: RedisClient, keys: RedisKeys) -> list[str]:
    """One marker key per primary (the client's current view of the slot map)."""
    if not isinstance(client, RedisCluster):
        return [keys.marker()]
    first: dict[str, int] = {}
    for slot, nodes in sorted(client.nodes_manager.slots_cache.items()):
        if nodes:
            first.setdefault(nodes[0].name, slot)
    return [keys.marker(slot) for slot in sorted(first.values())]


async def read_markers(client: RedisClient, keys: RedisKeys) -> list[str | None]:
    """The marker of every primary (``None`` where missing), in one pipeline. Raises on Redis errors."""
    if isinstance(client, RedisCluster) and not client.nodes_manager.slots_cache:
        await client.initialize()
    names = marker_keys(client, keys)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(name)
    values = await pipe.execute()
    return [v.decode() if isinstance(v, bytes) else v for v in values]


async def read_reachable_markers(client: RedisClient, keys: RedisKeys) -> tuple[list[str | None], int]:
    """The markers of the primaries that answer, and how many did not (a Cluster shard failing over or
    lost). Raises the first error when none answered: Redis as a whole is unreachable."""
    if not isinstance(client, RedisCluster):
        return await read_markers(client, keys), 0
    if not client.nodes_manager.slots_cache:
        await client.initialize()
    replies = await asyncio.gather(*(client.get(name) for name in marker_keys(client, keys)), return_exceptions=True)
    found: list[str | None] = []
    errors: list[BaseException] = []
    for reply in replies:
        if isinstance(reply, BaseException):
            if not isinstance(reply, REDIS_FAILURES):
                raise reply
            errors.append(reply)
        else:
            found.append(reply.decode() if isinstance(reply, bytes) else reply)
    if errors and not found:
        raise errors[0]
    return found, len(errors)


async def write_markers(client: RedisClient, keys: RedisKeys, value: str, *, only_missing: bool = False) -> None:
    """Set the marker on every primary (no expiry); ``only_missing`` leaves existing ones alone."""
    if isinstance(client, RedisCluster) and not client.nodes_manager.slots_cache:
        await client.initialize()
    pipe = client.pipeline(transaction=False)
    for name in marker_keys(client, keys):
        pipe.set(name, value, nx=only_missing)
    await pipe.execute()


def markers_match(found: list[str | None], expected: str) -> bool:
    return bool(found) and all(v == expected for v in found)
