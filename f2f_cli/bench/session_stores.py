"""``f2f bench sessions``: the SQL, Redis and dual session stores side by side.

Every store gets the same work in interleaved rounds: in each round and for
each operation, every store runs one batch in turn (the order rotates by round,
so no store always goes first on a warm CPU). The data shape is identical:
session *i* of round *r* holds the same ``K`` ingredient names in every store.
Operations: ``create``; ``get`` of a session holding K ingredients; ``add`` of
one new ingredient; ``remove`` of that ingredient.

Also measured in the same rounds:
- the plan's own design (one JSON string per session, GET + modify + SETEX) as
  a reference row, with the same ingredients;
- the raw client round trip under each store's ``get``: one ``HGETALL`` with
  redis-py on the very hash the Redis store just wrote; and on PostgreSQL, under
  the SQL store's ``get`` and ``add``, the very statements the store sends
  (``pg_hot.GET``, ``pg_hot.WRITE``) issued with bare psycopg on a pool of the
  same size, in the same rounds, on the same sessions;
- ``MEMORY USAGE`` per session for both Redis designs;
- a concurrent-add check: many adds of distinct names to one session at once,
  counting the names that are missing afterwards.

Everything created lives under a unique Redis key prefix and in session rows
this run deletes at the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

import msgspec
from redis.exceptions import RedisError
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backends import Backends
from f2f_cli.bench.host import Machine, describe_machine
from f2f_cli.bench.plan_design import PlanJsonSessions, lost_concurrent_adds
from f2f_cli.bench.stats import LatencyStats, ratio, summarize
from f2f_cli.clock import utcnow
from f2f_cli.db.schema import fridge_sessions
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import ConfigError, F2FError, SchemaNotReady
from f2f_cli.redis.client import RedisClient, scan_keys
from f2f_cli.settings import Settings
from f2f_cli.stores.breaker import CircuitBreaker
from f2f_cli.stores.dual import DualSessionStore
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore

STORES = ("sql", "redis", "dual")
OPS = ("create", "get", "add", "remove")
PLAN = "plan-json"
RAW_REDIS = "raw-redis-hgetall"
RAW_SQL = "raw-psycopg"
CLAIMED_SPEEDUP = 10.0
# Store p50 over the bare client call underneath it, per (store, op).
RAW_TARGETS = {("redis", "get"): 1.3, ("dual", "get"): 1.3, ("sql", "get"): 1.5, ("sql", "add"): 1.5}
RAW_OF = {"redis": RAW_REDIS, "dual": RAW_REDIS, "sql": RAW_SQL}
# The raw add puts this suffix on the store's name, so it adds a name the session lacks, as the store did.
RAW_ADD_SUFFIX = "·raw"
RACE_ADDS = 32
BENCH_CONNECT_TIMEOUT = 2.0

Progress = Callable[[str], None]

# Real Korean fridge items first; synthetic names beyond them keep any --ingredients size possible.
_NAMES = (
    "양파", "대파", "마늘", "달걀", "두부", "김치", "감자", "당근", "애호박", "돼지고기", "소고기", "닭고기",
    "고추", "청양고추", "버섯", "표고버섯", "콩나물", "시금치", "오이", "무", "배추", "양배추", "깻잎", "새우",
    "오징어", "멸치", "어묵", "햄", "베이컨", "치즈", "우유", "버터", "토마토", "가지", "고구마", "부추",
    "미역", "김", "참치", "스팸",
)
_POOL = (*_NAMES, *(f"재료{i:03d}" for i in range(400)))


class OpRatio(msgspec.Struct):
    """Redis against SQL for one operation, and the verdict on the plan's 10× claim."""

    op: str
    sql_p50_ms: float
    redis_p50_ms: float
    speedup_p50: float | None  # SQL p50 / Redis p50: how many times faster Redis answers
    throughput_ratio: float | None  # Redis ops/s / SQL ops/s
    holds_10x: bool | None
    verdict: str


class RawRatio(msgspec.Struct):
    """A store operation against the bare client call underneath it (same statement, same sessions)."""

    store: str
    op: str
    raw: str
    store_p50_ms: float
    raw_p50_ms: float
    ratio_p50: float | None
    target: float
    meets_target: bool | None


class MemoryUsage(msgspec.Struct):
    ingredients: int
    sessions_sampled: int
    f2f_hash_bytes: float  # mean MEMORY USAGE of one session hash
    plan_json_bytes: float  # mean MEMORY USAGE of one plan JSON string with the same ingredients
    f2f_over_plan: float | None


class RaceResult(msgspec.Struct):
    """``adds`` distinct names added at once to one session; how many were missing afterwards."""

    adds: int
    lost: dict[str, int]


class SessionsBenchResult(msgspec.Struct):
    machine: Machine
    seed: int
    ops_per_store: int
    concurrency: int
    ingredients: int
    rounds: int
    stores: list[str]
    results: dict[str, dict[str, LatencyStats]]  # target (store, plan-json, raw-*) -> op -> stats
    ratios: list[OpRatio]
    plan_vs_redis: dict[str, float | None]  # per op: plan-json p50 / f2f Redis store p50
    raw_ratios: list[RawRatio]
    memory: MemoryUsage | None
    race: RaceResult | None
    errors: dict[str, str]  # first error message per target/op that had failures
    notes: list[str]
    cleanup: dict[str, int]  # rows and keys removed at the end


class _Target(Protocol):
    async def create(self) -> str: ...

    async def get(self, session_id: str) -> object: ...

    async def add(self, session_id: str, names: Sequence[str]) -> object: ...

    async def remove(self, session_id: str, name: str) -> object: ...


class _StoreTarget:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def create(self) -> str:
        return (await self.store.create()).session_id

    async def get(self, session_id: str) -> object:
        return await self.store.get(session_id)

    async def add(self, session_id: str, names: Sequence[str]) -> object:
        return await self.store.add_ingredients(session_id, names)

    async def remove(self, session_id: str, name: str) -> object:
        return await self.store.remove_ingredient(session_id, name)


class _PlanTarget:
    def __init__(self, plan: PlanJsonSessions) -> None:
        self.plan = plan

    async def create(self) -> str:
        return await self.plan.create()

    async def get(self, session_id: str) -> object:
        return await self.plan.get(session_id)

    async def add(self, session_id: str, names: Sequence[str]) -> object:
        await self.plan.add_ingredients(session_id, names)
        return None

    async def remove(self, session_id: str, name: str) -> object:
        await self.plan.remove_ingredient(session_id, name)
        return None


_EXPECTED_ERRORS: tuple[type[BaseException], ...] = (F2FError, RedisError, OSError, KeyError, TimeoutError)


class _Recorder:
    """Latency samples, wall time and errors per (target, op), summed over rounds."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[int]] = {}
        self.seconds: dict[tuple[str, str], float] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.first_error: dict[str, str] = {}

    async def run(
        self, target: str, op: str, items: Sequence[Any], concurrency: int, call: Callable[[Any], Awaitable[object]]
    ) -> list[object]:
        """Run ``call`` on every item with ``concurrency`` workers; results in item order (None on error)."""
        key = (target, op)
        samples = self.samples.setdefault(key, [])
        results: list[object] = [None] * len(items)
        errors = 0
        position = iter(range(len(items)))

        async def worker() -> None:
            nonlocal errors
            for i in position:  # one iterator shared by every worker: each item runs once
                started = time.perf_counter_ns()
                try:
                    results[i] = await call(items[i])
                except _EXPECTED_ERRORS as exc:
                    errors += 1
                    message = exc.message if isinstance(exc, F2FError) else f"{type(exc).__name__}: {exc}"
                    self.first_error.setdefault(f"{target}/{op}", message)
                    continue
                samples.append(time.perf_counter_ns() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
        self.errors[key] = self.errors.get(key, 0) + errors
        return results

    def stats(self, target: str, op: str) -> LatencyStats:
        key = (target, op)
        return summarize(self.samples.get(key, []), self.seconds.get(key, 0.0), self.errors.get(key, 0))

    def reset(self) -> None:
        self.samples.clear()
        self.seconds.clear()
        self.errors.clear()
        self.first_error.clear()


class _RawSql:
    """The SQL store's own statements issued with bare psycopg on a pool of the store's size."""

    def __init__(self, url: str, size: int, ttl_seconds: int, max_ingredients: int) -> None:
        from f2f_cli.stores.pg_hot import make_pool

        self.pool = make_pool(url, size)
        self.ttl = timedelta(seconds=ttl_seconds)
        self.limit = max_ingredients

    async def open(self) -> None:
        await self.pool.open(wait=True)

    async def get(self, session_id: str) -> list[Any]:
        from f2f_cli.stores.pg_hot import GET

        async with self.pool.connection() as conn:
            cursor = await conn.execute(GET, (session_id, utcnow()), prepare=True)
            return await cursor.fetchall()

    async def add(self, pair: tuple[str, list[str]]) -> list[Any]:
        from f2f_cli.stores.pg_hot import WRITE

        now = utcnow()
        async with self.pool.connection() as conn:
            args = ("a", pair[0], [pair[1][-1] + RAW_ADD_SUFFIX], now, now + self.ttl, self.limit)
            cursor = await conn.execute(WRITE, args, prepare=True)
            return await cursor.fetchall()

    async def close(self) -> None:
        await self.pool.close()


def check_sql_schema(settings: Settings) -> None:
    """The bench writes real session rows: the schema must be at head."""
    from f2f_cli.db import migrate as schema

    state = schema.state(settings.database_url)
    if not state.at_head:
        raise SchemaNotReady(
            f"database schema is at {state.current or 'empty'}, this f2f needs {state.head}: "
            "run 'f2f migrate db upgrade' first"
        )


def run_sessions_bench(
    settings: Settings,
    *,
    stores: Sequence[str] = STORES,
    ops: int = 2000,
    concurrency: int = 8,
    ingredients: int = 10,
    rounds: int = 5,
    seed: int = 42,
    progress: Progress | None = None,
) -> SessionsBenchResult:
    """Run the bench (blocking) and return its result; see the module docstring."""
    unknown = sorted(set(stores) - set(STORES))
    if unknown or not stores:
        raise ConfigError(f"unknown store(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(STORES)}")
    # Each session gets K names, one more from the store's add and one from the raw add.
    if ingredients < 0 or ingredients + 2 > settings.max_ingredients:
        raise ConfigError(f"--ingredients must be between 0 and {settings.max_ingredients - 2}")
    if any(s in ("sql", "dual") for s in stores):
        check_sql_schema(settings)
    if any(s in ("redis", "dual") for s in stores) and not settings.redis_url:
        raise ConfigError("F2F_REDIS_URL is not set: the redis and dual stores need it (or use --store sql)")
    rounds = max(1, min(rounds, ops))
    return asyncio.run(
        _Bench(settings, list(stores), ops, concurrency, ingredients, rounds, seed, progress or (lambda _m: None)).run()
    )


class _Bench:
    def __init__(
        self, settings: Settings, stores: list[str], ops: int, concurrency: int, ingredients: int, rounds: int,
        seed: int, progress: Progress,
    ) -> None:
        self.prefix = f"{settings.redis_key_prefix}:bench:{secrets.token_hex(4)}"
        # Connections open in bursts here (the race opens 32 at once), unlike under steady serving: a connect
        # timeout of tens of ms then fails the run on a loaded machine. It never touches a timed operation.
        self.settings = dataclasses.replace(
            settings, redis_key_prefix=self.prefix,
            redis_connect_timeout=max(settings.redis_connect_timeout, BENCH_CONNECT_TIMEOUT),
        )
        self.stores = stores
        self.ops = ops
        self.concurrency = concurrency
        self.k = ingredients
        self.rounds = rounds
        self.seed = seed
        self.progress = progress
        self.rng = random.Random(seed)
        self.rec = _Recorder()
        self.notes: list[str] = []
        self.sql_ids: list[str] = []
        self.copy_failures = 0
        self.backends: Backends | None = None
        self.engine: AsyncEngine | None = None
        self.redis: RedisClient | None = None
        self.targets: dict[str, _Target] = {}
        self.redis_store: RedisSessionStore | None = None
        self.plan: PlanJsonSessions | None = None
        self.raw_sql: _RawSql | None = None
        self.versions: dict[str, str | None] = {"redis": None, "postgresql": None}
        self._last_ids: dict[str, list[str]] = {}

    # -- setup and teardown ----------------------------------------------------------

    async def _open(self) -> None:
        uses_sql = any(s in ("sql", "dual") for s in self.stores)
        uses_redis = any(s in ("redis", "dual") for s in self.stores)
        sql_store: SqlSessionStore | None = None
        self.backends = backends = Backends.open(self.settings)
        if uses_sql:
            self.engine = backends.engine
            sql_store = backends.sql
            async with self.engine.connect() as conn:
                if self.engine.dialect.name == "postgresql":
                    self.versions["postgresql"] = str(await conn.scalar(text("SHOW server_version")))
                else:
                    self.versions["sqlite"] = str(await conn.scalar(text("SELECT sqlite_version()")))
            if self.engine.dialect.name == "postgresql":
                self.raw_sql = _RawSql(self.settings.database_url, self.settings.db_pool_size,
                                       self.settings.session_ttl_seconds, self.settings.max_ingredients)
                await self.raw_sql.open()
            else:
                self.notes.append("SQL is SQLite: the honest comparison is with PostgreSQL; no raw SQL round trip")
        if uses_redis:
            # The redis phase's store: every write also appends its backup-stream entry.
            self.redis_store = backends.redis(backup_stream=True)
            self.redis = self.redis_store.client
            info = await self.redis.info("server")
            self.versions["redis"] = str(info.get("redis_version"))
            self.plan = PlanJsonSessions(self.redis, self.prefix, self.settings.session_ttl_seconds)
        for name in self.stores:
            if name == "sql":
                assert sql_store is not None
                self.targets["sql"] = _StoreTarget(sql_store)
            elif name == "redis":
                assert self.redis_store is not None
                self.targets["redis"] = _StoreTarget(self.redis_store)
            else:
                assert sql_store is not None and self.redis is not None
                # The same client as the redis target: the dual figures then pay no extra connections.
                cache = RedisSessionStore(self.redis, self.settings, owns_client=False)
                self.targets["dual"] = _StoreTarget(
                    DualSessionStore(
                        sql_store, cache, read_from_cache=True, breaker=CircuitBreaker(),
                        on_copy_failed=self._copy_failed,
                    )
                )
        if self.plan is not None:
            self.targets[PLAN] = _PlanTarget(self.plan)

    async def _copy_failed(self, _session_id: str, _reason: str) -> None:
        # Counted only: the bench must not flag a live deployment's Redis as untrusted.
        self.copy_failures += 1

    async def _cleanup(self) -> dict[str, int]:
        removed = {"sql_rows": 0, "redis_keys": 0}
        if self.engine is not None:
            async with self.engine.begin() as conn:
                for i in range(0, len(self.sql_ids), 500):
                    chunk = self.sql_ids[i : i + 500]
                    result = await conn.execute(delete(fridge_sessions).where(fridge_sessions.c.session_id.in_(chunk)))
                    removed["sql_rows"] += result.rowcount
        if self.raw_sql is not None:
            await self.raw_sql.close()
        if self.redis is not None:
            batch: list[bytes] = []
            async for key in scan_keys(self.redis, f"{self.prefix}:*"):
                batch.append(key)
                if len(batch) >= 500:
                    removed["redis_keys"] += int(await self.redis.delete(*batch))
                    batch = []
            if batch:
                removed["redis_keys"] += int(await self.redis.delete(*batch))
        if self.backends is not None:
            await self.backends.close()
        return removed

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> SessionsBenchResult:
        try:
            await self._open()
            self.progress("warm-up (connections, scripts, prepared statements)")
            await self._round(-1, min(20, max(1, self.ops // self.rounds)))
            self.rec.reset()
            base, extra = divmod(self.ops, self.rounds)
            for r in range(self.rounds):
                await self._round(r, base + (1 if r < extra else 0))
            memory = await self._memory()
            self.progress("concurrent-add check")
            race = await self._race()
        finally:
            cleanup = await self._cleanup()
        if self.copy_failures:
            self.notes.append(f"dual: {self.copy_failures} Redis copies failed after the SQL write (counted only)")
        if "redis" in self.targets:
            self.notes.append("redis = the redis-phase store: each write also appends its backup-stream entry")
        return self._result(memory, race, cleanup)

    def _names(self, n: int) -> list[list[str]]:
        """For each of ``n`` sessions: K names to fill it with, then one more to add and remove."""
        return [self.rng.sample(_POOL, self.k + 1) for _ in range(n)]

    async def _round(self, r: int, n: int) -> None:
        order = [name for name in self.targets]
        if r >= 0:
            shift = r % len(order)
            order = order[shift:] + order[:shift]
        names = self._names(n)
        label = "warm-up" if r < 0 else f"round {r + 1}/{self.rounds}"
        c = self.concurrency
        ids: dict[str, list[str]] = {}
        self.progress(f"{label}: create ×{n} per store")
        for t in order:
            created = await self.rec.run(t, "create", [None] * n, c, partial(_create, self.targets[t]))
            ids[t] = [x for x in created if isinstance(x, str)]
            if t in ("sql", "dual"):
                self.sql_ids.extend(ids[t])
        for t in order:  # untimed: every store's sessions now hold the same K names
            pairs = list(zip(ids[t], names, strict=False))
            await self.rec.run(t, "fill", pairs, c, partial(_fill, self.targets[t], self.k))
        self.progress(f"{label}: get, add, remove ×{n} per store")
        for t in order:
            await self.rec.run(t, "get", ids[t], c, self.targets[t].get)
            await self._raw_gets(t, ids[t])
        for t in order:
            pairs = list(zip(ids[t], names, strict=False))
            await self.rec.run(t, "add", pairs, c, partial(_add_last, self.targets[t]))
            if t == "sql" and self.raw_sql is not None:
                await self.rec.run(RAW_SQL, "add", pairs, c, self.raw_sql.add)
        for t in order:
            pairs = list(zip(ids[t], names, strict=False))
            await self.rec.run(t, "remove", pairs, c, partial(_remove_last, self.targets[t]))
        self._last_ids = ids

    async def _raw_gets(self, target: str, ids: list[str]) -> None:
        """The bare client call under this store's get, right after it, on the same sessions."""
        c = self.concurrency
        if target == "redis" and self.redis is not None and self.redis_store is not None:
            keys = [self.redis_store.keys.session(i) for i in ids]
            client = self.redis
            await self.rec.run(RAW_REDIS, "get", keys, c, lambda k: client.hgetall(k))
        elif target == "sql" and self.raw_sql is not None:
            await self.rec.run(RAW_SQL, "get", ids, c, self.raw_sql.get)

    async def _memory(self) -> MemoryUsage | None:
        if self.redis is None or self.redis_store is None or self.plan is None:
            return None
        ours = [self.redis_store.keys.session(i) for i in self._last_ids.get("redis", [])[:50]]
        plan = [self.plan.key(i) for i in self._last_ids.get(PLAN, [])[:50]]
        if not ours or not plan:
            return None

        async def mean_usage(keys: list[str]) -> float:
            sizes = [await self.redis.memory_usage(k, samples=0) for k in keys]  # type: ignore[union-attr]
            return sum(int(s or 0) for s in sizes) / len(sizes)

        f2f_bytes, plan_bytes = await mean_usage(ours), await mean_usage(plan)
        return MemoryUsage(
            ingredients=self.k,
            sessions_sampled=min(len(ours), len(plan)),
            f2f_hash_bytes=f2f_bytes,
            plan_json_bytes=plan_bytes,
            f2f_over_plan=ratio(f2f_bytes, plan_bytes),
        )

    async def _race(self) -> RaceResult | None:
        adds = min(RACE_ADDS, self.settings.max_ingredients)
        names = [f"동시재료{i:02d}" for i in range(adds)]
        lost: dict[str, int] = {}
        for t, target in self.targets.items():
            session_id = await target.create()
            if t in ("sql", "dual"):
                self.sql_ids.append(session_id)

            async def read_names(target: _Target = target, session_id: str = session_id) -> list[str]:
                got = await target.get(session_id)
                if isinstance(got, dict):
                    return [item["name"] for item in got["ingredients"]]
                return [i.name for i in got.ingredients]  # type: ignore[attr-defined]

            lost[t] = await lost_concurrent_adds(
                lambda ns, target=target, session_id=session_id: target.add(session_id, ns), read_names, names
            )
        return RaceResult(adds=adds, lost=lost)

    # -- result ----------------------------------------------------------------------------

    def _result(
        self, memory: MemoryUsage | None, race: RaceResult | None, cleanup: dict[str, int]
    ) -> SessionsBenchResult:
        results: dict[str, dict[str, LatencyStats]] = {}
        for t in self.targets:
            results[t] = {op: self.rec.stats(t, op) for op in OPS}
        for raw in (RAW_REDIS, RAW_SQL):
            measured = [op for op in OPS if (raw, op) in self.rec.samples]
            if measured:
                results[raw] = {op: self.rec.stats(raw, op) for op in measured}
        ratios: list[OpRatio] = []
        if "sql" in results and "redis" in results:
            ratios = [_op_ratio(op, results["sql"][op], results["redis"][op]) for op in OPS]
        plan_vs_redis: dict[str, float | None] = {}
        if PLAN in results and "redis" in results:
            plan_vs_redis = {op: ratio(results[PLAN][op].p50_ms, results["redis"][op].p50_ms) for op in OPS}
        raw_ratios = []
        for (store, op), target in RAW_TARGETS.items():
            raw = RAW_OF[store]
            if store in results and op in results.get(raw, {}):
                s, b = results[store][op].p50_ms, results[raw][op].p50_ms
                q = ratio(s, b)
                raw_ratios.append(RawRatio(store, op, raw, s, b, q, target, None if q is None else q <= target))
        versions = self.versions
        machine = describe_machine(
            redis=versions.get("redis"), postgresql=versions.get("postgresql"),
            sql_backend=None if self.engine is None else self.engine.dialect.name,
        )
        return SessionsBenchResult(
            machine=machine, seed=self.seed, ops_per_store=self.ops, concurrency=self.concurrency,
            ingredients=self.k, rounds=self.rounds, stores=list(self.targets), results=results, ratios=ratios,
            plan_vs_redis=plan_vs_redis, raw_ratios=raw_ratios, memory=memory, race=race,
            errors=dict(self.rec.first_error), notes=self.notes, cleanup=cleanup,
        )


async def _create(target: _Target, _item: object) -> str:
    return await target.create()


async def _fill(target: _Target, k: int, pair: tuple[str, list[str]]) -> object:
    return await target.add(pair[0], pair[1][:k])


async def _add_last(target: _Target, pair: tuple[str, list[str]]) -> object:
    return await target.add(pair[0], [pair[1][-1]])


async def _remove_last(target: _Target, pair: tuple[str, list[str]]) -> object:
    return await target.remove(pair[0], pair[1][-1])


def _op_ratio(op: str, sql: LatencyStats, redis: LatencyStats) -> OpRatio:
    speedup = ratio(sql.p50_ms, redis.p50_ms)
    throughput = ratio(redis.ops_per_second, sql.ops_per_second)
    if speedup is None:
        holds, verdict = None, "not measured"
    elif speedup >= CLAIMED_SPEEDUP:
        holds, verdict = True, f"holds: Redis answers {speedup:.1f}× faster (p50)"
    elif speedup >= 1:
        holds, verdict = False, f"does not hold: Redis answers {speedup:.1f}× faster (p50), not 10×"
    else:
        holds, verdict = False, f"does not hold: Redis is slower here ({1 / speedup:.1f}× the SQL p50)"
    return OpRatio(op, sql.p50_ms, redis.p50_ms, speedup, throughput, holds, verdict)
