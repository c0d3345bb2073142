#!/usr/bin/env python3
"""Latency a dead Redis adds to requests in the ``dual`` phase.

Starts its own Redis (loopback port 7051) and one ``f2f serve`` in ``dual`` on a
throw-away PostgreSQL database, drives GET and POST requests from a few
clients for ``--seconds`` with Redis up, then again with Redis killed, and
prints p50/p99 of each window and the difference. Cleans up everything.

    .venv/bin/python scripts/bench_dual_outage.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase
from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_engine_for
from f2f_cli.settings import Settings
from tests.redis_servers import data_node
from tests.servers import f2f_server

ADMIN_URL = os.environ.get("F2F_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(base: str, seconds: float, clients: int) -> dict[str, list[float]]:
    lat: dict[str, list[float]] = {"get": [], "post": [], "failed": []}
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            sid = (await http.post("/v1/sessions")).json()["session_id"]
            i = 0
            while time.monotonic() < deadline:
                i += 1
                t = time.perf_counter()
                r = await http.post(f"/v1/sessions/{sid}/ingredients", json={"ingredients": [f"x{n}-{i}"]})
                lat["post"].append(time.perf_counter() - t)
                t = time.perf_counter()
                g = await http.get(f"/v1/sessions/{sid}")
                lat["get"].append(time.perf_counter() - t)
                if r.status_code != 200 or g.status_code != 200:
                    lat["failed"].append(1.0)

    await asyncio.gather(*(client(n) for n in range(clients)))
    return lat


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    name = f"f2f_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="f2f-outage-"))
    node = data_node(7051, work / "redis").start()
    try:
        url = ADMIN_URL.rpartition("/")[0] + "/" + name
        env = {"F2F_DATABASE_URL": url, "F2F_REDIS_URL": node.url, "F2F_SESSIONS_PER_MINUTE": "0",
               "F2F_MAX_INGREDIENTS": "100000", "F2F_PHASE_POLL_SECONDS": "0.5"}
        settings = Settings.from_env(env, env_file=None)
        schema.upgrade(settings.database_url)
        engine = create_engine_for(settings)
        await control.set_phase(engine, Phase.DUAL_WRITE, actor="bench", action="bench")
        await control.set_phase(engine, Phase.DUAL, actor="bench", action="bench")
        await engine.dispose()
        with f2f_server(env, cwd=work) as base:
            await asyncio.sleep(1.5)  # the server picks up the phase
            up = await drive(base, args.seconds, args.clients)
            node.kill()
            down = await drive(base, args.seconds, args.clients)
    finally:
        node.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "failed_up": len(up["failed"]),
        "failed_down": len(down["failed"]),
    }
    for op in ("get", "post"):
        for label, lat in (("up", up), ("down", down)):
            report[f"{op}_{label}_requests"] = len(lat[op])
            report[f"{op}_{label}_p50_ms"] = round(pct(lat[op], 0.50), 2)
            report[f"{op}_{label}_p99_ms"] = round(pct(lat[op], 0.99), 2)
            report[f"{op}_{label}_mean_ms"] = round(statistics.mean(lat[op]) * 1000, 2)
        report[f"{op}_p99_added_ms"] = round(report[f"{op}_down_p99_ms"] - report[f"{op}_up_p99_ms"], 2)
    print(json.dumps(report) if args.json else "\n".join(f"{k:24} {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
