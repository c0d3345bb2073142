#!/usr/bin/env python3
"""Backfill speed and memory: N sessions of K ingredients from PostgreSQL into Redis.

Loads the sessions into a throw-away PostgreSQL database with COPY, runs the real
``backfill`` in a child process (so its peak RSS is its own), then writes the very
same keys with a bare redis-py pipeline (HSET + PEXPIREAT, no version guard) as the
baseline, and prints both with the ratio. Cleans up the database and every key.

    .venv/bin/python scripts/bench_backfill.py --sessions 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import redis

ADMIN_URL = os.environ.get("F2F_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("F2F_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMES = ["두부", "계란", "대파", "양파", "김치", "감자", "당근", "마늘", "돼지고기", "애호박", "버섯", "고추"]


def db_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


def load(url: str, sessions: int, ingredients: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        columns = "session_id, created_at, updated_at, expires_at, version"
        with cur.copy(f"COPY fridge_sessions ({columns}) FROM STDIN") as cp:
            for i in range(sessions):
                cp.write_row((f"{i:032d}", now, now, now + timedelta(hours=23, seconds=i % 3600), ingredients + 1))
        with cur.copy("COPY fridge_session_ingredients (session_id, name, added_at) FROM STDIN") as cp:
            for i in range(sessions):
                for k in range(ingredients):
                    cp.write_row((f"{i:032d}", NAMES[(i + k) % len(NAMES)], now))
        cur.execute("ANALYZE")


CHILD = r"""
import asyncio, json, resource, sys, time
from f2f_cli.db.engine import create_engine_for
from f2f_cli.migration.backfill import backfill
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.settings import Settings

async def main():
    s = Settings.from_env({"F2F_DATABASE_URL": sys.argv[1], "F2F_REDIS_URL": sys.argv[2],
                           "F2F_REDIS_KEY_PREFIX": sys.argv[3], "F2F_REDIS_COMMAND_TIMEOUT": "30"}, env_file=None)
    engine = create_engine_for(s)
    store = RedisSessionStore.from_settings(s)
    t = time.perf_counter()
    r = await backfill(engine, store, batch_size=int(sys.argv[4]))
    secs = time.perf_counter() - t
    await store.close(); await engine.dispose()
    print(json.dumps({"copied": r.copied, "seconds": secs,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
asyncio.run(main())
"""


def baseline(client: redis.Redis, prefix: str, sessions: int, ingredients: int, batch: int) -> float:
    """The same keys written with a bare pipeline: the floor any copy tool pays."""
    now_ms = int(time.time() * 1000)
    t = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(sessions):
        key = f"{prefix}:s:{{{i:032d}}}"
        fields: dict[str, int] = {" v": ingredients + 1, " c": now_ms, " u": 0}
        for k in range(ingredients):
            fields[NAMES[(i + k) % len(NAMES)]] = 0
        pipe.hset(key, mapping=fields)
        pipe.pexpireat(key, now_ms + 23 * 3600 * 1000)
        if (i + 1) % batch == 0:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - t


def clean(client: redis.Redis, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=f"{prefix}:*", count=10000):
        batch.append(key)
        if len(batch) >= 10000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--ingredients", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    name = f"f2f_bench_{secrets.token_hex(4)}"
    prefix = f"f2fbench{secrets.token_hex(3)}"
    client = redis.Redis.from_url(REDIS_URL)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = db_url(name)
        subprocess.run([sys.executable, "-m", "f2f_cli", "migrate", "db", "upgrade"], check=True,
                       env={**os.environ, "F2F_DATABASE_URL": url}, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        load(url, args.sessions, args.ingredients)
        load_s = time.perf_counter() - t
        child = subprocess.run(
            [sys.executable, "-c", CHILD, url.replace("postgresql://", "postgresql+psycopg://"), REDIS_URL, prefix,
             str(args.batch_size)],
            check=True, capture_output=True, text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        clean(client, prefix)
        base_s = baseline(client, prefix + "b", args.sessions, args.ingredients, args.batch_size)
        clean(client, prefix + "b")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clean(client, prefix)
        clean(client, prefix + "b")
    report = {
        "sessions": args.sessions,
        "ingredients": args.ingredients,
        "load_seconds": round(load_s, 1),
        "backfill_seconds": round(result["seconds"], 2),
        "backfill_sessions_per_s": round(result["copied"] / result["seconds"]),
        "backfill_peak_rss_mib": round(result["peak_rss_mib"], 1),
        "bare_pipeline_seconds": round(base_s, 2),
        "bare_pipeline_sessions_per_s": round(args.sessions / base_s),
        "backfill_vs_bare": round(base_s / result["seconds"], 2),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
