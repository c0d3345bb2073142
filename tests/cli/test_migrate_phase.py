"""``f2f migrate status|plan|to|verify|rollback|repair`` through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from f2f_cli.db.engine import create_sync_engine_for
from tests.cli.conftest import Invoke


def _env(pg_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    # Generous Redis timeouts: the shared test machine is busy, and a timeout is not what is tested here.
    return {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": redis_url, "F2F_REDIS_KEY_PREFIX": redis_prefix,
            "F2F_PHASE_POLL_SECONDS": "0.5", "F2F_REDIS_CONNECT_TIMEOUT": "2", "F2F_REDIS_COMMAND_TIMEOUT": "2"}


def _seed(pg_url: str, n: int) -> None:
    """n sessions of 3 ingredients, written straight into PostgreSQL."""
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fridge_sessions SELECT lpad(g::text, 32, '0'), now(), now(), now() + interval '1 hour', 4"
            " FROM generate_series(1, %s) g", (n,))
        cur.execute(
            "INSERT INTO fridge_session_ingredients SELECT lpad(g::text, 32, '0'), n, now()"
            " FROM generate_series(1, %s) g, unnest(array['두부','계란','대파']) n", (n,))


def _phase(pg_url: str) -> str:
    engine = create_sync_engine_for(pg_url)
    with engine.connect() as conn:
        phase = conn.exec_driver_sql("SELECT phase FROM f2f_control").scalar_one()
    engine.dispose()
    return str(phase)


def _history_count(pg_url: str) -> int:
    engine = create_sync_engine_for(pg_url)
    with engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM f2f_phase_history").scalar_one()
    engine.dispose()
    return int(count)


def test_status_plan_to_dual_verify_rollback(invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    env = _env(pg_url, redis_url, redis_prefix)
    _seed(pg_url, 40)
    r = invoke("migrate", "status", "--json", env=env)
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert status["control"]["phase"] == "postgres"
    assert status["sql_sessions"] == 40
    assert status["redis_sessions"] == 0
    r = invoke("migrate", "plan", "to", "dual", env=env)
    assert r.exit_code == 0, r.output
    assert "backfill" in r.output
    r = invoke("migrate", "to", "dual", "--dry-run", env=env)
    assert r.exit_code == 0, r.output
    assert _phase(pg_url) == "postgres"
    r = invoke("migrate", "to", "dual", env=env, input="n\n")
    assert r.exit_code == 1
    assert "aborted" in r.output
    assert _phase(pg_url) == "postgres"
    r = invoke("migrate", "to", "dual", "--yes", "--json", "--batch-size", "7", env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["done"] is True
    assert out["backfill"]["copied"] == 40
    assert out["verify"]["differences"] == 0
    assert _phase(pg_url) == "dual"
    r = invoke("migrate", "to", "dual", "--yes", env=env)  # twice in a row: nothing to do, still success
    assert r.exit_code == 0
    assert "already" in r.output
    r = invoke("migrate", "verify", "--sample", "10", env=env)
    assert r.exit_code == 0, r.output
    assert "compared 10 sessions between SQL and Redis (a sample): stores equal" in r.stdout
    r = invoke("migrate", "verify", env=env)
    assert r.exit_code == 0 and "compared 40 sessions between SQL and Redis: stores equal" in r.stdout, r.output
    r = invoke("migrate", "to", "redis", "--yes", env=env)
    assert r.exit_code == 1  # no worker heartbeat
    assert "worker" in r.output
    assert _phase(pg_url) == "dual"
    r = invoke("migrate", "rollback", "--yes", "--json", env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["redis_keys_left"] == 40
    assert _phase(pg_url) == "postgres"
    history = _history_count(pg_url)
    r = invoke("migrate", "rollback", "--yes", env=env)  # in postgres: like 'to dual' twice, done, nothing recorded
    assert r.exit_code == 0, r.output
    assert "nothing to roll back" in r.output
    assert json.loads(invoke("migrate", "rollback", "--yes", "--json", env=env).output)["done"] is True
    assert _history_count(pg_url) == history and _phase(pg_url) == "postgres"


def test_refusals_exit_1_with_one_line_and_change_nothing(invoke: Invoke, pg_url: str) -> None:
    env = {"F2F_DATABASE_URL": pg_url, "F2F_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    r = invoke("migrate", "to", "dual", "--yes", env=env)
    assert r.exit_code == 1
    assert "redis reachable" in r.output
    assert "hunter2" not in r.output
    assert "Traceback" not in r.output
    assert _phase(pg_url) == "postgres"
    r = invoke("migrate", "to", "redis", "--yes", env=env)
    assert r.exit_code == 1
    assert "runs from dual" in r.output
    r = invoke("migrate", "to", "postgres", env=env)
    assert r.exit_code == 2
    assert "rollback" in r.output
    r = invoke("migrate", "plan", "sideways", env=env)
    assert r.exit_code == 2
    r = invoke("migrate", "to", "dual", "--batch-size", "0", env=env)
    assert r.exit_code == 2


def test_to_dual_without_redis_url_is_a_clear_refusal(invoke: Invoke, pg_url: str) -> None:
    r = invoke("migrate", "to", "dual", "--yes", env={"F2F_DATABASE_URL": pg_url})
    assert r.exit_code == 2  # a missing setting: the same code from every command (README, exit codes)
    assert "F2F_REDIS_URL" in r.output
    assert _phase(pg_url) == "postgres"


@pytest.mark.slow
def test_killed_backfill_resumes_from_its_checkpoint(pg_url: str, redis_url: str, redis_prefix: str,
                                                    tmp_path: Path) -> None:
    """SIGKILL 'f2f migrate to dual' during the backfill, then '--resume': everything copied once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | _env(pg_url, redis_url, redis_prefix) \
        | {"F2F_MIGRATE_LEASE_SECONDS": "2"}
    _seed(pg_url, 3000)
    cmd = [sys.executable, "-m", "f2f_cli", "migrate", "to", "dual", "--yes", "--json", "--batch-size", "50",
           "--max-rate", "1500"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = create_sync_engine_for(pg_url)
    try:
        deadline = time.monotonic() + 30
        copied = 0
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                copied = conn.exec_driver_sql(
                    "SELECT coalesce(max(copied), 0) FROM f2f_checkpoints WHERE name = 'backfill'").scalar_one()
            if copied >= 500:
                break
            time.sleep(0.05)
        assert copied >= 500, "the backfill never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with engine.connect() as conn:
            last, copied = conn.exec_driver_sql("SELECT last_session_id, copied FROM f2f_checkpoints").one()
        assert last is not None
        assert _phase(pg_url) == "dual-write"  # crashed mid-way: writes already copy, reads stay on SQL
        # The killed run still holds the lease: '--resume' alone is refused until it is taken over.
        refused = subprocess.run([*cmd[:-2], "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode == 1
        assert "another migrator" in refused.stderr
        time.sleep(2.5)  # F2F_MIGRATE_LEASE_SECONDS: its heartbeat is now stale
        resumed = subprocess.run([*cmd[:-2], "--resume", "--take-over"], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        out = json.loads(resumed.stdout)
        assert out["backfill"]["resumed_from"] == last
        # Each session copied exactly once; a batch applied just before the kill, whose checkpoint never
        # landed, is found already current.
        assert out["backfill"]["copied"] + out["backfill"]["skipped_newer"] + copied == 3000
        assert out["backfill"]["skipped_newer"] <= 50  # at most that one batch
        assert out["backfill"]["copied"] < 3000  # it did not start over
        assert out["verify"]["differences"] == 0
        assert out["verify"]["compared"] == 3000
        assert _phase(pg_url) == "dual"
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()


def test_a_second_migrator_refuses_at_once_naming_the_holder(invoke: Invoke, pg_url: str, redis_url: str,
                                                              redis_prefix: str) -> None:
    env = _env(pg_url, redis_url, redis_prefix)
    engine = create_sync_engine_for(pg_url)
    with engine.begin() as conn:  # a live run elsewhere: its heartbeat is fresh
        conn.exec_driver_sql(
            "INSERT INTO f2f_migrator_lease VALUES (1, 'tok', 'pod-a:7', 'ops@pod-a:7 f2f migrate to dual', "
            "'to dual', 'backfill', now(), now())")
    engine.dispose()
    r = invoke("migrate", "to", "dual", "--yes", env=env)
    assert r.exit_code == 1
    assert "pod-a:7" in r.output
    assert "'to dual'" in r.output
    assert "step backfill" in r.output
    r = invoke("migrate", "status", env=env)
    assert r.exit_code == 0, r.output
    assert "migrator lease: pod-a:7" in r.output
    assert "is running on pod-a:7" in r.output
    r = invoke("migrate", "to", "dual", "--dry-run", env=env)  # the dry run shows the same check
    assert "✗" in r.output
    assert "no other migrator running" in r.output
    assert _phase(pg_url) == "postgres"


def test_plan_from_redis(invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    env = _env(pg_url, redis_url, redis_prefix)
    engine = create_sync_engine_for(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE f2f_control SET phase = 'redis', epoch = 5")
    engine.dispose()
    r = invoke("migrate", "plan", "postgres", env=env)
    assert r.exit_code == 1
    assert "preflight" not in r.output  # no green table before the refusal
    assert "'f2f migrate rollback' (redis → dual), then 'f2f migrate rollback' (dual → postgres)" in r.output
    r = invoke("migrate", "plan", "dual", env=env)
    assert r.exit_code == 1  # no worker heartbeat
    assert "'f2f migrate rollback'" in r.output
    assert "each request waits at most 5s" in r.output
    plan = json.loads(invoke("migrate", "plan", "dual", "--json", env=env).output.splitlines()[0])
    dry = json.loads(invoke("migrate", "rollback", "--dry-run", "--json", env=env).output.splitlines()[0])
    assert [c["name"] for c in plan["checks"]] == [c["name"] for c in dry["checks"]]
    assert "backup worker heartbeat" in [c["name"] for c in dry["checks"]]
    assert "backup backlog drains within the hold budget" in [c["name"] for c in dry["checks"]]
    assert plan["steps"] == dry["steps"]
    assert any(s.startswith("wait until 'f2f worker' has drained") for s in dry["steps"])
    r = invoke("migrate", "plan", "redis", env=env)
    assert r.exit_code == 0
    assert "already in redis" in r.output


def test_plan_redis_lists_verify_and_the_hold(invoke: Invoke, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    env = _env(pg_url, redis_url, redis_prefix)
    engine = create_sync_engine_for(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE f2f_control SET phase = 'dual', epoch = 3")
    engine.dispose()
    r = invoke("migrate", "plan", "redis", "--json", env=env)
    out = json.loads(r.output)
    steps = out["steps"]
    assert [s.split(" ")[0] for s in steps][:2] == ["verify", "set"]
    assert any("verify" in c["name"] for c in out["checks"])
    assert out["cutover_deadline_s"] == 10.0
    assert out["hold_timeout_s"] == 5.0
