#!/usr/bin/env python3
"""Backup lag of ``f2f worker`` under a steady write rate (the ``redis`` phase).

Writes ``--rate`` single-ingredient adds per second for ``--seconds`` through a
backup-stream RedisSessionStore while one worker (in this process, its own
connections) drains the stream into SQL; samples the backlog (XLEN of the
stream(s) = entries not yet committed) every 100 ms and the time from the last
write until the backlog is empty.

    .venv/bin/python scripts/bench_backup_lag.py --database-url postgresql://root@127.0.0.1:5432/DB \\
        [--redis-url redis://127.0.0.1:6379/0] [--rate 1000] [--seconds 5]

The database must be at schema head (``f2f migrate db upgrade``); the script
writes under a fresh key prefix and deletes its keys and rows afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time

from sqlalchemy import delete

from f2f_cli.backends import Backends
from f2f_cli.backup.worker import BackupWorker, WorkerOptions, backup_lag
from f2f_cli.db.schema import fridge_sessions
from f2f_cli.redis.client import scan_keys
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings.from_env(
        {
            "F2F_REDIS_URL": args.redis_url,
            "F2F_DATABASE_URL": args.database_url,
            "F2F_REDIS_KEY_PREFIX": f"f2flag{secrets.token_hex(3)}",
            "F2F_REDIS_COMMAND_TIMEOUT": "2",
        },
        env_file=None,
    )
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    backends = Backends.open(settings)
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=args.batch_size, block_ms=100))
    stop = asyncio.Event()
    ids = [(await store.create()).session_id for _ in range(args.sessions)]
    await worker.prepare()
    worker_task = asyncio.create_task(worker.run(stop))
    samples: list[int] = []
    ages: list[int] = []

    async def sample() -> None:
        while not stop.is_set():
            lag = await backup_lag(store.client, store.keys)
            samples.append(lag.total)
            if lag.oldest_age_ms is not None:
                ages.append(lag.oldest_age_ms)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    interval = 1.0 / args.rate
    start = time.perf_counter()
    written = 0
    while (elapsed := time.perf_counter() - start) < args.seconds:
        due = int(elapsed * args.rate) + 1 - written
        if due > 0:
            await asyncio.gather(
                *(store.add_ingredients(ids[(written + i) % len(ids)], [f"i{written + i}"]) for i in range(due))
            )
            written += due
        await asyncio.sleep(interval)
    write_seconds = time.perf_counter() - start
    last_write = time.perf_counter()
    while (await backup_lag(store.client, store.keys)).total:  # noqa: ASYNC110 - polling Redis, not a local flag
        await asyncio.sleep(0.005)
    drain_ms = (time.perf_counter() - last_write) * 1000
    stop.set()
    await worker_task
    await sampler
    result: dict[str, object] = {
        "redis": "cluster" if store.keys.cluster else "single",
        "writes": written,
        "write_rate_per_s": round(written / write_seconds),
        "backlog_entries_p50": statistics.median(samples),
        "backlog_entries_max": max(samples),
        "oldest_entry_age_ms_p50": statistics.median(ages) if ages else 0,
        "oldest_entry_age_ms_max": max(ages) if ages else 0,
        "drain_after_last_write_ms": round(drain_ms, 1),
        "worker_entries": worker.stats.entries,
        "worker_batches": worker.stats.batches,
    }
    async with worker.engine.begin() as conn:
        await conn.execute(delete(fridge_sessions).where(fridge_sessions.c.session_id.in_(ids)))
    keys = [k async for k in scan_keys(store.client, f"{settings.redis_key_prefix}:*")]
    for key in keys:
        await store.client.delete(key)
    await worker.close()
    await backends.close()
    await store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
