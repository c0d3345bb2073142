"""``f2f bench backup``: can ``f2f worker`` keep the PostgreSQL backup of the ``redis`` phase fresh?

Two measurements, in one run, on a dedicated database (``f2f_bench_<random>``,
migrated, phase ``redis``, dropped afterwards) and a unique Redis key prefix
(deleted afterwards):

- **Drain capacity.** For each session size K: fresh sessions holding K
  ingredients are created and backed up (untimed). Then, with every worker
  off, one ``f2f serve`` (one uvicorn worker) takes one-ingredient POSTs for
  ``fill_seconds`` from wrk (its rate is "what one serve writes"); then W
  worker processes, started and connected beforehand and waiting on a start
  signal, drain the stream and are timed until it is empty. Drain rate =
  entries / time. Beside it, the **baseline**: the same stream entries, as the
  full-state rows they carry (one session row plus K ingredient rows per
  entry), written with a bare psycopg ``COPY`` into unindexed tables, timed.
- **Lag at a write rate.** One worker process runs; this process writes
  one-ingredient adds at ``rate``/s for ``lag_seconds`` through the Redis store
  of the ``redis`` phase. The worker records, for every entry, the time from
  its XADD (the entry id is Redis' clock) to its SQL commit: the backup lag
  (the RPO a Redis loss would cost at that moment). p50/p95/p99/max.

The worker processes run the very ``BackupWorker`` of ``f2f worker``; the
processes start before the timing so Python start-up is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from f2f_cli.bench import redis_admin as bench_redis
from f2f_cli.bench.host import Machine, describe_machine
from f2f_cli.bench.http import (
    BenchFailed,
    _prepare_database,
    _request,
    _versions,
    dedicated_database,
    server_process,
)
from f2f_cli.bench.loadgen import LoadResult, run_python_client, run_wrk, wrk_version
from f2f_cli.bench.stats import ratio
from f2f_cli.errors import ConfigError, StoreUnavailable
from f2f_cli.settings import Settings

Progress = Callable[[str], None]
TARGET_DRAIN_OVER_SERVE = 4.0  # one worker drains at least 4× what one f2f serve writes
TARGET_LAG_P99_MS = 100.0  # at the target rate (3,000 writes/s), one worker
_FILL_NAMES = tuple(f"재료{i:03d}" for i in range(200))
# One-name adds rotate through a prime number of names, so a session meets new names through the fill.
_ADD_NAMES = tuple(f"추가{i:02d}" for i in range(97))


class DrainRun(msgspec.Struct):
    workers: int
    entries: int  # the backlog the workers drained
    seconds: float
    entries_per_second: float
    sessions_applied: int  # after coalescing (a hot session's entries in one batch apply once)
    ingredient_rows: int  # rows inserted, updated or deleted (by difference)
    batches: int
    worker_cpu_seconds: float  # summed over the worker processes: CPU < wall × workers means they waited
    worker_sql_seconds: float  # summed: wall time inside SQL transactions (apply + commit)
    worker_ack_seconds: float  # summed: acknowledging and deleting entries in Redis
    diffed_in_worker: int  # sessions whose ingredient difference the worker computed (the rest: in SQL)
    serve_adds_per_second: float  # what one f2f serve wrote while filling this backlog
    serve_failed: int
    drain_over_serve: float | None


class DrainScenario(msgspec.Struct):
    ingredients: int  # K, per session before the fill
    runs: list[DrainRun]
    baseline_entries: int  # the sample of stream entries the COPY baseline wrote
    baseline_rows: int
    baseline_entries_per_second: float  # entries' full-state rows written by a bare psycopg COPY
    one_worker_over_baseline: float | None
    one_worker_over_serve: float | None
    target: float
    meets_target: bool | None


class LagResult(msgspec.Struct):
    target_rate: int
    seconds: float
    writes: int
    write_rate: float  # achieved
    write_errors: int
    entries: int
    batches: int
    worker_cpu_seconds: float
    worker_sql_seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    backlog_max: int
    drained_after_last_write_ms: float
    target_p99_ms: float
    meets_target: bool | None
    # Redis Cluster only, measured after the run (backlog drained): an idle worker poll through the
    # backup index, against reading all 16,384 slot streams (what a poll cost before the index).
    poll_indexed_ms: float | None = None
    poll_all_streams_ms: float | None = None


class BackupBenchResult(msgspec.Struct):
    machine: Machine
    redis: str  # single, sentinel or cluster
    sessions: int
    fill_seconds: float
    batch_size: int
    connections: int
    database: str
    drain: list[DrainScenario]
    lag: LagResult | None
    notes: list[str]
    cleanup: dict[str, int]


# -- worker processes -----------------------------------------------------------------------------


def _worker_process(env: dict[str, str], batch_size: int, record_lag: bool, events: dict[str, Any], out: Any) -> None:
    """Entry point of one spawned worker process (see :class:`_Workers`)."""
    asyncio.run(_worker_async(env, batch_size, record_lag, events, out))


async def _until(event: Any, stopping: asyncio.Event) -> None:
    """Set ``stopping`` when the cross-process ``event`` is set."""
    await asyncio.to_thread(event.wait)
    stopping.set()


async def _worker_async(env: dict[str, str], batch_size: int, record_lag: bool, events: dict[str, Any],
                        out: Any) -> None:  # fmt: skip
    from f2f_cli.backends import Backends
    from f2f_cli.backup.worker import BackupWorker, WorkerOptions, WorkerStats
    from f2f_cli.heap import freeze_long_lived

    backends = Backends.open(Settings.from_env(env, env_file=None))
    worker = BackupWorker.on(backends, WorkerOptions(batch_size=batch_size, block_ms=200, heartbeat_seconds=60,
                                                     report_seconds=3600, catchup_report_seconds=3600))  # fmt: skip
    try:
        await worker.prepare()
        await worker._heartbeat(force=True)  # opens the SQL pool before any clock starts
        freeze_long_lived()  # where `f2f worker` does it (run_worker): after the set-up, before the loop
        out.put(("ready", os.getpid()))
        # Warm-up: back up the sessions the bench creates, as a long-running worker would have.
        await asyncio.to_thread(events["warm"].wait)
        warm = asyncio.Event()
        await asyncio.gather(worker.run(warm, prepared=True), _until(events["cool"], warm))
        worker.stats = WorkerStats(lag_samples=[] if record_lag else None)
        out.put(("warmed", os.getpid()))
        await asyncio.to_thread(events["go"].wait)
        halt = asyncio.Event()
        cpu = time.process_time()
        stats = (await asyncio.gather(worker.run(halt, prepared=True), _until(events["halt"], halt)))[0]
        out.put(("stats", {
            "entries": stats.entries, "sessions": stats.sessions, "rows": stats.ingredient_rows,
            "batches": stats.batches, "errors": stats.errors, "cpu": time.process_time() - cpu,
            "sql": stats.sql_seconds, "ack": stats.ack_seconds, "wait": stats.wait_seconds,
            "diffed": stats.diffed_in_worker, "lags": stats.lag_samples or [],
        }))  # fmt: skip
    finally:
        await worker.close()
        await backends.close()


class _Workers:
    """W spawned ``BackupWorker`` processes: connected, then warmed on the bench's set-up writes
    (``warm`` … ``cool``), then off until ``start``; ``stop`` collects their stats."""

    def __init__(self, env: dict[str, str], count: int, batch_size: int, *, record_lag: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.out = ctx.Queue()
        self.events = {name: ctx.Event() for name in ("warm", "cool", "go", "halt")}
        args = (env, batch_size, record_lag, self.events, self.out)
        self.procs = [ctx.Process(target=_worker_process, args=args, daemon=True) for _ in range(count)]
        for proc in self.procs:
            proc.start()
        self._collect("ready", "start")

    def _collect(self, kind: str, what: str, timeout: float = 120) -> list[Any]:
        got = []
        try:
            for _ in self.procs:
                tag, value = self.out.get(timeout=timeout)
                if tag != kind:
                    raise BenchFailed(f"a worker process sent {tag!r} while the bench waited for {kind!r}")
                got.append(value)
        except BenchFailed:
            self.kill()
            raise
        except Exception as exc:
            self.kill()
            raise BenchFailed(f"a worker process did not {what}: {exc!r}") from None
        return got

    def warm(self) -> None:
        self.events["warm"].set()

    def cool(self) -> None:
        """Stop the warm-up run (after its in-flight batch) and wait until every worker is idle."""
        self.events["cool"].set()
        self._collect("warmed", "finish its warm-up")

    def start(self) -> float:
        self.events["go"].set()
        return time.perf_counter()

    def stop(self) -> list[dict[str, Any]]:
        for name in ("warm", "cool", "go", "halt"):  # whatever stage a worker is in, it ends
            self.events[name].set()
        try:
            return self._collect("stats", "report")
        finally:
            for proc in self.procs:
                proc.join(timeout=30)
            self.kill()

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)


# -- helpers ----------------------------------------------------------------------------------------


def _env(settings: Settings, db_url: str, prefix: str, max_ingredients: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2F_")}
    env.update({
        "F2F_DATABASE_URL": db_url, "F2F_REDIS_URL": settings.redis_url or "", "F2F_REDIS_KEY_PREFIX": prefix,
        "F2F_LOG_LEVEL": "warning", "F2F_SESSION_TTL_SECONDS": str(settings.session_ttl_seconds),
        "F2F_MAX_INGREDIENTS": str(max_ingredients), "F2F_DB_POOL_SIZE": str(settings.db_pool_size),
        # The bench drives Redis hard on two shared cores; a stalled reply must not count as a failure.
        "F2F_REDIS_COMMAND_TIMEOUT": "2", "F2F_REDIS_CONNECT_TIMEOUT": "2",
    })  # fmt: skip
    return env


async def _make_sessions(env: dict[str, str], count: int, k: int) -> list[str]:
    """``count`` sessions with ``k`` ingredients each (the warm workers back them up)."""
    from f2f_cli.stores.redis import RedisSessionStore

    settings = Settings.from_env(env, env_file=None)
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    try:
        # One write alone first: a Cluster client that meets a burst before it has discovered the
        # slots (and loaded the script) drops connections.
        ids: list[str] = [(await store.create()).session_id]
        if k:
            await store.add_ingredients(ids[0], _FILL_NAMES[:k])
        for start in range(1, count, 50):
            made = await asyncio.gather(*(store.create() for _ in range(min(50, count - start))))
            ids += [s.session_id for s in made]
            if k:
                await asyncio.gather(*(store.add_ingredients(s.session_id, _FILL_NAMES[:k]) for s in made))
        return ids
    finally:
        await store.close()


def _warm_pool(env: dict[str, str], count: int, batch_size: int, sessions: int, k: int, *,
               record_lag: bool = False) -> tuple[_Workers, list[str]]:  # fmt: skip
    """Worker processes that have backed up ``sessions`` fresh sessions of ``k`` ingredients and are idle."""
    pool = _Workers(env, count, batch_size, record_lag=record_lag)
    try:
        pool.warm()
        ids = asyncio.run(_make_sessions(env, sessions, k))
        asyncio.run(_wait_drained(env, 0.01))
        pool.cool()
    except BaseException:
        pool.kill()
        raise
    return pool, ids


async def _poll_costs(env: dict[str, str]) -> tuple[float, float] | None:
    """Cluster: median ms of an indexed poll (SMEMBERS of the index) and of a length read of every slot stream."""
    from f2f_cli.backup.worker import _streams_with_entries
    from f2f_cli.redis.client import create_redis, is_cluster
    from f2f_cli.redis.keys import RedisKeys

    settings = Settings.from_env(env, env_file=None)
    client = create_redis(settings, command_timeout=30)
    try:
        keys = RedisKeys(settings.redis_key_prefix, cluster=is_cluster(client))
        if not keys.cluster:
            return None
        indexed: list[float] = []
        everything: list[float] = []
        for _ in range(5):
            start = time.perf_counter()
            await client.smembers(keys.backup_index)
            indexed.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await _streams_with_entries(client, keys)
            everything.append((time.perf_counter() - start) * 1000)
        return float(np.median(indexed)), float(np.median(everything))
    finally:
        await client.aclose()


async def _backlog(env: dict[str, str]) -> int:
    from f2f_cli.backup.worker import backup_lag
    from f2f_cli.redis.client import create_redis, is_cluster
    from f2f_cli.redis.keys import RedisKeys

    settings = Settings.from_env(env, env_file=None)
    client = create_redis(settings)
    try:
        return (await backup_lag(client, RedisKeys(settings.redis_key_prefix, cluster=is_cluster(client)))).total
    finally:
        await client.aclose()


async def _wait_drained(env: dict[str, str], interval: float, limit: float = 600.0) -> float:
    """Poll the backlog until it is empty; return the perf_counter time it was first seen empty."""
    from f2f_cli.backup.worker import backlog_per_primary, backup_lag
    from f2f_cli.redis.client import create_redis, is_cluster
    from f2f_cli.redis.keys import RedisKeys

    settings = Settings.from_env(env, env_file=None)
    client = create_redis(settings)
    keys = RedisKeys(settings.redis_key_prefix, cluster=is_cluster(client))
    deadline = time.perf_counter() + limit
    try:
        while time.perf_counter() < deadline:
            # The node streams and the index first (a few XLEN); then, once, every slot stream to be sure.
            total = sum((await backlog_per_primary(client, keys)).values())
            if total == 0:
                seen = time.perf_counter()
                if not keys.cluster or (await backup_lag(client, keys)).total == 0:
                    return seen
            await asyncio.sleep(interval)
    finally:
        await client.aclose()
    raise BenchFailed(f"the backup stream was not drained within {limit:.0f} s")


async def _stream_sample(env: dict[str, str], limit: int) -> list[dict[bytes, bytes]]:
    """The first ``limit`` entries of the (single) backup stream: the rows the COPY baseline writes."""
    from f2f_cli.redis.client import create_redis, is_cluster
    from f2f_cli.redis.keys import RedisKeys

    settings = Settings.from_env(env, env_file=None)
    client = create_redis(settings)
    try:
        keys = RedisKeys(settings.redis_key_prefix, cluster=is_cluster(client))
        entries: list[dict[bytes, bytes]] = []
        for stream in keys.backup_streams() if not keys.cluster else ():
            reply: Any = await client.xrange(stream, count=limit)
            entries += [fields for _, fields in reply or ()]
        return entries
    finally:
        await client.aclose()


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _copy_baseline(db_url: str, entries: Sequence[dict[bytes, bytes]]) -> tuple[int, float]:
    """Write the entries' full-state rows with a bare psycopg COPY; (rows, seconds of the COPY + commit)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from f2f_cli.backup.apply import PackedCopy

    sessions: list[str] = []
    ingredients: list[str] = []
    for fields in entries:
        c = PackedCopy.from_entry(fields)
        deleted = _ts(c.updated_ms) if c.deleted else "\\N"
        sessions.append(f"{c.session_id}\t{_ts(c.created_ms)}\t{_ts(c.updated_ms)}\t{_ts(c.expires_ms)}\t"
                        f"{c.version}\t{deleted}\n")  # fmt: skip
        if c.packed:
            parts = c.packed.split("\x1f")
            for i in range(0, len(parts), 2):
                ingredients.append(f"{c.session_id}\t{parts[i]}\t{_ts(c.created_ms + int(parts[i + 1]))}\n")
    session_block, ingredient_block = "".join(sessions).encode(), "".join(ingredients).encode()
    url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("CREATE TEMP TABLE copy_sessions (LIKE fridge_sessions)")
        conn.execute("CREATE TEMP TABLE copy_ingredients (LIKE fridge_session_ingredients)")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY copy_sessions (session_id, created_at, updated_at, expires_at, version, deleted_at) "
                          "FROM STDIN") as copy:  # fmt: skip
                copy.write(session_block)
            with cur.copy("COPY copy_ingredients (session_id, name, added_at) FROM STDIN") as copy:
                copy.write(ingredient_block)
        conn.commit()
        seconds = time.perf_counter() - start
    return len(sessions) + len(ingredients), seconds


def _fill(base: str, ids: Sequence[str], seconds: float, connections: int, use_wrk: bool) -> LoadResult:
    paths = [f"/v1/sessions/{sid}/ingredients" for sid in ids]
    bodies = [json.dumps({"ingredients": [name]}, ensure_ascii=False) for name in _ADD_NAMES]
    if use_wrk:
        return run_wrk(base, "POST", paths, bodies, duration=seconds, connections=connections)
    return run_python_client(base, "POST", paths, bodies, duration=seconds, connections=connections)


# -- the two measurements ---------------------------------------------------------------------------


def _drain_scenario(
    env: dict[str, str], db_url: str, serve_url: str, *, k: int, sessions: int, workers: Sequence[int],
    fill_seconds: float, connections: int, batch_size: int, copy_sample: int, use_wrk: bool, say: Progress,
) -> DrainScenario:
    runs: list[DrainRun] = []
    sample: list[dict[bytes, bytes]] = []
    baseline_entries = baseline_rows = 0
    baseline_rate = 0.0
    for count in workers:
        say(f"K={k}: {count} worker(s) back up {sessions} new sessions of {k} ingredients (untimed warm-up)")
        pool, ids = _warm_pool(env, count, batch_size, sessions, k)
        try:
            say(f"K={k}: f2f serve takes one-ingredient POSTs for {fill_seconds:g} s, workers off")
            load = _fill(serve_url, ids, fill_seconds, connections, use_wrk)
            backlog = asyncio.run(_backlog(env))
            if count == workers[0] and copy_sample:
                sample = asyncio.run(_stream_sample(env, copy_sample))
            say(f"K={k}: {count} worker(s) drain {backlog:,} entries")
            started = pool.start()
            ended = asyncio.run(_wait_drained(env, 0.005))
        finally:
            stats = pool.stop()
        seconds = ended - started
        rate = backlog / seconds if seconds > 0 else 0.0
        runs.append(DrainRun(
            workers=count, entries=backlog, seconds=seconds, entries_per_second=rate,
            sessions_applied=sum(s["sessions"] for s in stats), ingredient_rows=sum(s["rows"] for s in stats),
            batches=sum(s["batches"] for s in stats), worker_cpu_seconds=sum(s["cpu"] for s in stats),
            worker_sql_seconds=sum(s["sql"] for s in stats), worker_ack_seconds=sum(s["ack"] for s in stats),
            diffed_in_worker=sum(s["diffed"] for s in stats),
            serve_adds_per_second=load.requests_per_second, serve_failed=load.errors + load.non_2xx,
            drain_over_serve=ratio(rate, load.requests_per_second),
        ))  # fmt: skip
        if count == workers[0] and copy_sample and sample:
            say(f"K={k}: baseline: the same entries' rows with a bare psycopg COPY")
            baseline_rows, copy_seconds = _copy_baseline(db_url, sample)
            baseline_entries = len(sample)
            baseline_rate = baseline_entries / copy_seconds if copy_seconds > 0 else 0.0
    one = next((r for r in runs if r.workers == 1), None)
    one_over_serve = one.drain_over_serve if one else None
    return DrainScenario(
        ingredients=k, runs=runs, baseline_entries=baseline_entries, baseline_rows=baseline_rows,
        baseline_entries_per_second=baseline_rate,
        one_worker_over_baseline=ratio(one.entries_per_second, baseline_rate) if one else None,
        one_worker_over_serve=one_over_serve, target=TARGET_DRAIN_OVER_SERVE,
        meets_target=None if one_over_serve is None else one_over_serve >= TARGET_DRAIN_OVER_SERVE,
    )  # fmt: skip


async def _write_at_rate(env: dict[str, str], ids: Sequence[str], rate: int, seconds: float
                         ) -> tuple[int, int, float, int]:  # fmt: skip
    """One-ingredient adds at ``rate``/s; returns (writes, errors, seconds, backlog max).

    A load generator, so it is lean: every 2 ms the writes then due go out in one pipeline of the
    very Lua write script the Redis store runs (same stream entry, same backup index update on a
    Cluster), without decoding the replies into sessions."""
    from redis.exceptions import RedisError

    from f2f_cli.redis.scripts import WRITE
    from f2f_cli.stores.redis import RedisSessionStore

    settings = Settings.from_env(env, env_file=None)
    store = RedisSessionStore.from_settings(settings, backup_stream=True)
    client, keys = store.client, store.keys
    written = errors = backlog_max = 0
    stream = None if keys.cluster else keys.backup_streams()[0]
    try:
        sha = await client.script_load(WRITE)
        start = last_sample = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = min(int(elapsed * rate) + 1, int(rate * seconds)) - written - errors
            if due > 0:
                pipe = client.pipeline(transaction=False)
                first = written + errors
                for i in range(first, first + due):
                    sid = ids[i % len(ids)]
                    call_keys, call_args = store.write_call("a", sid, (_ADD_NAMES[i % len(_ADD_NAMES)],))
                    pipe.execute_command("EVALSHA", sha, len(call_keys), *call_keys, *call_args)
                replies = await pipe.execute(raise_on_error=False)
                marks = []
                for i, reply in zip(range(first, first + due), replies, strict=True):
                    if isinstance(reply, BaseException) or int(reply[0]) != 1:
                        errors += 1
                        continue
                    written += 1
                    if keys.cluster and int(reply[3]) == 1:  # backup_first (see redis_scripts.WRITE)
                        marks.append(keys.backup_slot(ids[i % len(ids)]))
                if marks:
                    await client.sadd(keys.backup_index, *marks)
            if stream is not None and time.perf_counter() - last_sample >= 0.05:
                last_sample = time.perf_counter()
                backlog_max = max(backlog_max, int(await client.xlen(stream)))
            await asyncio.sleep(0.002)
        return written, errors, time.perf_counter() - start, backlog_max
    except RedisError as exc:
        raise BenchFailed(f"the writer lost Redis: {exc}") from None
    finally:
        await store.close()


def _lag(env: dict[str, str], *, rate: int, seconds: float, sessions: int, batch_size: int, say: Progress
         ) -> LagResult:  # fmt: skip
    say(f"lag: one worker backs up {sessions} new sessions of 10 ingredients (untimed warm-up)")
    pool, ids = _warm_pool(env, 1, batch_size, sessions, 10, record_lag=True)
    try:
        pool.start()
        say(f"lag: writing {rate:,} adds/s for {seconds:g} s with one worker running")
        writes, errors, took, backlog_max = asyncio.run(_write_at_rate(env, ids, rate, seconds))
        last = time.perf_counter()
        drained = asyncio.run(_wait_drained(env, 0.002))
    finally:
        stats = pool.stop()
    polls = asyncio.run(_poll_costs(env))
    lags = np.asarray([x for s in stats for x in s["lags"]], dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(lags, [50, 95, 99])) if lags.size else (0.0, 0.0, 0.0)
    return LagResult(
        target_rate=rate, seconds=took, writes=writes, write_rate=writes / took if took > 0 else 0.0,
        write_errors=errors, entries=int(lags.size), batches=sum(s["batches"] for s in stats),
        worker_cpu_seconds=sum(s["cpu"] for s in stats), worker_sql_seconds=sum(s["sql"] for s in stats),
        p50_ms=p50, p95_ms=p95, p99_ms=p99,
        max_ms=float(lags.max()) if lags.size else 0.0, backlog_max=backlog_max,
        drained_after_last_write_ms=max(0.0, (drained - last) * 1000), target_p99_ms=TARGET_LAG_P99_MS,
        meets_target=None if not lags.size else p99 <= TARGET_LAG_P99_MS,
        poll_indexed_ms=polls[0] if polls else None, poll_all_streams_ms=polls[1] if polls else None,
    )  # fmt: skip


def run_backup_bench(settings: Settings, **options: Any) -> BackupBenchResult:
    """Run the bench (blocking; about half a minute per (K, workers) pair plus the lag run) and return
    its result; see :func:`_run` for the options. A store that fails on the way is one clear error."""
    import psycopg
    from redis.exceptions import RedisClusterException, RedisError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _run(settings, **options)
    except (RedisError, RedisClusterException, SQLAlchemyError, psycopg.Error, OSError, ValueError) as exc:
        raise StoreUnavailable(f"the backup bench stopped: {exc}") from None


def _run(
    settings: Settings,
    *,
    ingredients: Sequence[int] = (10, 90),
    workers: Sequence[int] = (1, 2, 4),
    sessions: int = 2000,
    fill_seconds: float = 10.0,
    connections: int = 16,
    batch_size: int = 500,
    rate: int = 3000,
    lag_seconds: float = 10.0,
    copy_sample: int = 5000,
    drain: bool = True,
    lag: bool = True,
    loadgen: str = "auto",
    progress: Progress | None = None,
) -> BackupBenchResult:
    say = progress or (lambda _m: None)
    if not settings.redis_url:
        raise ConfigError("F2F_REDIS_URL is not set: the backup stream lives in Redis")
    if settings.is_sqlite:
        raise ConfigError("F2F_DATABASE_URL must be PostgreSQL: the bench measures the PostgreSQL backup")
    wrk = wrk_version()
    if loadgen == "wrk" and wrk is None:
        raise ConfigError("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    use_wrk = wrk is not None and loadgen in ("auto", "wrk")
    generator = wrk if use_wrk and wrk else "built-in asyncio client (Python; competes with the server for CPU)"
    prefix = f"{settings.redis_key_prefix}:bench:{secrets.token_hex(4)}"
    max_ingredients = max([*ingredients, 10]) + len(_ADD_NAMES)
    notes: list[str] = []
    cleanup = {"redis_keys": 0, "databases": 0}
    scenarios: list[DrainScenario] = []
    lag_result: LagResult | None = None
    redis_kind = "cluster" if settings.redis_url.startswith("redis+cluster") else (
        "sentinel" if settings.redis_url.startswith("redis+sentinel") else "single")  # fmt: skip
    if drain and redis_kind == "cluster":
        notes.append("the COPY baseline is skipped on a Cluster")
    with tempfile.TemporaryDirectory(prefix="f2f-bench-backup-") as tmp:
        workdir = Path(tmp)
        try:
            with dedicated_database(settings, workdir) as db_url:
                database = db_url.rpartition("/")[2]
                say("preparing a dedicated database in phase redis")
                _prepare_database(db_url, "redis")
                _, postgres_version = _versions(dataclasses.replace(settings, redis_url=None), db_url)
                redis_version = asyncio.run(bench_redis.redis_version(settings))
                env = _env(settings, db_url, prefix, max_ingredients)
                if drain:
                    say("starting f2f serve (one uvicorn worker)")
                    argv = [sys.executable, "-m", "f2f_cli", "serve", "--workers", "1", "--log-level", "warning"]
                    with server_process(argv, env, workdir, "f2f serve") as serve_url:
                        status, ready = _request(f"{serve_url}/readyz")
                        if status != 200 or ready.get("phase") != "redis":
                            raise BenchFailed(f"f2f serve is not ready in phase redis: {ready}")
                        for k in ingredients:
                            scenarios.append(_drain_scenario(
                                env, db_url, serve_url, k=k, sessions=sessions, workers=workers,
                                fill_seconds=fill_seconds, connections=connections, batch_size=batch_size,
                                copy_sample=copy_sample, use_wrk=use_wrk, say=say,
                            ))  # fmt: skip
                if lag:
                    lag_result = _lag(env, rate=rate, seconds=lag_seconds, sessions=sessions,
                                      batch_size=batch_size, say=say)  # fmt: skip
                cleanup["databases"] = 1
        finally:
            with contextlib.suppress(Exception):
                cleanup["redis_keys"] = asyncio.run(bench_redis.delete_prefix(settings, prefix))
    for sc in scenarios:
        for run in sc.runs:
            if run.serve_failed:
                notes.append(f"K={sc.ingredients}, {run.workers} worker(s): {run.serve_failed} failed POSTs "
                             "in the fill")
    if lag_result is not None and lag_result.write_rate < 0.95 * rate:
        notes.append(f"the writer reached {lag_result.write_rate:,.0f} of the {rate:,} writes/s asked for")
    machine = describe_machine(redis=redis_version, postgresql=postgres_version, sql_backend="postgresql",
                               load_generator=generator)  # fmt: skip
    return BackupBenchResult(
        machine=machine, redis=redis_kind, sessions=sessions, fill_seconds=fill_seconds, batch_size=batch_size,
        connections=connections, database=database, drain=scenarios, lag=lag_result, notes=notes, cleanup=cleanup,
    )
