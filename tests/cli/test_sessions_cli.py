"""``f2f sessions`` end to end through Typer on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from f2f_cli.domain.ids import new_session_id
from tests.cli.conftest import Invoke
from tests.sessions_seed import ops, seed


def _seed(url: str, n: int, **kwargs: object) -> list[str]:
    async def go() -> list[str]:
        async with ops(url) as ctx:
            return await seed(ctx, n, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


@pytest.fixture
def env(sql_url: str) -> dict[str, str]:
    return {"F2F_DATABASE_URL": sql_url}


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_list_table_and_json(invoke: Invoke, env: dict[str, str], sql_url: str) -> None:
    live = _seed(sql_url, 3)
    soon = _seed(sql_url, 1, ingredients=("대파",), ttl=timedelta(minutes=5))
    _seed(sql_url, 2, expired_ago=timedelta(minutes=1))
    r = invoke("sessions", "list", env=env)
    assert r.exit_code == 0, r.output
    assert "4 sessions" in r.output and "sessions (sql)" in r.output
    r = invoke("sessions", "list", "--json", "--store", "sql", env=env)
    rows = json.loads(r.output)
    assert sorted(row["session_id"] for row in rows) == sorted(live + soon)
    assert {row["ingredients"] for row in rows} == {1, 2}
    r = invoke("sessions", "list", "--json", "--expiring-within", "10m", env=env)
    assert [row["session_id"] for row in json.loads(r.output)] == soon
    r = invoke("sessions", "list", "--json", "--ingredient", " 대파 ", "--limit", "1", env=env)
    assert [row["session_id"] for row in json.loads(r.output)] == soon
    assert json.loads(invoke("sessions", "list", "--json", "--limit", "2", env=env).output).__len__() == 2
    r = invoke("sessions", "list", "--expiring-within", "soon", env=env)
    assert r.exit_code == 2
    assert "not a duration" in _one_error_line(r.output)
    r = invoke("sessions", "list", "--store", "mongo", env=env)
    assert r.exit_code == 2 and "unknown store" in _one_error_line(r.output)


def test_list_redis_without_redis_is_a_clear_error(invoke: Invoke, env: dict[str, str]) -> None:
    r = invoke("sessions", "list", "--store", "redis", env=env)
    assert r.exit_code == 2
    assert "F2F_REDIS_URL" in _one_error_line(r.output)


def test_inspect_exit_codes(invoke: Invoke, env: dict[str, str], sql_url: str) -> None:
    (sid,) = _seed(sql_url, 1)
    r = invoke("sessions", "inspect", "--", sid, env=env)
    assert r.exit_code == 0, r.output
    assert "verdict: SQL only: live" in r.output and "김치" in r.output
    data = json.loads(invoke("sessions", "inspect", "--json", "--", sid, env=env).output)
    assert data["found"] is True and data["stores"][0]["session"]["version"] == 2
    r = invoke("sessions", "inspect", "--", new_session_id(), env=env)
    assert r.exit_code == 1 and "missing" in r.output
    dash = "-" + new_session_id()[1:]  # ids may start with '-': '--' keeps it from reading as an option
    assert invoke("sessions", "inspect", "--", dash, env=env).exit_code == 1
    for bad in ("nope", "x" * 33, "a" * 31 + "!"):
        r = invoke("sessions", "inspect", "--", bad, env=env)
        assert r.exit_code == 2
        assert "session id must be" in _one_error_line(r.output)


def test_expire_and_delete(invoke: Invoke, env: dict[str, str], sql_url: str) -> None:
    a, b = _seed(sql_url, 2)
    r = invoke("sessions", "expire", "--", a, env=env, input="n\n")
    assert r.exit_code == 1 and "aborted" in r.output
    r = invoke("sessions", "expire", "--dry-run", "--json", "--", a, env=env)
    assert r.exit_code == 0 and json.loads(r.output)["stores"][0]["outcome"] == "would expire"
    r = invoke("sessions", "expire", "--yes", "--", a, env=env)
    assert r.exit_code == 0 and "sql: expired (version 3)" in r.output
    r = invoke("sessions", "expire", "--yes", "--", a, env=env)
    assert r.exit_code == 1 and "not found" in _one_error_line(r.output)
    r = invoke("sessions", "delete", "--", b, env=env, input="y\n")
    assert r.exit_code == 0 and "sql: deleted (version 3)" in r.output
    shown = json.loads(invoke("sessions", "inspect", "--json", "--", b, env=env).output)
    assert shown["stores"][0]["state"] == "deleted"
    r = invoke("sessions", "delete", "--yes", "--", "bad-id", env=env)
    assert r.exit_code == 2 and "session id must be" in _one_error_line(r.output)


def test_purge(invoke: Invoke, env: dict[str, str], sql_url: str) -> None:
    live = _seed(sql_url, 2)
    _seed(sql_url, 4, expired_ago=timedelta(hours=3))
    _seed(sql_url, 1, expired_ago=timedelta(minutes=1))
    r = invoke("sessions", "purge", "--dry-run", "--json", env=env)
    assert r.exit_code == 0
    assert {k: json.loads(r.output)[k] for k in ("sessions", "ingredients")} == {"sessions": 5, "ingredients": 10}
    r = invoke("sessions", "purge", "--older-than", "1h", "--batch-size", "3", env=env, input="y\n")
    assert r.exit_code == 0, r.output
    assert "deleted 4 sessions and 8 ingredient rows in 2 batches" in r.output
    assert "purging expired sessions: 4/4" in r.output  # plain progress lines when not a terminal
    r = invoke("sessions", "purge", "--yes", "--json", env=env)
    assert json.loads(r.output)["sessions"] == 1
    rows = json.loads(invoke("sessions", "list", "--json", env=env).output)
    assert sorted(row["session_id"] for row in rows) == sorted(live)
    r = invoke("sessions", "purge", "--yes", "--older-than", "yesterday", env=env)
    assert r.exit_code == 2 and "not a duration" in _one_error_line(r.output)
    r = invoke("sessions", "purge", "--yes", "--batch-size", "0", env=env)
    assert r.exit_code == 2


def test_stats(invoke: Invoke, env: dict[str, str], sql_url: str) -> None:
    _seed(sql_url, 2)
    _seed(sql_url, 1, expired_ago=timedelta(minutes=1))
    data = json.loads(invoke("sessions", "stats", "--json", env=env).output)["sql"]
    assert (data["live"], data["expired_unpurged"], data["mean_ingredients"]) == (2, 1, 2.0)
    r = invoke("sessions", "stats", env=env)
    assert r.exit_code == 0 and "TTL histogram" in r.output and "두부" in r.output


def test_export_import_round_trip(invoke: Invoke, env: dict[str, str], sql_url: str, tmp_path: Path) -> None:
    _seed(sql_url, 3, ingredients=("김치", "두부", "달걀"))
    r = invoke("sessions", "export", env=env)
    assert r.exit_code == 0
    exported = r.stdout
    assert len(exported.splitlines()) == 3
    target = tmp_path / "other.db"
    other = {"F2F_DATABASE_URL": f"sqlite:///{target}"}
    assert invoke("migrate", "db", "upgrade", env=other).exit_code == 0
    path = tmp_path / "s.jsonl"
    path.write_text(exported)
    r = invoke("sessions", "import", str(path), env=other)
    assert r.exit_code == 0, r.output
    assert "applied 3 of 3 lines" in r.output
    out = tmp_path / "again.jsonl"
    assert invoke("sessions", "export", "--output", str(out), env=other).exit_code == 0
    assert out.read_text() == exported


def test_import_malformed_files(invoke: Invoke, env: dict[str, str], tmp_path: Path) -> None:
    r = invoke("sessions", "import", str(tmp_path / "nope.jsonl"), env=env)
    assert r.exit_code == 2 and "no such file" in _one_error_line(r.output)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage\n")
    r = invoke("sessions", "import", str(bad), "--strict", env=env)
    assert r.exit_code == 2
    line = _one_error_line(r.output)
    assert "line 1" in line and "nothing imported" in line
    r = invoke("sessions", "import", str(bad), "--json", env=env)
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error_count"] == 3  # binary "lines" split at each newline
    r = invoke("sessions", "import", str(bad), env=env)
    assert r.exit_code == 1 and "line 3:" in r.stderr and "applied 0 of 3 lines" in r.stdout
