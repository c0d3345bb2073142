"""``f2f bench sessions`` with tiny sizes on the real servers: output structure and cleanup, never timings."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import redis

from f2f_cli.bench.session_stores import OPS, PLAN, RAW_REDIS, RAW_SQL, STORES
from tests.cli.conftest import Invoke

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _sync_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _session_rows(url: str) -> int:
    with psycopg.connect(_sync_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM fridge_sessions").fetchone()
        assert row is not None
        return int(row[0])


def _keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


def test_all_stores_json_structure_and_cleanup(
    invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    chart = tmp_path / "sessions.svg"
    result = invoke("bench", "sessions", "--ops", "12", "--concurrency", "3", "--ingredients", "4", "--rounds", "2",
                    "--json", "--plot", str(chart), env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    assert report["seed"] == 42 and report["ops_per_store"] == 12 and report["ingredients"] == 4
    assert report["stores"] == [*STORES, PLAN]
    for target in (*STORES, PLAN):
        assert set(report["results"][target]) == set(OPS)
        for op in OPS:
            stats = report["results"][target][op]
            assert stats["ops"] + stats["errors"] == 12
            assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
    assert set(report["results"][RAW_REDIS]) == {"get"} and set(report["results"][RAW_SQL]) == {"get", "add"}

    assert [r["op"] for r in report["ratios"]] == list(OPS)
    for r in report["ratios"]:
        assert r["speedup_p50"] == pytest.approx(r["sql_p50_ms"] / r["redis_p50_ms"])
        assert r["holds_10x"] == (r["speedup_p50"] >= 10)
        assert r["verdict"].startswith("holds" if r["holds_10x"] else "does not hold")
    assert set(report["plan_vs_redis"]) == set(OPS)
    assert {(r["store"], r["op"], r["raw"]) for r in report["raw_ratios"]} == {
        ("redis", "get", RAW_REDIS), ("dual", "get", RAW_REDIS), ("sql", "get", RAW_SQL), ("sql", "add", RAW_SQL)}
    for r in report["raw_ratios"]:
        assert r["ratio_p50"] == pytest.approx(r["store_p50_ms"] / r["raw_p50_ms"])

    memory = report["memory"]
    assert memory["ingredients"] == 4 and memory["f2f_hash_bytes"] > 0 and memory["plan_json_bytes"] > 0
    # The plan's GET + modify + SETEX loses concurrent adds; every f2f store is atomic.
    race = report["race"]
    assert race["lost"][PLAN] > 0
    assert all(race["lost"][s] == 0 for s in STORES)

    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and machine["redis"] and machine["postgresql"]
    assert chart.read_text().lstrip().startswith("<?xml")

    assert report["cleanup"]["sql_rows"] > 0 and report["cleanup"]["redis_keys"] > 0
    assert _session_rows(pg_url) == 0
    assert _keys(redis_url, redis_prefix) == []


def test_table_output_sql_only_on_sqlite(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("bench", "sessions", "--store", "sql", "--ops", "5", "--concurrency", "2",
                    env={"F2F_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0, result.output
    assert "session stores" in result.stdout and "machine:" in result.stdout
    assert "SQLite" in result.stdout  # the note that the honest comparison needs PostgreSQL
    assert "cleaned up: " in result.stdout


def test_unknown_store_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("bench", "sessions", "--store", "mongo")
    assert result.exit_code == 2
    assert "--store must be one of" in result.stderr


def test_redis_store_without_redis_url(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("bench", "sessions", "--store", "redis", env={"F2F_DATABASE_URL": sqlite_url})
    assert result.exit_code == 2
    assert "F2F_REDIS_URL" in result.stderr
