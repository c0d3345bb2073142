"""``f2f sessions`` through Typer with Redis configured (standalone Redis, this test's own key prefix)."""

from __future__ import annotations

import asyncio
import json

import pytest

from f2f_cli.control.phase import Phase, set_phase
from tests.cli.conftest import Invoke
from tests.integration.test_sessions_ops_redis import forget_redis
from tests.sessions_seed import ops, seed

pytestmark = pytest.mark.redis


@pytest.fixture
def env(pg_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix,
            "F2F_REDIS_COMMAND_TIMEOUT": "5"}


def _prepare(env: dict[str, str], n: int) -> list[str]:
    async def go() -> list[str]:
        extra = {k: v for k, v in env.items() if k != "F2F_DATABASE_URL"}
        async with ops(env["F2F_DATABASE_URL"], **extra) as ctx:
            await set_phase(ctx.engine, Phase.DUAL_WRITE, actor="test", action="test")
            await set_phase(ctx.engine, Phase.DUAL, actor="test", action="test")
            return await seed(ctx, n, ingredients=("김치", "두부"))

    return asyncio.run(go())


def _forget(env: dict[str, str]) -> None:
    async def go() -> None:
        extra = {k: v for k, v in env.items() if k != "F2F_DATABASE_URL"}
        async with ops(env["F2F_DATABASE_URL"], **extra) as ctx:
            await forget_redis(ctx.redis())

    asyncio.run(go())


def test_restore_list_inspect_stats_with_redis(invoke: Invoke, env: dict[str, str]) -> None:
    ids = _prepare(env, 5)
    r = invoke("sessions", "restore", "--dry-run", env=env)
    assert r.exit_code == 0 and "would copy 5 sessions" in r.output
    r = invoke("sessions", "restore", env=env)
    assert r.exit_code == 0, r.output
    assert "restored 5 sessions into Redis" in r.output
    rows = json.loads(invoke("sessions", "list", "--json", "--store", "redis", env=env).output)
    assert sorted(row["session_id"] for row in rows) == sorted(ids) and {row["store"] for row in rows} == {"redis"}
    r = invoke("sessions", "inspect", "--", ids[0], env=env)
    assert r.exit_code == 0 and "SQL" in r.output and "Redis" in r.output and "verdict: in sync" in r.output
    stats = json.loads(invoke("sessions", "stats", "--json", env=env).output)
    assert stats["sql"]["live"] == 5 and stats["redis"]["live"] == 5 and stats["redis"]["memory_mean_bytes"] > 0
    assert "memory per session" in invoke("sessions", "stats", env=env).output

    _forget(env)
    r = invoke("sessions", "inspect", "--json", "--", ids[1], env=env)
    assert json.loads(r.output)["verdict"] == "missing in Redis"
    r = invoke("sessions", "restore", "--since", "1h", "--json", env=env)
    assert json.loads(r.output)["applied"] == 5
    r = invoke("sessions", "restore", "--since", "0s", env=env)
    assert r.exit_code == 2 and "longer than zero" in r.output

    r = invoke("sessions", "delete", "--yes", "--", ids[2], env=env)
    assert r.exit_code == 0 and "sql: deleted" in r.output and "redis: deleted" in r.output
    r = invoke("sessions", "expire", "--yes", "--json", "--", ids[3], env=env)
    assert [o["store"] for o in json.loads(r.output)["stores"]] == ["sql", "redis"]
    assert len(json.loads(invoke("sessions", "list", "--json", env=env).output)) == 3


def test_unreachable_redis_is_one_line(invoke: Invoke, env: dict[str, str]) -> None:
    _prepare(env, 1)
    bad = {**env, "F2F_REDIS_URL": "redis://127.0.0.1:1/0", "F2F_REDIS_CONNECT_TIMEOUT": "0.2"}
    r = invoke("sessions", "restore", env=bad)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Redis" in lines[0] and "Traceback" not in r.output


def test_import_dry_run_reads_redis_too(invoke: Invoke, env: dict[str, str], tmp_path: object) -> None:
    """In dual a line is applied when either store lacks it: the dry run asks both, as the import writes both."""
    _prepare(env, 4)
    path = f"{tmp_path}/sessions.jsonl"
    assert invoke("sessions", "export", "--store", "sql", "-o", path, env=env).exit_code == 0
    _forget(env)  # Redis lost its copies: every line would be applied there

    def counts(*flags: str) -> dict[str, int]:
        r = invoke("sessions", "import", path, "--json", *flags, env=env)
        assert r.exit_code == 0, r.output
        data = json.loads(r.output)
        assert data["stores"] == ["sql", "redis"]
        return {k: data[k] for k in ("applied", "not_newer", "expired")}

    planned = counts("--dry-run")
    assert planned == {"applied": 4, "not_newer": 0, "expired": 0}
    assert counts() == planned
    assert counts("--dry-run") == {"applied": 0, "not_newer": 4, "expired": 0}
