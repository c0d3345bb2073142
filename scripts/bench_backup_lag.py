#!/usr/bin/env python3
"""Backup lag of ``f2f worker`` under a steady write rate (the ``redis`` phase).

The lag half of ``f2f bench backup`` (``--mode lag``) with the arguments this
script always took: one worker process drains the backup stream while this
process writes ``--rate`` one-ingredient adds per second for ``--seconds``;
every entry's lag is the time from its XADD to its SQL commit (p50/p95/p99/max).

    .venv/bin/python scripts/bench_backup_lag.py --database-url postgresql://root@127.0.0.1:5432/test \\
        [--redis-url redis://127.0.0.1:6379/0 | redis+cluster://127.0.0.1:7100] [--rate 1000] [--seconds 5]

It works in a dedicated database created next to ``--database-url`` (dropped
afterwards) under a fresh key prefix (deleted afterwards), and prints JSON.
"""

from __future__ import annotations

import argparse

import msgspec

from f2f_cli.bench.backup import run_backup_bench
from f2f_cli.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    settings = Settings.from_env(
        {"F2F_REDIS_URL": args.redis_url, "F2F_DATABASE_URL": args.database_url, "F2F_REDIS_KEY_PREFIX": "f2flag"},
        env_file=None,
    )
    result = run_backup_bench(
        settings, drain=False, lag=True, rate=args.rate, lag_seconds=args.seconds, sessions=args.sessions,
        batch_size=args.batch_size,
    )  # fmt: skip
    print(msgspec.json.format(msgspec.json.encode(result)).decode())


if __name__ == "__main__":
    main()
