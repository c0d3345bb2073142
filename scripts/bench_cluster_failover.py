#!/usr/bin/env python3
"""Figures for a Redis Cluster shard failing under load in the ``redis`` phase (issue #28).

Starts everything on loopback: a Cluster of 3 primaries with one replica each (``tests/redis_servers.py``),
a throw-away PostgreSQL database, two ``f2f serve`` and one ``f2f worker``, 16 writers (8 per instance,
each owning a session: add an ingredient, read the session back). Then SIGKILLs one primary (``--lose
primary``: its replica is promoted after ``cluster-node-timeout``) or the primary and its replica (``--lose
shard``: the shard is gone until the primary is started again, empty), and prints JSON:

- ``promoted_after_seconds``: kill → the Cluster serves every slot again (``primary``);
- ``failed_share_from_kill`` / ``failed_share_from_1s``: failed requests of every session (the target counts
  from 1 s after the death), until the window ends (promotion or the shard's return + 2 s);
- ``failed_shard_requests``: the same for the requests of the failed shard's sessions, with their latency
  (p50/p99/max) during the window;
- ``acknowledged_writes_lost``: acknowledged ingredients missing once everything settled;
- ``fleet_failed_over``: whether the fleet-wide failover tripped (it must not).

    .venv/bin/python scripts/bench_cluster_failover.py --node-timeout-ms 2000
    .venv/bin/python scripts/bench_cluster_failover.py --node-timeout-ms 15000
    .venv/bin/python scripts/bench_cluster_failover.py --node-timeout-ms 2000 --lose shard --down-seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import bench_database  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from f2f_cli.control import phase as control  # noqa: E402
from f2f_cli.control.phase import Phase, RedisState  # noqa: E402
from f2f_cli.db.engine import create_engine_for  # noqa: E402
from f2f_cli.settings import Settings  # noqa: E402
from tests.chaos.faults_support import fault_env, history, to_redis_phase, wait_for  # noqa: E402
from tests.load import Load  # noqa: E402
from tests.redis_servers import RedisClusterServers, start_cluster  # noqa: E402
from tests.servers import f2f_server, worker_process  # noqa: E402


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def session_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[3] if len(parts) > 3 else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cluster = start_cluster(tmp / "cluster", replicas=1, node_timeout_ms=args.node_timeout_ms,
                                full_coverage=not args.no_full_coverage)
        try:
            return await _measure(args, url, tmp, cluster)
        finally:
            cluster.stop()


async def _measure(args: argparse.Namespace, url: str, tmp: Path, cluster: RedisClusterServers) -> dict[str, Any]:
    env = fault_env(url, cluster.url, "f2fbench", F2F_PHASE_POLL_SECONDS=str(args.poll),
                    F2F_REDIS_FAILOVER_SECONDS=str(args.failover_seconds))
    env.update(dict(item.split("=", 1) for item in args.env))
    engine = create_engine_for(Settings.from_env(env, env_file=None))
    try:
        await to_redis_phase(engine)
        with f2f_server(env, cwd=tmp) as a, f2f_server(env, cwd=tmp) as b, worker_process(env, tmp):
            async def marked() -> bool:
                return (await control.get_control(engine)).redis_generation is not None

            await wait_for(marked, "the generation marker")
            loads = [Load(a, clients=args.writers // 2, renew_on_404=True),
                     Load(b, clients=args.writers // 2, renew_on_404=True)]
            runners = [asyncio.create_task(load.run()) for load in loads]
            await asyncio.sleep(3)
            victim = cluster.primary_ports()[0]
            slots = cluster.slots_of(victim)
            replica = cluster.replica_of(victim)
            killed = time.monotonic()
            cluster.kill(victim)
            if args.lose == "shard":
                cluster.kill(replica)
                await asyncio.sleep(args.down_seconds)
                cluster.node(victim).start()  # keeps its cluster config, holds no data
                await asyncio.to_thread(cluster.wait_state_ok)
                window_end = time.monotonic()
                promoted = None

                async def restored() -> bool:
                    return "redis-restored" in [a for a, _ in await history(engine)] and await _state_is(
                        engine, RedisState.OK)

                recovered = await wait_for(restored, "the restore", limit=120)
            else:
                await asyncio.to_thread(cluster.wait_promoted, victim, 120.0)
                window_end = time.monotonic()
                promoted = window_end - killed
                recovered = None
            await asyncio.sleep(2)
            for load in loads:
                load.stop.set()
            await asyncio.gather(*runners)
            await asyncio.sleep(1)
            lost_pairs = [(load, pair) for load in loads for pair in await load.lost_list()]
            lost = len(lost_pairs)
            lost_old = sum(1 for load, pair in lost_pairs if load.acked_at[pair] < killed - 2.0)
        state = await control.get_control(engine)
        steps = [action for action, _ in await history(engine)]
    finally:
        await engine.dispose()

    end = window_end + 2

    def share(start: float, only_shard: bool = False, reads: bool = False) -> dict[str, Any]:
        rows = [r for load in loads for r in load.requests if start <= r[0] < end]
        if reads:
            rows = [r for r in rows if r[2].count("/") == 3]
        if only_shard:
            rows = [r for r in rows if (sid := session_of(r[2])) and key_slot(sid.encode()) in slots]
        failed = sum(1 for r in rows if r[3] not in (200, 201))
        latency = [r[1] - r[0] for r in rows]
        return {"sent": len(rows), "failed": failed, "share": round(failed / len(rows), 4) if rows else None,
                "p50_s": quantile(latency, 0.5), "p99_s": quantile(latency, 0.99),
                "max_s": round(max(latency), 3) if latency else None}

    return {
        "load": os.getloadavg()[0],
        "node_timeout_ms": args.node_timeout_ms,
        "lose": args.lose,
        "writers": args.writers,
        "promoted_after_seconds": round(promoted, 2) if promoted is not None else None,
        "shard_back_after_seconds": round(window_end - killed, 2) if args.lose == "shard" else None,
        "restored_after_back_seconds": round(recovered, 2) if recovered is not None else None,
        "failed_share_from_kill": share(killed),
        "failed_share_from_1s": share(killed + 1),
        "failed_shard_requests_from_kill": share(killed, only_shard=True),
        "failed_shard_reads_from_1s": share(killed + 1, only_shard=True, reads=True),
        "acknowledged_writes": sum(load.writes_acked for load in loads),
        "acknowledged_writes_lost": lost,
        # What a shard lost with its replica may lose: writes acknowledged in the last moments before the kill,
        # not yet drained to the backup (RPO). Older ones must all be there.
        "acknowledged_writes_lost_older_than_2s_before_kill": lost_old,
        "fleet_failed_over": "auto-failover" in steps,
        "final_phase": str(state.phase),
        "final_redis_state": str(state.redis_state),
    }


async def _state_is(engine: Any, wanted: RedisState) -> bool:
    state = await control.get_control(engine)
    return state.phase is Phase.REDIS and state.redis_state is wanted and state.redis_trusted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node-timeout-ms", type=int, default=2000)
    ap.add_argument("--lose", choices=("primary", "shard"), default="primary")
    ap.add_argument("--down-seconds", type=float, default=8.0, help="--lose shard: how long the shard is gone")
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--failover-seconds", type=float, default=5.0)
    ap.add_argument("--env", action="append", default=[], help="extra F2F_NAME=value for the fleet")
    ap.add_argument("--no-full-coverage", action="store_true", help="cluster-require-full-coverage no")
    print(json.dumps(asyncio.run(run(ap.parse_args())), indent=2))


if __name__ == "__main__":
    main()
