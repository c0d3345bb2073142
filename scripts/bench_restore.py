"""Restore 1,000,000 sessions (5 ingredients each) from PostgreSQL into an empty Redis.

    .venv/bin/python scripts/bench_restore.py [--sessions 1000000]

Creates its own database (f2f_bench_<random>) loaded with COPY, puts it in phase
``dual``, starts its own ``redis-server`` on 127.0.0.1:7520 (no persistence),
runs ``f2f sessions restore --json`` and reports sessions per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import bench_database, copy_sessions, now, own_process

PORT = 7520


async def _dual(url: str) -> None:
    from f2f_cli.control.phase import Phase, set_phase
    from f2f_cli.db.engine import create_engine_for
    from f2f_cli.settings import Settings

    engine = create_engine_for(Settings.from_env({"F2F_DATABASE_URL": url}, env_file=None))
    await set_phase(engine, Phase.DUAL_WRITE, actor="bench", action="bench")
    await set_phase(engine, Phase.DUAL, actor="bench", action="bench")
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1_000_000)
    args = ap.parse_args()
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        copy_sessions(url, args.sessions, ingredients=5, expires_at=now() + timedelta(hours=12), prefix="R")
        asyncio.run(_dual(url))
        print(f"loaded {args.sessions} sessions in {time.perf_counter() - t0:.1f}s", flush=True)
        server = ["redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", tmp]
        with own_process(server, env=dict(os.environ), log=Path(tmp) / "redis.log", ready_port=PORT):
            env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
            env.update({"F2F_DATABASE_URL": url, "F2F_REDIS_URL": f"redis://127.0.0.1:{PORT}/0",
                        "F2F_REDIS_COMMAND_TIMEOUT": "30", "F2F_REDIS_CONNECT_TIMEOUT": "5"})
            t1 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "f2f_cli", "sessions", "restore", "--json"],
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t1
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            client = redis.Redis(host="127.0.0.1", port=PORT)
            keys = client.dbsize()
            memory = client.info("memory")["used_memory"]
        result = json.loads(done.stdout)
        print(json.dumps({
            "sessions": args.sessions,
            "applied": result["applied"],
            "redis_keys": keys,
            "restore_seconds_core": result["seconds"],
            "sessions_per_second_core": result["per_second"],
            "restore_seconds_command": round(wall, 2),
            "sessions_per_second_command": round(args.sessions / wall, 1),
            "redis_used_memory_mb": round(memory / 2**20, 1),
            "target_sessions_per_second": 20000,
        }, indent=2))


if __name__ == "__main__":
    main()
