"""``f2f bench http`` with tiny sizes on the real servers: output structure and cleanup, never timings."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from f2f_cli.cli.main import app
from f2f_cli.redis.client import create_redis, scan_keys
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.integration.conftest import redis_url_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["bench", "http", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return report


def _check_report(report: dict, phase: str, rounds: int) -> None:  # type: ignore[type-arg]
    assert report["phase"] == phase and report["rounds"] == rounds
    assert [s["name"] for s in report["scenarios"]] == ["get", "add"]
    for scenario in report["scenarios"]:
        assert len(scenario["f2f_runs"]) == rounds and len(scenario["baseline_runs"]) == rounds
        for who in ("f2f", "baseline"):
            stats = scenario[who]
            assert stats["requests"] > 0 and stats["requests_per_second"] > 0
            assert stats["non_2xx"] == 0 and stats["errors"] == 0
            assert stats["p50_ms"] <= stats["p99_ms"]
        assert scenario["ratio"] == pytest.approx(
            scenario["f2f"]["requests_per_second"] / scenario["baseline"]["requests_per_second"])
        assert scenario["meets_target"] == (scenario["ratio"] >= scenario["target"])
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["postgresql"] and machine["load_generator"]
    # f2f ran with its default logging: an access line per request it served.
    assert report["f2f_logging"].startswith("default: F2F_LOG_LEVEL=info")
    served = sum(r["requests"] for s in report["scenarios"] for r in s["f2f_runs"])
    assert report["f2f_access_lines"] >= served


def _database_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_URL) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


def test_redis_phase(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    chart = tmp_path / "http.png"
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    report = _run(monkeypatch, env, "--phase", "redis", "--duration", "1", "--connections", "2", "--rounds", "1",
                  "--warmup", "0", "--sessions", "3", "--ingredients", "2", "--plot", str(chart))
    _check_report(report, "redis", 1)
    assert report["load_generator"].startswith("wrk") == (shutil.which("wrk") is not None)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["database"].startswith("f2f_bench_") and not _database_exists(report["database"])
    assert report["cleanup"]["redis_keys"] >= 3  # the sessions (and the backup stream)
    assert _keys(redis_url, redis_prefix) == []


def test_postgres_phase_with_the_builtin_client(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    report = _run(monkeypatch, env, "--phase", "postgres", "--duration", "1", "--connections", "2", "--rounds", "2",
                  "--warmup", "0", "--sessions", "2", "--ingredients", "1", "--loadgen", "python")
    _check_report(report, "postgres", 2)
    assert report["load_generator"].startswith("built-in")
    assert not _database_exists(report["database"])
    assert _keys(redis_url, redis_prefix) == []


def test_bad_phase_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("F2F_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(app, ["bench", "http", "--phase", "dual"])
    assert result.exit_code == 2
    assert "--phase must be one of" in result.stderr


@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_redis_phase_on_every_url_form(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, mode: str, pg_url: str, redis_prefix: str
) -> None:
    # redis-py's parse_url knows neither redis+cluster:// nor redis+sentinel://: the bench, its baseline app
    # and its clean-up go through f2f's own client factory, as f2f serve does.
    url = redis_url_for(request, mode)
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": url, "F2F_REDIS_KEY_PREFIX": redis_prefix}
    report = _run(monkeypatch, env, "--phase", "redis", "--duration", "1", "--connections", "2", "--rounds", "1",
                  "--warmup", "0", "--sessions", "3", "--ingredients", "2", "--loadgen", "python")
    _check_report(report, "redis", 1)
    assert report["machine"]["redis"]
    assert report["cleanup"]["redis_keys"] >= 3
    assert asyncio.run(_keys_anywhere(url, redis_prefix)) == []


async def _keys_anywhere(url: str, prefix: str) -> list[bytes]:
    client = create_redis(make_settings(F2F_REDIS_URL=url))
    try:
        return [key async for key in scan_keys(client, f"{prefix}*")]
    finally:
        await client.aclose()
