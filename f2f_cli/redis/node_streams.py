"""Cluster: each primary's own backup stream, and the stream a write of a session should append to.

A write appends its backup entry in the same Lua script that changes the session. On a Cluster the
script is routed by the session key, so it runs on the primary that owns the session's slot. One stream
per hash slot (16,384 of them, the fallback every write can use) would make the worker read one stream per
entry; instead each primary has **one node stream**: the slot stream of the first slot it serves (the
convention of the generation marker). The write script is allowed to touch that key although it lives in
another slot of the same node (``allow-cross-slot-keys``); when it is not local (the client's slot map is
stale: a resharding or a failover under way), the script falls back to the session's own slot stream and
the store names that slot in the backup index, which the worker reads beside the node streams.

A resharding that moves a node's first slot moves its stream with it (keys, consumer group and pending
entries travel together); the new owner then holds two node streams until the old one is drained: the
worker reads both, because it reads every stream the index or the topology names.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from f2f_cli.redis.client import RedisClient
from f2f_cli.redis.keys import RedisKeys


def _owner(cache: dict[Any, Any], slot: int) -> str | None:
    nodes = cache.get(slot)
    return str(nodes[0].name) if nodes else None


class NodeStreams:
    """The node streams of the client's current slot map, rebuilt when the map is replaced."""

    def __init__(self, keys: RedisKeys) -> None:
        self._keys = keys
        self._map: Any = None
        self._first: dict[str, int] = {}  # primary name -> first slot it serves

    def _refresh(self, client: RedisCluster) -> dict[Any, Any]:
        cache: dict[Any, Any] = client.nodes_manager.slots_cache
        if cache is not self._map:
            first: dict[str, int] = {}
            for slot in sorted(cache):
                nodes = cache[slot]
                if nodes:
                    first.setdefault(nodes[0].name, slot)
            self._map, self._first = cache, first
        return cache

    @staticmethod
    def needs_map(client: RedisClient) -> bool:
        """True when a Cluster client has not read its slot map yet (before its first command)."""
        return isinstance(client, RedisCluster) and not client.nodes_manager.slots_cache

    def for_slot(self, client: RedisClient, slot: int) -> str:
        """The node stream of the primary the client believes serves ``slot`` ('' if unknown)."""
        if not isinstance(client, RedisCluster):
            return ""
        cache = self._refresh(client)
        nodes = cache.get(slot)
        if not nodes:
            return ""
        first = self._first.get(nodes[0].name)
        if first is None or _owner(cache, first) != nodes[0].name:
            # A primary the map gained in place (MOVED), or a first slot that moved away in place (redis-py
            # updates a MOVED slot without replacing the map): rebuild once.
            self._map = None
            self._refresh(client)
            first = self._first.get(nodes[0].name)
        return "" if first is None else self._keys.slot_stream(first)

    def moved(self, client: RedisClient) -> bool:
        """True when the client's map now gives a primary's first slot to another node (redis-py applied a
        MOVED in place): the map is partly stale, and only a fresh CLUSTER SLOTS says the new first slots."""
        if not isinstance(client, RedisCluster):
            return False
        cache = self._refresh(client)
        return any(_owner(cache, first) != name for name, first in self._first.items())

    def streams(self, client: RedisClient) -> dict[str, str]:
        """Primary name -> its node stream, for every primary of the current map."""
        if not isinstance(client, RedisCluster):
            return {}
        self._refresh(client)
        return {name: self._keys.slot_stream(slot) for name, slot in self._first.items()}
