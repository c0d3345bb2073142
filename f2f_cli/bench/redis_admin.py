"""What every bench asks of the Redis it was pointed at, for every URL form f2f serves with (one Redis,
``redis+sentinel://``, ``redis+cluster://``): its version and the removal of the keys a run wrote."""

from __future__ import annotations

from typing import Any

from f2f_cli.redis.client import create_redis, scan_keys
from f2f_cli.settings import Settings


async def redis_version(settings: Settings) -> str | None:
    """``redis_version`` of the server (any node of a Cluster)."""
    client = create_redis(settings, command_timeout=5)
    try:
        info: Any = await client.info("server")
    finally:
        await client.aclose()
    if "redis_version" not in info:  # a Cluster answers per node
        info = next(iter(info.values()), {})
    version = info.get("redis_version")
    return None if version is None else str(version)


async def delete_prefix(settings: Settings, prefix: str) -> int:
    """Delete every key under ``prefix`` (every primary of a Cluster)."""
    client = create_redis(settings, command_timeout=10)
    removed = 0
    try:
        async for key in scan_keys(client, f"{prefix}:*", count=1000):
            removed += int(await client.delete(key))
    finally:
        await client.aclose()
    return removed
