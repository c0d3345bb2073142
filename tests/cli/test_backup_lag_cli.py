"""``f2f worker --lag`` and ``f2f migrate status``: the backup lag per shard (Redis primary) on a Cluster, one
table row and one JSON object per primary; one Redis shows the totals alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from redis.crc import key_slot

from f2f_cli.stores.redis import RedisSessionStore
from tests.cli.conftest import Invoke
from tests.conftest import make_settings
from tests.redis_servers import HOST, RedisClusterServers


async def _writes(env: dict[str, str], sessions: int, adds: int) -> list[str]:
    """Sessions written in the redis phase with no worker running: every entry stays in its primary's stream."""
    store = RedisSessionStore.from_settings(make_settings(**env), backup_stream=True)
    try:
        ids = [(await store.create()).session_id for _ in range(sessions)]
        for n in range(adds):
            await asyncio.gather(*(store.add_ingredients(sid, [f"재료{n}"]) for sid in ids))
        return ids
    finally:
        await store.close()


def test_lag_per_shard_on_a_cluster(
    invoke: Invoke, pg_url: str, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory()
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": cluster.url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    ids = asyncio.run(_writes(env, sessions=12, adds=2))
    expected = {f"{HOST}:{port}": 0 for port in cluster.primary_ports()}
    for sid in ids:
        port = next(p for p in cluster.primary_ports() if key_slot(sid.encode()) in cluster.slots_of(p))
        expected[f"{HOST}:{port}"] += 3  # the create and two adds

    r = invoke("worker", "--lag", "--json", env=env)
    assert r.exit_code == 0, r.output
    lag = json.loads(r.stdout)
    assert lag["total"] == lag["undelivered"] == 36 and lag["pending"] == 0
    assert {name: shard["total"] for name, shard in lag["shards"].items()} == expected
    assert all(shard["oldest_age_ms"] is not None for shard in lag["shards"].values() if shard["total"])

    r = invoke("worker", "--lag", env=env)
    text = " ".join(r.stdout.split())
    assert "backlog 36 (pending 0, undelivered 36)" in text and "backup lag per shard" in text
    assert all(name in text for name in expected)

    r = invoke("migrate", "status", "--json", env=env)
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert status["backup_backlog"] == 36
    assert {name: shard["total"] for name, shard in status["backup_shards"].items()} == expected
    r = invoke("migrate", "status", env=env)
    assert "backup lag per shard" in r.stdout and all(name in r.stdout for name in expected)


def test_one_redis_shows_the_totals_and_one_shard(
    invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    asyncio.run(_writes(env, sessions=2, adds=1))
    lag = json.loads(invoke("worker", "--lag", "--json", env=env).stdout)
    assert lag["total"] == 4 and lag["streams"] == 1
    assert list(lag["shards"]) == ["redis"] and lag["shards"]["redis"]["total"] == 4
    text = invoke("worker", "--lag", env=env).stdout
    assert "streams with entries 1" in text and "per shard" not in text
    status = json.loads(invoke("migrate", "status", "--json", env=env).stdout)
    assert status["backup_backlog"] == 4 and status["backup_shards"] is None
