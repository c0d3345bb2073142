"""``f2f migrate status`` shows Redis faults (state, restore progress, RPO estimate, conflict report), and
``f2f migrate to redis`` waits for the fleet's own recovery."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import psycopg

from tests.cli.conftest import Invoke
from tests.redis_servers import HOST, RedisClusterServers


def _sql(pg_url: str, *statements: str) -> None:
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for statement in statements:
            conn.execute(statement)


def test_status_shows_recovery_and_conflicts(invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    _sql(pg_url,
         "UPDATE f2f_control SET phase='dual', redis_trusted=false, redis_state='recovering', "
         "redis_state_since=now(), rpo_estimate=7, restore_done=40, restore_total=100",
         "INSERT INTO f2f_failover_conflicts (found_at, session_id, redis_version, sql_version, lost) "
         "VALUES (now(), 'x', 5, 4294967300, '{\"ingredients\": [\"[bold]두부\"], \"deleted\": false}')")
    r = invoke("migrate", "status", env=env)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "Redis recovering since" in text and "restore 40/100 sessions" in text
    assert "estimated writes lost (RPO): 7" in text
    assert "1 Redis writes lost to failover-time writes" in text and "f2f_failover_conflicts" in text
    r = invoke("migrate", "status", "--json", env=env)
    faults = json.loads(r.output)["faults"]
    assert faults["redis_state"] == "recovering" and faults["conflicts"] == 1
    assert faults["latest_conflicts"][0]["lost"]["ingredients"] == ["[bold]두부"]  # literal, never markup
    r = invoke("migrate", "to", "redis", "--yes", env=env)
    assert r.exit_code == 1
    assert "Redis is recovering" in " ".join(r.output.split())


def test_status_names_a_cluster_shard_failing_over_or_lost(
    invoke: Invoke, pg_url: str, redis_prefix: str, redis_cluster_factory: Callable[..., RedisClusterServers],
) -> None:
    cluster = redis_cluster_factory(replicas=1, node_timeout_ms=1000, full_coverage=False)
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": cluster.url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    _sql(pg_url, "UPDATE f2f_control SET phase='redis'")
    first = cluster.primary_ports()[0]
    slots = len(cluster.slots_of(first))
    cluster.kill(cluster.replica_of(first))
    cluster.kill(first)
    deadline = time.monotonic() + 60
    seen: list[object] = []  # every answer, in the failure message: what the Cluster said while it settled
    while True:  # the Cluster flags the node failing after its node timeout
        r = invoke("migrate", "status", "--json", env=env)
        # ``shards`` is null while no node answered CLUSTER NODES in time (the client may try the dead pair first)
        reported = json.loads(r.output)["shards"]
        shards = {s["primary"]: s["state"] for s in reported or []}
        if not seen or seen[-1] != reported:
            seen.append(reported)
        if shards.get(f"{HOST}:{first}") == "lost" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert shards.get(f"{HOST}:{first}") == "lost", (first, seen, r.output[-2000:])
    assert sorted(shards.values()).count("ok") == 2
    r = invoke("migrate", "status", env=env)
    text = " ".join(r.output.split())
    assert f"Redis Cluster shard {HOST}:{first} ({slots} slots): lost" in text
    assert f"Redis Cluster shard {HOST}:{first} ({slots} slots) is LOST" in text  # the advice
