#!/usr/bin/env python3
"""What one batch of the backup worker costs in PostgreSQL, without Redis or a writer beside it.

The SQL half of ``f2f worker`` in isolation (``f2f_cli.backup.apply.apply_packed`` as the worker calls
it: its remembered copies, COMMIT in the pipeline): ``--sessions`` sessions of 10 ingredients are
backed up once, then ``--rounds`` batches of ``--batch`` copies are applied, each copy one name added to
(or re-dated in) a distinct session, the shape of the lag run of ``f2f bench backup``. Prints the mean
ms a batch and µs an entry as JSON, with the name of the database it used.
Run it with ``PYTHONPATH=<another checkout>`` to compare two codes.

    .venv/bin/python scripts/bench_backup_apply.py --database-url postgresql://root@127.0.0.1:5432/test \\
        [--batch 400] [--rounds 60] [--sessions 2000] [--seed 27]

It works in a dedicated database created next to ``--database-url`` and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from f2f_cli.backup.apply import KnownCopies, PackedCopy, apply_packed
from f2f_cli.bench.http import _prepare_database, dedicated_database
from f2f_cli.db.engine import create_engine_for
from f2f_cli.redis.codec import UNIT_SEPARATOR
from f2f_cli.settings import Settings

NAMES = [f"재료{i}" for i in range(100)]


def _pack(pairs: dict[str, str]) -> str:
    return UNIT_SEPARATOR.join(part for pair in pairs.items() for part in pair)


def _one_more(copy: PackedCopy, rng: random.Random) -> PackedCopy:
    parts = copy.packed.split(UNIT_SEPARATOR) if copy.packed else []
    pairs = dict(zip(parts[0::2], parts[1::2], strict=True))
    now = int(time.time() * 1000)
    pairs[rng.choice(NAMES)] = str(now - copy.created_ms)
    return PackedCopy(copy.session_id, copy.version + 1, copy.created_ms, now, now + 86_400_000, False, _pack(pairs))


async def _run(url: str, args: argparse.Namespace) -> dict[str, float]:
    engine = create_engine_for(Settings.from_env({"F2F_DATABASE_URL": url}, env_file=None))
    rng = random.Random(args.seed)
    now = int(time.time() * 1000)
    state = {
        f"b{i:031d}": PackedCopy(f"b{i:031d}", 1, now, now, now + 86_400_000, False,
                                 _pack({name: "5" for name in NAMES[:10]}))
        for i in range(args.sessions)
    }  # fmt: skip
    known = KnownCopies(max(20_000, args.sessions))
    try:
        first = list(state.values())
        for start in range(0, len(first), 500):  # the worker's warm-up: it has backed these up once
            async with engine.begin() as conn:
                result = await apply_packed(conn, first[start : start + 500], known, commit=True)
            known.remember(result.chosen)
        took = 0.0
        for _ in range(args.rounds):
            batch = [_one_more(state[sid], rng) for sid in rng.sample(sorted(state), args.batch)]
            state.update((c.session_id, c) for c in batch)
            began = time.perf_counter()
            async with engine.begin() as conn:
                result = await apply_packed(conn, batch, known, commit=True)
            took += time.perf_counter() - began
            known.remember(result.chosen)
    finally:
        await engine.dispose()
    return {"batch": args.batch, "rounds": args.rounds, "ms_per_batch": round(took / args.rounds * 1000, 2),
            "us_per_entry": round(took / args.rounds / args.batch * 1e6, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL (CREATEDB needed)")
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args()
    if not 1 <= args.batch <= args.sessions or not 1 <= args.rounds <= 100_000 or args.sessions > 1_000_000:
        sys.exit("need 1 <= --batch <= --sessions <= 1,000,000 and 1 <= --rounds <= 100,000")
    url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    settings = Settings.from_env({"F2F_DATABASE_URL": url}, env_file=None)
    if settings.is_sqlite:
        sys.exit("--database-url must be PostgreSQL (the worker's set-based apply)")
    with tempfile.TemporaryDirectory() as tmp, dedicated_database(settings, Path(tmp)) as db_url:
        _prepare_database(db_url, "redis")
        report: dict[str, object] = {"database": db_url.rpartition("/")[2], **asyncio.run(_run(db_url, args))}
    print(msgspec.json.format(msgspec.json.encode(report)).decode())


if __name__ == "__main__":
    main()
