#!/usr/bin/env python3
"""Figures for Redis faults in the ``redis`` phase (issue #13). Each subcommand starts what it needs on
loopback (its own Redis on a free port, a throw-away PostgreSQL database, ``f2f serve`` and ``f2f worker``),
measures one thing under live HTTP traffic, prints JSON and removes everything it made.

    .venv/bin/python scripts/bench_redis_faults.py rto --sessions 100000   # restart-empty: RTO, restore rate, RPO
    .venv/bin/python scripts/bench_redis_faults.py outage --seconds 20     # failed requests before/after failover
    .venv/bin/python scripts/bench_redis_faults.py sentinel                # Sentinel master killed: failover time
    .venv/bin/python scripts/bench_redis_faults.py timeout --seconds 20    # Redis store latency tail (timeout choice)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import bench_database, copy_sessions, now  # noqa: E402

from f2f_cli.control import phase as control  # noqa: E402
from f2f_cli.control.phase import Phase, RedisState  # noqa: E402
from f2f_cli.db.engine import create_engine_for  # noqa: E402
from f2f_cli.settings import Settings  # noqa: E402
from f2f_cli.stores.copying import copy_to_redis  # noqa: E402
from f2f_cli.stores.redis import RedisSessionStore  # noqa: E402
from tests.chaos.faults_support import fault_env, history, run_f2f, wait_for  # noqa: E402
from tests.load import Load  # noqa: E402
from tests.redis_servers import data_node, free_port, start_sentinel  # noqa: E402
from tests.servers import f2f_server, worker_process  # noqa: E402


def settings_for(env: dict[str, str]) -> Settings:
    return Settings.from_env(env, env_file=None)


async def go_redis(env: dict[str, str], *, copy: bool) -> None:
    """Phase redis; with ``copy``, Redis first receives every SQL session (as the backfill would)."""
    settings = settings_for({**env, "F2F_REDIS_COMMAND_TIMEOUT": "30"})
    engine = create_engine_for(settings)
    try:
        for step in (Phase.DUAL_WRITE, Phase.DUAL, Phase.REDIS):
            await control.set_phase(engine, step, actor="bench", action="bench")
        if copy:
            store = RedisSessionStore.from_settings(settings)
            await copy_to_redis(engine, store, now=now())
            await store.close()
    finally:
        await engine.dispose()


async def until(env: dict[str, str], check: str, limit: float = 600) -> float:
    """Seconds until ``f2f_control`` satisfies ``check`` (generation, ok, dual)."""
    engine = create_engine_for(settings_for(env))
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit:
            state = await control.get_control(engine)
            if check == "restored" and "redis-restored" in [a for a, _ in await history(engine)]:
                return time.monotonic() - started
            if (check == "generation" and state.redis_generation is not None) or (
                check == "ok" and state.redis_state is RedisState.OK and state.redis_trusted) or (
                check == "dual" and state.phase is Phase.DUAL):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    raise SystemExit(f"timed out waiting for {check}")


async def steps(env: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    engine = create_engine_for(settings_for(env))
    try:
        return await history(engine)
    finally:
        await engine.dispose()


@contextmanager
def fleet(env: dict[str, str], tmp: Path, instances: int) -> Iterator[list[str]]:
    with ExitStack() as stack:
        bases = [stack.enter_context(f2f_server(env, cwd=tmp)) for _ in range(instances)]
        stack.enter_context(worker_process(env, tmp, "--claim-idle-ms", "500"))
        yield bases


async def stop_loads(loads: list[Load], runners: list[asyncio.Task[None]]) -> None:
    for load in loads:
        load.stop.set()
    await asyncio.gather(*runners)


# -- rto: Redis restarted empty under traffic ---------------------------------------------------


async def rto(args: argparse.Namespace) -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        node = data_node(free_port(), tmp / "redis").start()
        try:
            env = fault_env(url, node.url, "f2fbench", F2F_REDIS_FAILOVER_SECONDS="30",
                            F2F_PHASE_POLL_SECONDS=str(args.poll))
            ids = copy_sessions(url, args.sessions, ingredients=5, expires_at=now() + timedelta(hours=12),
                                prefix="rto")
            await go_redis(env, copy=True)
            with fleet(env, tmp, 1) as (base,):
                await until(env, "generation")
                loads = [Load(base, clients=args.writers, renew_on_404=True)]
                runners = [asyncio.create_task(load.run()) for load in loads]
                reads: list[tuple[float, int]] = []
                stop_reading = asyncio.Event()

                async def reader() -> None:
                    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                        while not stop_reading.is_set():
                            sid = random.choice(ids)
                            try:
                                status = (await http.get(f"/v1/sessions/{sid}")).status_code
                            except httpx.HTTPError:
                                status = 0
                            reads.append((time.monotonic(), status))

                readers = [asyncio.create_task(reader()) for _ in range(args.readers)]
                await asyncio.sleep(3)
                raw = redis.Redis.from_url(node.url)
                backlog = int(raw.xlen("f2fbench:bk"))
                raw.close()
                killed = time.monotonic()
                node.kill()
                node.start()
                restored = await until(env, "restored")
                await asyncio.sleep(1)
                stop_reading.set()
                await asyncio.gather(*readers)
                await stop_loads(loads, runners)
                lost = await loads[0].lost_list()
        finally:
            node.stop()
        history_rows = await steps(env)
    loss = next(d for a, d in history_rows if a == "redis-data-loss")
    done = next(d for a, d in history_rows if a == "redis-restored")
    after = [(t - killed, s) for t, s in reads if t >= killed]
    bad = [t for t, s in after if s != 200]
    return {
        "sessions": args.sessions,
        "reads_after_restart": len(after),
        "reads_failed_after_restart": len(bad),
        "rto_reads_seconds": round(max(bad), 3) if bad else 0.0,  # last failed read of a backed-up session
        "rto_restore_seconds": round(restored, 3),  # until Redis holds everything and is trusted again
        "restore_seconds": done.get("seconds"),
        "restore_sessions_per_second_under_traffic": done.get("per_second"),
        "restore_copied": done.get("copied"),
        "backlog_at_kill": backlog,
        "rpo_estimate": loss.get("rpo_estimate"),
        "rpo_upper_bound": loss.get("rpo_upper_bound"),
        "acknowledged_writes": loads[0].writes_acked,
        "acknowledged_writes_lost": len(lost),
        "write_requests_failed": len(loads[0].failed),
    }


# -- outage: Redis hung for N seconds -------------------------------------------------------------


async def outage(args: argparse.Namespace) -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        node = data_node(free_port(), tmp / "redis").start()
        try:
            env = fault_env(url, node.url, "f2fbench", F2F_REDIS_FAILOVER_SECONDS=str(args.failover_seconds),
                            F2F_PHASE_POLL_SECONDS=str(args.poll))
            await go_redis(env, copy=False)
            with fleet(env, tmp, 2) as bases:
                await asyncio.sleep(2)
                loads = [Load(b, clients=args.writers) for b in bases]
                runners = [asyncio.create_task(load.run()) for load in loads]
                await asyncio.sleep(3)
                stopped = time.monotonic()
                node.pause()
                failover = await until(env, "dual", limit=args.seconds) if args.failover_seconds else None
                await asyncio.sleep(max(0.0, stopped + args.seconds - time.monotonic()))
                resumed = time.monotonic()
                node.resume()
                restored = await until(env, "ok") if args.failover_seconds else None
                await asyncio.sleep(1)
                await stop_loads(loads, runners)
                lost = sum([len(await load.lost_list()) for load in loads])
                back = await run_f2f(env, tmp, "migrate", "to", "redis", "--yes", "--json") if failover else None
        finally:
            node.stop()
        history_rows = await steps(env)
    fo = stopped + failover if failover is not None else resumed

    def share(start: float, end: float) -> dict[str, Any]:
        failed = sum(load.share_failed(start, end)[0] for load in loads)
        sent = sum(load.share_failed(start, end)[1] for load in loads)
        return {"failed": failed, "sent": sent, "share": round(failed / sent, 4) if sent else None}

    conflicts = next((d.get("conflicts") for a, d in history_rows if a == "failover-reconciled"), None)
    return {
        "outage_seconds": args.seconds,
        "failover_seconds_setting": args.failover_seconds,
        "failover_after_seconds": round(failover, 2) if failover is not None else None,
        "before_outage": share(0, stopped),
        "outage_before_failover": share(stopped, fo),
        "outage_after_failover": share(fo, resumed),
        "outage_after_failover_settled_1s": share(fo + 1, resumed),
        "reconciled_and_restored_after_return_seconds": round(restored, 2) if restored is not None else None,
        "conflicts_reported": conflicts,
        "acknowledged_writes_missing": lost,
        "failback_to_redis_exit_code": back[0] if back else None,
    }


# -- sentinel: master SIGKILLed ---------------------------------------------------------------------


async def sentinel(args: argparse.Namespace) -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        servers = start_sentinel(tmp / "sentinel", replica=True, down_after_ms=args.down_after_ms)
        try:
            env = fault_env(url, servers.url, "f2fbench", F2F_REDIS_FAILOVER_SECONDS="30",
                            F2F_PHASE_POLL_SECONDS=str(args.poll))
            await go_redis(env, copy=False)
            with fleet(env, tmp, 2) as bases:
                await asyncio.sleep(2)
                loads = [Load(b, clients=args.writers) for b in bases]
                runners = [asyncio.create_task(load.run()) for load in loads]
                await asyncio.sleep(3)
                old = servers.master.port
                killed = time.monotonic()
                servers.master.kill()
                promoted = await wait_for(lambda: _moved(servers.current_master_port(), old), "the promotion")
                await asyncio.sleep(5)
                await stop_loads(loads, runners)
                lost = sum([len(await load.lost_list()) for load in loads])
        finally:
            servers.stop()
    acks = sorted(t for load in loads for t in load.acked_at.values() if t > killed)
    failed = [t for load in loads for t, _ in load.failed_at if t >= killed]
    return {
        "down_after_ms": args.down_after_ms,
        "promotion_seconds": round(promoted, 2),
        # Time to recover: from the kill to the last failed request (every request after it succeeded).
        "recovered_after_seconds": round(max(failed) - killed, 2) if failed else 0.0,
        "failed_requests": len(failed),
        "requests_sent": sum(load.sent for load in loads),
        "writes_acknowledged_after_the_kill": len(acks),
        "acknowledged_writes_lost": lost,
    }


async def _moved(port: int, old: int) -> bool:
    return port != old


# -- timeout: the Redis store's latency tail under load ---------------------------------------------


async def timeout(args: argparse.Namespace) -> dict[str, Any]:
    """Store-operation latency in the redis phase with a 5 s timeout (so nothing is cut), read from the
    server's own histogram: how many operations a given command timeout would have turned into errors."""
    with bench_database() as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        node = data_node(free_port(), tmp / "redis").start()
        try:
            env = fault_env(url, node.url, "f2fbench", F2F_REDIS_COMMAND_TIMEOUT="5")
            await go_redis(env, copy=False)
            with fleet(env, tmp, 1) as (base,):
                loads = [Load(base, clients=args.writers)]
                runners = [asyncio.create_task(load.run()) for load in loads]
                await asyncio.sleep(args.seconds)
                await stop_loads(loads, runners)
                async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                    text = (await http.get("/metrics")).text
        finally:
            node.stop()
    buckets: dict[float, float] = {}
    total = 0.0
    for line in text.splitlines():
        if line.startswith("f2f_store_operation_duration_seconds_bucket{") and 'backend="redis"' in line:
            le = line.split('le="')[1].split('"')[0]
            value = float(line.rsplit(" ", 1)[1])
            if le == "+Inf":
                total += value
            else:
                buckets[float(le)] = buckets.get(float(le), 0.0) + value
    over = {f"over_{int(le * 1000)}ms": int(total - n) for le, n in sorted(buckets.items()) if le >= 0.025}
    return {"operations": int(total), **over, "requests_sent": loads[0].sent, "requests_failed": len(loads[0].failed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("rto")
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--poll", type=float, default=0.5)
    p = sub.add_parser("outage")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--failover-seconds", type=float, default=5)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--poll", type=float, default=0.5)
    p = sub.add_parser("sentinel")
    p.add_argument("--down-after-ms", type=int, default=1000)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--poll", type=float, default=0.5)
    p = sub.add_parser("timeout")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--writers", type=int, default=32)
    args = ap.parse_args()
    run = {"rto": rto, "outage": outage, "sentinel": sentinel, "timeout": timeout}[args.what]
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
