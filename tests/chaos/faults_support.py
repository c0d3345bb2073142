"""Shared pieces of the Redis-fault chaos tests: environment, phase set-up, waiting, metrics, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db.schema import f2f_phase_history


def fault_env(pg_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "F2F_DATABASE_URL": pg_url,
        "F2F_REDIS_URL": redis_url,
        "F2F_REDIS_KEY_PREFIX": prefix,
        "F2F_PHASE_POLL_SECONDS": "0.25",
        "F2F_SESSIONS_PER_MINUTE": "0",
        "F2F_MAX_INGREDIENTS": "1000",
        # The shared 2-core machine stalls commands now and then; these tests are about faults, not stalls.
        "F2F_REDIS_COMMAND_TIMEOUT": "0.5",
        "F2F_REDIS_CONNECT_TIMEOUT": "0.5",
        # Counters are read right after the fault they count: /metrics rendered on every scrape.
        "F2F_METRICS_CACHE_SECONDS": "0",
        **extra,
    }


async def to_redis_phase(engine: AsyncEngine) -> None:
    for step in (Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS):
        await control.set_phase(engine, step, actor="test", action="test")


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, limit: float = 60.0) -> float:
    """Poll ``check`` until true; the seconds it took. Generous: the machine is shared."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit:
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def worker_alive(engine: AsyncEngine) -> None:
    async def seen() -> bool:
        rows = await control.live_instances(engine, within=timedelta(seconds=30), kind="worker")
        return bool(rows)

    await wait_for(seen, "the backup worker's heartbeat")


async def metric(base: str, name: str) -> float:
    """One unlabelled sample of ``/metrics``."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def history(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(f2f_phase_history.c.action, f2f_phase_history.c.detail)
                                   .order_by(f2f_phase_history.c.id))).all()
    return [(r.action, json.loads(r.detail) if r.detail else {}) for r in rows]


async def run_f2f(env: dict[str, str], cwd: Path, *args: str, limit: float = 180) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "f2f_cli", *args,
        env={k: v for k, v in os.environ.items() if not k.startswith("F2F_")} | env,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit)
    return proc.returncode or 0, out.decode(), err.decode()
