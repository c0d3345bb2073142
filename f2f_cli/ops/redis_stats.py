"""``f2f sessions stats``, Redis side: counts and TTLs from a SCAN pass, sampled memory, backup lag."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import msgspec
from redis.exceptions import RedisError

from f2f_cli.clock import utcnow
from f2f_cli.errors import StoreUnavailable
from f2f_cli.ops.stats import BUCKET_BOUNDS, OPEN_BUCKET, TTL_BUCKETS, Bucket, TopIngredient
from f2f_cli.redis.client import scan_keys
from f2f_cli.stores.redis import RedisSessionStore


class BackupLag(msgspec.Struct, frozen=True):
    streams: int
    entries: int
    oldest_entry_age_seconds: float | None


class RedisStats(msgspec.Struct, frozen=True):
    at: datetime
    scanned: int
    complete: bool  # False when --sample stopped the scan early
    live: int
    tombstones: int
    mean_ingredients: float
    max_ingredients: int
    ttl_histogram: list[Bucket]
    top_ingredients: list[TopIngredient]
    memory_sampled: int
    memory_mean_bytes: float | None
    memory_max_bytes: int | None
    backup: BackupLag | None


def _bucket(ttl_seconds: float) -> str:
    for label, bound in BUCKET_BOUNDS:
        if ttl_seconds <= bound.total_seconds():
            return label
    return OPEN_BUCKET


async def _memory(store: RedisSessionStore, keys: list[str]) -> list[int]:
    if not keys:
        return []
    pipe = store.client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("MEMORY USAGE", key, "SAMPLES", "0")
    try:
        replies = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    return [int(r) for r in replies if r is not None]


async def backup_lag(store: RedisSessionStore) -> BackupLag:
    """Entries waiting in the backup streams (the worker deletes what SQL committed) and the oldest one's age."""
    streams = entries = 0
    oldest_ms: int | None = None
    try:
        async for key in scan_keys(store.client, f"{store.keys.prefix}:bk*", type_="stream"):
            streams += 1
            entries += int(await store.client.xlen(key))
            first = await store.client.xrange(key, count=1)
            if first:
                entry_id = first[0][0]
                text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                ms = int(text.split("-")[0])
                oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
    age = None if oldest_ms is None else round(utcnow().timestamp() - oldest_ms / 1000, 3)
    return BackupLag(streams, entries, age)


async def redis_stats(
    store: RedisSessionStore,
    *,
    top: int = 10,
    sample: int | None = None,
    memory_sample: int = 200,
    with_backup: bool = False,
) -> RedisStats:
    now = utcnow()
    live = tombstones = scanned = total_items = max_items = 0
    hist: Counter[str] = Counter()
    names: Counter[str] = Counter()
    memory_keys: list[str] = []
    complete = True
    async for session in store.iter_sessions(1000, include_deleted=True):
        if sample is not None and scanned >= sample:
            complete = False
            break
        scanned += 1
        if len(memory_keys) < memory_sample:
            memory_keys.append(store.keys.session(session.session_id))
        if session.deleted:
            tombstones += 1
            continue
        live += 1
        hist[_bucket(session.ttl_seconds(now))] += 1
        total_items += len(session.ingredients)
        max_items = max(max_items, len(session.ingredients))
        names.update(i.name for i in session.ingredients)
    sizes = await _memory(store, memory_keys)
    labels = [label for label, _ in TTL_BUCKETS] + [OPEN_BUCKET]
    return RedisStats(
        at=now,
        scanned=scanned,
        complete=complete,
        live=live,
        tombstones=tombstones,
        mean_ingredients=round(total_items / live, 2) if live else 0.0,
        max_ingredients=max_items,
        ttl_histogram=[Bucket(label, hist.get(label, 0)) for label in labels],
        top_ingredients=[TopIngredient(n, c) for n, c in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        memory_sampled=len(sizes),
        memory_mean_bytes=round(sum(sizes) / len(sizes), 1) if sizes else None,
        memory_max_bytes=max(sizes) if sizes else None,
        backup=await backup_lag(store) if with_backup else None,
    )
