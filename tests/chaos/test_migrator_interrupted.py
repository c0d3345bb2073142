"""SIGINT and SIGKILL of ``f2f migrate`` at each step (backfill, cut-over hold, drain) under HTTP writes.

The fleet must never stay in ``cutover`` (SIGINT: the migrator restores the from-phase itself;
SIGKILL: the cut-over deadline lapses and the serving instance returns the fleet), no acknowledged
write may be lost, and the next ``f2f migrate status`` must say what to do. Deadlines and lease
ages are a second or two here so each case takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from f2f_cli.cli.main import app
from f2f_cli.clock import utcnow
from f2f_cli.control import lease
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.engine import create_engine_for
from f2f_cli.migration import checkpoint
from f2f_cli.migration.backfill import CHECKPOINT
from tests.conftest import make_settings
from tests.load import Load
from tests.servers import f2f_server

pytestmark = pytest.mark.chaos

# step -> (phase to start from, the command, the phase the fleet must end in)
CASES: dict[str, tuple[Phase, list[str], Phase]] = {
    "backfill": (Phase.POSTGRES, ["to", "dual", "--batch-size", "50", "--max-rate", "400"], Phase.DUAL_WRITE),
    "hold": (Phase.DUAL, ["to", "redis", "--timeout", "120"], Phase.DUAL),
    "drain": (Phase.REDIS, ["rollback", "--drain-timeout", "120"], Phase.REDIS),
}


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _seed(pg_url: str, n: int) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO fridge_sessions SELECT lpad(g::text, 32, '0'), now(), now(), "
                    "now() + interval '1 hour', 1 FROM generate_series(1, %s) g", (n,))


async def _heartbeats(engine: object, laggard_epoch: int | None, stop: asyncio.Event) -> None:
    """A live backup worker (its heartbeat only: no one drains) and, for the hold case, a serve
    instance that never acknowledges, so the migrator sits in the cut-over until it is signalled."""
    while not stop.is_set():
        await control.heartbeat(engine, "worker-fake", "worker", "any", 0, utcnow())  # type: ignore[arg-type]
        if laggard_epoch is not None:
            await control.heartbeat(engine, "serve-laggard", "serve", "dual", laggard_epoch,  # type: ignore[arg-type]
                                    utcnow())
        await asyncio.sleep(0.5)


@pytest.fixture
def rig(pg_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": redis_url,
        "F2F_REDIS_KEY_PREFIX": redis_prefix,
        "F2F_PHASE_POLL_SECONDS": "0.5",
        "F2F_REDIS_COMMAND_TIMEOUT": "2",
        "F2F_REDIS_CONNECT_TIMEOUT": "2",
        "F2F_MAX_INGREDIENTS": "1000",
        "F2F_SESSIONS_PER_MINUTE": "0",
        "F2F_CUTOVER_DEADLINE_SECONDS": "2",
        "F2F_MIGRATE_LEASE_SECONDS": "2",
    }


# Every step with Ctrl-C and with SIGKILL; SIGTERM (a pod deleted with a grace period) takes Ctrl-C's path.
RUNS = [(step, sig) for step in CASES for sig in (signal.SIGINT, signal.SIGKILL)] + [("hold", signal.SIGTERM)]


@pytest.mark.parametrize(("step", "sig"), RUNS, ids=[f"{step}-{sig.name.lower()}" for step, sig in RUNS])
async def test_interrupted_migrator_never_leaves_writes_held(
    step: str, sig: signal.Signals, rig: dict[str, str], tmp_path: Path
) -> None:
    start, command, ends_in = CASES[step]
    settings = make_settings(**rig)
    engine = create_engine_for(settings)
    stop = asyncio.Event()
    proc: asyncio.subprocess.Process | None = None
    try:
        if step == "backfill":
            _seed(rig["F2F_DATABASE_URL"], 3000)
        elif start is Phase.DUAL:
            await control.set_phase(engine, Phase.DUAL_WRITE, actor="test", action="setup")
            await control.set_phase(engine, Phase.DUAL, actor="test", action="setup")
        else:
            await control.set_phase(engine, Phase.REDIS, actor="test", action="setup")
        epoch = (await control.get_control(engine)).epoch
        with f2f_server(rig, cwd=tmp_path) as base:

            async def serve_acknowledged() -> bool:
                rows = await control.live_instances(engine, within=timedelta(seconds=10), kind="serve")
                return bool(rows) and all(r.epoch_seen >= epoch for r in rows)

            await _until(serve_acknowledged, "the server to acknowledge the start phase")
            beats = asyncio.create_task(_heartbeats(engine, epoch if step == "hold" else None, stop))
            load = Load(base, clients=4)
            runner = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | rig
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "f2f_cli", "migrate", *command, "--yes", env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

            async def at_step() -> bool:
                assert proc is not None
                if proc.returncode is not None:
                    raise AssertionError(await proc.communicate())
                held = await lease.current(engine)
                if held is None or held.step != step:
                    return False
                if step == "backfill":
                    cp = await checkpoint.load(engine, CHECKPOINT)
                    return cp is not None and cp.copied >= 100
                return True

            await _until(at_step, f"the migrator to reach '{step}'")
            if step != "backfill":
                assert (await control.get_control(engine)).phase is Phase.CUTOVER
            proc.send_signal(sig)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            if sig is not signal.SIGKILL:
                assert proc.returncode == 130, (out, err)
                assert b"interrupted during" in err, err
                assert b"Traceback" not in err

            async def settled() -> bool:
                return (await control.get_control(engine)).phase is ends_in

            await _until(settled, f"the fleet to return to {ends_in}", limit=30)
            await asyncio.sleep(1.0)  # traffic after the return
            load.stop.set()
            await runner
            lost = await load.lost_writes()
            print(f"\n{step}/{sig.name}: requests {load.sent}, failed {len(load.failed)}, "
                  f"acknowledged {load.writes_acked}, lost {lost}")
            assert load.writes_acked > 0
            assert lost == 0
            assert load.stale_reads == 0

            if sig is signal.SIGKILL:
                await asyncio.sleep(float(rig["F2F_MIGRATE_LEASE_SECONDS"]) + 0.5)  # its lease goes stale
            # The real CLI, in-process (a thread: it runs its own event loop).
            status = await asyncio.to_thread(CliRunner().invoke, app, ["migrate", "status", "--json"], env=rig,
                                             catch_exceptions=False)
            assert status.exit_code == 0, status.output
            data = json.loads(status.output)
            assert data["control"]["phase"] == ends_in.value
            advice = " ".join(data["advice"])
            assert advice, data
            if step == "backfill":
                assert "to dual --resume" in advice
                assert data["checkpoint_copied"] >= 100
            if sig is signal.SIGKILL:
                assert "--take-over" in advice
                assert data["lease_stale"] is True
            else:
                assert data["lease"] is None  # released on the way out
                assert "interrupted" in advice
            if step != "backfill":
                actions = [h["action"] for h in data["history"]]
                assert ("cutover lapsed" if sig is signal.SIGKILL else f"{' '.join(command[:2])} interrupted"
                        if command[0] == "to" else "rollback interrupted") in actions
        stop.set()
        await beats
    finally:
        stop.set()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.dispose()
