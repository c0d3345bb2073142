"""``f2f bench backup``: usage errors, and one tiny run on the real servers (structure and cleanup, never timings)."""

from __future__ import annotations

import json

import pytest
import redis

from tests.cli.conftest import Invoke


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "one"], "--workers takes comma-separated whole numbers"),
        (["--workers", "0"], "--workers: each value must be between 1 and 64"),
        (["--ingredients", "10,1000"], "--ingredients: each value must be between 0 and 900"),
        (["--mode", "fast"], "--mode must be all, drain or lag"),
        (["--loadgen", "ab"], "--loadgen must be auto, wrk or python"),
    ],
)
def test_bad_options_are_usage_errors(invoke: Invoke, args: list[str], message: str) -> None:
    result = invoke("bench", "backup", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_needs_postgresql_and_redis(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("bench", "backup", env={"F2F_DATABASE_URL": sqlite_url})
    assert result.exit_code == 2
    assert "F2F_REDIS_URL" in result.stderr
    result = invoke("bench", "backup", env={"F2F_DATABASE_URL": sqlite_url, "F2F_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 2
    assert "PostgreSQL" in result.stderr


@pytest.mark.postgres
@pytest.mark.redis
def test_tiny_run_reports_both_measurements_and_cleans_up(
    invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    result = invoke(
        "bench", "backup", "--ingredients", "5", "--workers", "1", "--sessions", "20", "--fill-seconds", "1",
        "--lag-seconds", "1", "--rate", "200", "--copy-sample", "50", "--loadgen", "python", "--json",
        env={"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (scenario,) = report["drain"]
    (run,) = scenario["runs"]
    assert scenario["ingredients"] == 5 and run["workers"] == 1
    assert run["entries"] > 0 and run["entries_per_second"] > 0 and run["serve_adds_per_second"] > 0
    assert run["sessions_applied"] <= run["entries"]  # coalesced, never more
    assert 0 < scenario["baseline_entries"] <= 50 and scenario["baseline_rows"] > scenario["baseline_entries"]
    lag = report["lag"]
    assert lag["writes"] > 0 and lag["entries"] == lag["writes"]  # every write reached SQL and was timed
    assert lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]
    assert report["cleanup"]["databases"] == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}:*")) == []
    finally:
        client.close()
