"""The backup lag per shard: what each Redis primary's backup streams still hold.

On a Cluster a write's backup entry lives on the primary that took the write (``redis.node_streams``), so the
backlog is a property of a shard: one slow or overloaded primary shows as its own row while the total looks
small. Shards are named by their primary (``host:port``; one Redis or a Sentinel group: ``"redis"``), which
bounds the labels of the metric to the number of primaries, never the 16,384 slots.

Like :func:`f2f_cli.backup.worker.backup_lag`, this reads every slot's stream, not only the node streams:
``f2f migrate`` uses it to know the backup is drained, so it must not trust the worker's index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from f2f_cli.backends import Backends
from f2f_cli.backup.worker import BackupLag, _streams_with_entries
from f2f_cli.errors import StoreUnavailable
from f2f_cli.redis.client import REDIS_FAILURES, RedisClient, primaries
from f2f_cli.redis.keys import BACKUP_GROUP, RedisKeys
from f2f_cli.settings import Settings

ONE_REDIS = "redis"


@dataclass(frozen=True, slots=True)
class ShardedLag:
    """The backlog in total and per shard (every primary listed, those with nothing left too)."""

    overall: BackupLag
    shards: dict[str, BackupLag]

    # The fields of a ``BackupLag`` (what /metrics and the runtime read), for the whole backup.
    @property
    def pending(self) -> int:
        return self.overall.pending

    @property
    def undelivered(self) -> int:
        return self.overall.undelivered

    @property
    def oldest_age_ms(self) -> int | None:
        return self.overall.oldest_age_ms

    @property
    def total(self) -> int:
        return self.overall.total


def _first_id_ms(reply: Any) -> int | None:
    if not reply or reply[0][0] is None:
        return None
    eid = reply[0][0]
    return int((eid.decode() if isinstance(eid, bytes) else eid).partition("-")[0])


def _combine(parts: list[BackupLag]) -> BackupLag:
    ages = [p.oldest_age_ms for p in parts if p.oldest_age_ms is not None]
    return BackupLag(
        pending=sum(p.pending for p in parts),
        undelivered=sum(p.undelivered for p in parts),
        oldest_age_ms=max(ages) if ages else None,
        streams=sum(p.streams for p in parts),
    )


async def backup_lag_by_shard(client: RedisClient, keys: RedisKeys) -> ShardedLag:
    """Pending, undelivered, oldest entry's age and non-empty streams, per primary and in total."""
    try:
        nodes = await primaries(client)
        present = await _streams_with_entries(client, keys)
        pipe = client.pipeline(transaction=False)
        for stream, _ in present:
            pipe.xpending(stream, BACKUP_GROUP)
            pipe.xrange(stream, count=1)
        replies = await pipe.execute() if present else []
        now_ms = int(time.time() * 1000)
        per: dict[str, list[BackupLag]] = {ONE_REDIS: []} if nodes is None else {n.name: [] for n in nodes}
        cluster: Any = client
        for i, (stream, length) in enumerate(present):
            pending = int(replies[2 * i]["pending"])
            first = _first_id_ms(replies[2 * i + 1])
            shard = ONE_REDIS if nodes is None else \
                cluster.nodes_manager.get_node_from_slot(keys.backup_slot_of_stream(stream)).name  # fmt: skip
            per.setdefault(shard, []).append(BackupLag(
                pending=pending, undelivered=length - pending,
                oldest_age_ms=None if first is None else max(0, now_ms - first), streams=1,
            ))  # fmt: skip
    except REDIS_FAILURES as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    shards = {name: _combine(parts) for name, parts in sorted(per.items())}
    return ShardedLag(overall=_combine(list(shards.values())), shards=shards)


async def read_sharded_lag(settings: Settings) -> ShardedLag:
    async with Backends.open(settings) as backends:
        store = backends.redis()
        return await backup_lag_by_shard(store.client, store.keys)
