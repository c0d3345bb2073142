"""Purge 1,000,000 expired sessions (5 ingredients each) on PostgreSQL while a live API serves reads.

    .venv/bin/python scripts/bench_purge.py [--expired 1000000] [--live 10000] [--rate 300] [--no-pace]

Creates its own database (f2f_bench_<random>), loads it with COPY, starts a real
``f2f serve`` on 127.0.0.1:7510, reads live sessions with GET /v1/sessions/{id}
at a steady rate from a separate process, runs ``f2f sessions purge --yes --json``
and reports the purge time and the read latencies measured during the purge.
The purge is paced by default (``--batch-size`` is its largest batch); ``--no-pace``
runs full batches back to back, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import bench_database, copy_sessions, now, own_process

PORT = 7510


def _reader(base: str, ids: list[str], rate: float, stop: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> list[tuple[float, float, int]]:
        samples: list[tuple[float, float, int]] = []
        workers = 8
        interval = workers / rate
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def worker(k: int) -> None:
                i = k
                next_at = time.perf_counter()
                while not stop.is_set():
                    sid = ids[i % len(ids)]
                    i += workers
                    t0 = time.perf_counter()
                    r = await client.get(f"/v1/sessions/{sid}")
                    samples.append((time.time(), time.perf_counter() - t0, r.status_code))
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

            await asyncio.gather(*(worker(k) for k in range(workers)))
        return samples

    out.put(asyncio.run(run()))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--expired", type=int, default=1_000_000)
    ap.add_argument("--live", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=300.0, help="reads per second during the purge")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--no-pace", action="store_true", help="full batches back to back (the unpaced purge)")
    args = ap.parse_args()
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        copy_sessions(url, args.expired, ingredients=5, expires_at=now() - timedelta(hours=1), prefix="x")
        live = copy_sessions(url, args.live, ingredients=5, expires_at=now() + timedelta(hours=12), prefix="L")
        print(f"loaded {args.expired} expired + {args.live} live sessions in {time.perf_counter() - t0:.1f}s",
              flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
        env.update({"F2F_DATABASE_URL": url, "F2F_LOG_LEVEL": "warning", "F2F_COOKIE_SECURE": "false"})
        serve = [sys.executable, "-m", "f2f_cli", "serve", "--host", "127.0.0.1", "--port", str(PORT),
                 "--log-level", "warning"]
        base = f"http://127.0.0.1:{PORT}"
        with own_process(serve, env=env, log=Path(tmp) / "serve.log", ready_url=f"{base}/healthz"):
            stop = mp.Event()
            out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            reader = mp.Process(target=_reader, args=(base, live, args.rate, stop, out))
            reader.start()
            time.sleep(3)  # warm up: connections open, caches hot
            started_wall = time.time()
            t1 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "f2f_cli", "sessions", "purge", "--yes", "--json",
                 "--batch-size", str(args.batch_size), *(["--no-pace"] if args.no_pace else [])],
                env=env, capture_output=True, text=True, check=True,
            )
            purge_seconds = time.perf_counter() - t1
            ended_wall = time.time()
            time.sleep(1)
            stop.set()
            samples = out.get(timeout=60)
            reader.join(timeout=30)
        result = json.loads(done.stdout)
        during = [s for s in samples if started_wall <= s[0] <= ended_wall]
        before = [s[1] for s in samples if started_wall - 2 <= s[0] < started_wall]
        errors = sum(1 for s in during if s[2] != 200)
        lat = [s[1] for s in during]
        report = {
            "expired_sessions": args.expired,
            "purged_sessions": result["sessions"],
            "purged_ingredient_rows": result["ingredients"],
            "batches": result["batches"],
            "paced": not args.no_pace,
            "paused_seconds": result["paused_seconds"],
            "probe_p99_ms": result["probe_p99_ms"],
            "purge_seconds_command": round(purge_seconds, 2),
            "purge_seconds_core": round(result["seconds"], 2),
            "reads_during_purge": len(lat),
            "read_errors": errors,
            "read_p50_ms": round(_pct(lat, 50), 2),
            "read_p99_ms": round(_pct(lat, 99), 2),
            "read_max_ms": round(max(lat) * 1000, 2) if lat else None,
            "baseline_reads": len(before),
            "baseline_p50_ms": round(_pct(before, 50), 2),
            "baseline_p99_ms": round(_pct(before, 99), 2),
            "targets": {"purge_seconds": 60, "read_p99_ms": 50},
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
