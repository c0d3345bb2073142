"""Prometheus metrics of one API process (``GET /metrics``).

Every app gets its own registry, so several apps in one process (tests) never
clash. Under ``f2f serve --workers N`` the environment variable
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start: prometheus-client
then keeps every value in a per-process file there and a scrape of any worker
adds up counters and histograms of all of them (gauges say how in their
``multiprocess_mode``).

The core never imports Prometheus. Its state is read here: the phase runtime's
phase, epoch, trust flag, circuit breaker and dual-store counters are copied
into gauges and counters once a second by a sampler task and again at each
scrape; the costly gauges (session count, backup-stream lag) are refreshed at
most every ``F2F_METRICS_REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import multiprocess as prom_mp

from f2f_cli.control.phase import Phase, RedisState
from f2f_cli.redis.shards import ShardState
from f2f_cli.stores.breaker import BreakerState

if TYPE_CHECKING:
    from f2f_cli.api.services import Services
    from f2f_cli.control.runtime import PhaseRuntime
    from f2f_cli.recipes.index import RecipeIndex

log = logging.getLogger("f2f.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SAMPLE_SECONDS = 1.0
# With the cache on, scrapes are spaced at least this far apart per process, and none waits longer
# than SCRAPE_MAX_WAIT (past it: 429). A client looping on /metrics then gets ~10 answers a second,
# however many connections it opens, and costs next to nothing; Prometheus scrapes every 15-30 s.
SCRAPE_INTERVAL = 0.1
SCRAPE_MAX_WAIT = 1.0
SLOW_REFRESH_TIMEOUT = 5.0


class BackupLagLike(Protocol):
    """What the Redis backup-stream lag reader returns (``backup_worker.BackupLag``)."""

    @property
    def pending(self) -> int: ...

    @property
    def undelivered(self) -> int: ...

    @property
    def oldest_age_ms(self) -> int | None: ...


BackupLagSource = Callable[[], Awaitable[BackupLagLike]]


class Metrics:
    def __init__(
        self, *, refresh_seconds: float, multiprocess_dir: str | None = None, cache_seconds: float = 0.0
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.multiprocess_dir = multiprocess_dir
        self.cache_seconds = cache_seconds
        self._rendered = b""
        self._rendered_at = float("-inf")
        self._next_scrape = float("-inf")
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir is None:
            # Per-process figures only make sense when one process answers for itself. No
            # PlatformCollector: the Python version and build are a fingerprint, not an operating figure.
            ProcessCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "f2f_http_requests", "HTTP requests by route template and status.", ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "f2f_http_request_duration_seconds", "HTTP request latency by route template and status.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r,
        )
        self.store_seconds = Histogram(
            "f2f_store_operation_duration_seconds", "Session-store operation latency (backend of the phase).",
            ["backend", "operation", "outcome"], buckets=STORE_BUCKETS, registry=r,
        )
        self.dual_fallbacks = Counter(
            "f2f_dual_fallbacks", "Reads served from SQL because Redis failed (dual phase).", registry=r
        )
        self.dual_read_repairs = Counter(
            "f2f_dual_read_repairs", "Sessions copied to Redis after a Redis miss (dual phase).", registry=r
        )
        self.dual_copy_failures = Counter(
            "f2f_dual_copy_failures", "SQL writes whose Redis copy failed and went to the repair queue.", registry=r
        )
        self.breaker_opened = Counter(
            "f2f_redis_circuit_opened", "Times the Redis circuit breaker opened.", registry=r
        )
        # The automatic Redis -> PostgreSQL failover of the redis phase (DESIGN.md, "Redis faults") counts
        # here, on the instance that carried it out; the Helm chart's F2FRedisAutoFailover alert watches it.
        self.redis_failovers = Counter(
            "f2f_redis_failovers", "Automatic failovers from Redis to PostgreSQL authority this process carried out.",
            registry=r,
        )
        self.breaker_state = Gauge(
            "f2f_redis_circuit_state", "1 for the current state of the Redis circuit breaker.", ["state"],
            multiprocess_mode="livemax", registry=r,
        )
        self.phase = Gauge(
            "f2f_phase", "1 for the migration phase this process serves.", ["phase"],
            multiprocess_mode="livemax", registry=r,
        )
        self.epoch = Gauge("f2f_phase_epoch", "The phase epoch this process serves.",
                           multiprocess_mode="livemax", registry=r)
        self.redis_trusted = Gauge(
            "f2f_redis_trusted", "0 while Redis is flagged untrusted (reads go to SQL until repaired).",
            multiprocess_mode="livemin", registry=r,
        )
        # Redis faults in the redis phase (the chart's alerts use these names).
        self.redis_data_loss = Counter(
            "f2f_redis_data_loss", "Times this process found that Redis lost data (generation marker gone) "
            "and put the fleet into recovering.", registry=r,
        )
        self.sessions_rehydrated = Counter(
            "f2f_sessions_rehydrated", "Sessions copied from the SQL backup into Redis on a miss while recovering.",
            registry=r,
        )
        self.redis_restores = Counter(
            "f2f_redis_restores", "Full restores of Redis from the SQL backup this process completed.", registry=r,
        )
        self.redis_state = Gauge(
            "f2f_redis_state", "1 for the fleet's Redis state (ok, recovering, failed-over) as this process sees it.",
            ["state"], multiprocess_mode="livemax", registry=r,
        )
        # One series per Cluster shard (its primary) and state; the chart's F2FRedisShardDown alert watches it.
        self.redis_shard_state = Gauge(
            "f2f_redis_shard_state", "1 for the state (ok, failing-over, lost) of each Redis Cluster shard, "
            "named by its primary, as this process last saw it.", ["shard", "state"],
            multiprocess_mode="livemax", registry=r,
        )
        self.redis_shard_holds = Counter(
            "f2f_redis_shard_held_writes", "Writes held for a Redis Cluster shard whose primary was down, by "
            "outcome (landed after the promotion, or failed when the hold ran out).", ["outcome"], registry=r,
        )
        self.sessions = Gauge(
            "f2f_sessions", "Live sessions in the store of the current phase (cached).",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.backup_pending = Gauge(
            "f2f_backup_stream_pending", "Backup-stream entries delivered to a worker, not yet committed.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.backup_undelivered = Gauge(
            "f2f_backup_stream_undelivered", "Backup-stream entries no worker has read yet.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.backup_oldest_age = Gauge(
            "f2f_backup_stream_oldest_age_seconds", "Age of the oldest entry still in the backup stream.",
            multiprocess_mode="mostrecent", registry=r,
        )
        # Per shard (a Redis primary, ``host:port``; one Redis: ``redis``): as many labels as primaries.
        self.backup_shard_backlog = Gauge(
            "f2f_backup_shard_backlog", "Backup-stream entries not yet committed to SQL, per Redis shard (primary).",
            ["shard"], multiprocess_mode="mostrecent", registry=r,
        )
        self.backup_shard_oldest_age = Gauge(
            "f2f_backup_shard_oldest_age_seconds", "Age of the oldest backup entry still held, per Redis shard.",
            ["shard"], multiprocess_mode="mostrecent", registry=r,
        )
        self._backup_shards: set[str] = set()
        self.client_disconnects = Counter(
            "f2f_http_client_disconnects", "Requests the client abandoned before the answer (logged as 499).",
            ["method", "route"], registry=r,
        )
        self.refresh_errors = Counter(
            "f2f_metrics_refresh_errors", "Failures reading a cached gauge's source.", ["gauge"], registry=r
        )
        self.recommender_recipes = Gauge(
            "f2f_recommender_index_recipes", "Recipes in the recommender's in-memory index.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.recommender_ingredients = Gauge(
            "f2f_recommender_index_ingredients", "Ingredient columns in the recommender's index.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.recommender_entries = Gauge(
            "f2f_recommender_index_entries", "Non-zero recipe x ingredient cells in the index.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.recommender_build_seconds = Gauge(
            "f2f_recommender_index_build_seconds", "How long the last index load or build took.",
            multiprocess_mode="mostrecent", registry=r,
        )
        self.recommender_builds = Counter(
            "f2f_recommender_index_builds", "Index loads by source (sql, redis).", ["source"], registry=r
        )
        self.backup_lag_source: BackupLagSource | None = None
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._store_children: dict[tuple[str, str, str], Histogram] = {}
        self._seen: dict[str, int] = {}
        self._shards_seen: set[str] = set()
        self._slow_at = float("-inf")

    @classmethod
    def from_environment(cls, refresh_seconds: float, cache_seconds: float = 0.0) -> Metrics:
        """Multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` names a directory (set by ``f2f serve``)."""
        directory = os.environ.get(MULTIPROC_ENV) or None
        return cls(refresh_seconds=refresh_seconds, multiprocess_dir=directory, cache_seconds=cache_seconds)

    # -- hot path ------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # ``labels()`` takes a lock and builds a key on every call: keep the children per label set
        # (method and status are bounded, route is a template or "unmatched").
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            code = str(status)
            children = (self.requests.labels(method, route, code), self.request_seconds.labels(method, route, code))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_disconnect(self, method: str, route: str) -> None:
        self.client_disconnects.labels(method, route).inc()

    def observe_store(self, backend: str, operation: str, outcome: str, seconds: float) -> None:
        key = (backend, operation, outcome)
        child = self._store_children.get(key)
        if child is None:
            child = self._store_children[key] = self.store_seconds.labels(backend, operation, outcome)
        child.observe(seconds)

    # -- hooks for other parts -------------------------------------------------

    def set_backup_lag_source(self, source: BackupLagSource | None) -> None:
        """Where the backup-stream lag comes from (the Redis backup worker's reader); None: not exported."""
        self.backup_lag_source = source

    def recommender_index_loaded(self, index: RecipeIndex, seconds: float, source: str) -> None:
        """The recommender's ``on_load`` hook."""
        self.observe_recommender_index(
            recipes=index.size,
            ingredients=len(index.ingredient_names),
            entries=int(index.matrix.nnz),
            build_seconds=seconds,
            source=source,
        )

    def observe_recommender_index(
        self, *, recipes: int, ingredients: int, entries: int, build_seconds: float, source: str
    ) -> None:
        self.recommender_recipes.set(recipes)
        self.recommender_ingredients.set(ingredients)
        self.recommender_entries.set(entries)
        self.recommender_build_seconds.set(build_seconds)
        self.recommender_builds.labels(source).inc()

    # -- reading the core ------------------------------------------------------

    def sync_runtime(self, runtime: PhaseRuntime) -> None:
        """Copy the runtime's state into the metrics (cheap: no I/O)."""
        for p in Phase:
            self.phase.labels(p.value).set(1 if runtime.phase is p else 0)
        self.epoch.set(runtime.epoch)
        self.redis_trusted.set(1 if runtime.redis_trusted else 0)
        state = runtime.breaker.state
        for s in BreakerState:
            self.breaker_state.labels(s.value).set(1 if state is s else 0)
        events = runtime.dual_events
        self._advance(self.breaker_opened, "breaker_opened", runtime.breaker.opened_count)
        self._advance(self.dual_fallbacks, "fallbacks", events.fallbacks)
        self._advance(self.dual_read_repairs, "read_repairs", events.read_repairs)
        self._advance(self.dual_copy_failures, "copy_failures", events.copy_failures)
        faults = runtime.fault_events
        self._advance(self.redis_data_loss, "data_loss", faults.data_loss)
        self._advance(self.redis_failovers, "failovers", faults.failovers)
        self._advance(self.sessions_rehydrated, "rehydrated", faults.rehydrated)
        self._advance(self.redis_restores, "restores", faults.restores)
        for rs in RedisState:
            self.redis_state.labels(rs.value).set(1 if runtime.redis_state is rs else 0)
        self._advance(self.redis_shard_holds.labels("landed"), "holds_landed", faults.shard_holds_landed)
        self._advance(self.redis_shard_holds.labels("failed"), "holds_failed", faults.shard_holds_failed)
        current = {shard.primary: shard.state for shard in runtime.shards}
        # A primary replaced by its replica no longer serves slots: its series drop to 0 rather than vanish
        # (a multi-process gauge keeps its last value).
        for primary in self._shards_seen | set(current):
            for ss in ShardState:
                self.redis_shard_state.labels(primary, ss.value).set(1 if current.get(primary) is ss else 0)
        self._shards_seen |= set(current)

    def _advance(self, counter: Counter, key: str, total: int) -> None:
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        self._seen[key] = total

    async def refresh(self, services: Services, *, force: bool = False) -> None:
        """Sync the runtime, and the costly gauges when their cache is older than the refresh interval."""
        self.sync_runtime(services.runtime)
        now = time.monotonic()
        if not force and now - self._slow_at < self.refresh_seconds:
            return
        self._slow_at = now  # before awaiting: concurrent scrapes do not pile up on the store
        try:
            count = await asyncio.wait_for(services.store().count(), SLOW_REFRESH_TIMEOUT)
        except Exception as exc:
            self.refresh_errors.labels("sessions").inc()
            log.debug("session count for /metrics failed: %s", exc)
        else:
            self.sessions.set(count)
        if self.backup_lag_source is not None:
            try:
                lag = await asyncio.wait_for(self.backup_lag_source(), SLOW_REFRESH_TIMEOUT)
            except Exception as exc:
                self.refresh_errors.labels("backup_lag").inc()
                log.debug("backup lag for /metrics failed: %s", exc)
            else:
                self.backup_pending.set(lag.pending)
                self.backup_undelivered.set(lag.undelivered)
                self.backup_oldest_age.set((lag.oldest_age_ms or 0) / 1000)
                self._set_shards(getattr(lag, "shards", None) or {})

    def _set_shards(self, shards: Mapping[str, BackupLagLike]) -> None:
        """One sample per shard; a shard gone from the Cluster (its slots resharded away) is dropped."""
        for gone in self._backup_shards - set(shards):
            self.backup_shard_backlog.remove(gone)
            self.backup_shard_oldest_age.remove(gone)
        for name, part in shards.items():
            self.backup_shard_backlog.labels(name).set(part.pending + part.undelivered)
            self.backup_shard_oldest_age.labels(name).set((part.oldest_age_ms or 0) / 1000)
        self._backup_shards = set(shards)

    async def run_sampler(self, services: Services) -> None:
        """Keep this worker's copy of the runtime state fresh for scrapes answered by other workers."""
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            try:
                self.sync_runtime(services.runtime)
            except Exception:
                log.exception("metrics sampler failed")

    def scrape_slot(self) -> float | None:
        """Seconds this scrape should wait for its turn, or None when the queue is too long (429).

        Without the cache (``cache_seconds`` 0, tests and debugging) scrapes never wait.
        """
        if self.cache_seconds <= 0:
            return 0.0
        now = time.monotonic()
        slot = max(now, self._next_scrape)
        if slot - now > SCRAPE_MAX_WAIT:
            return None
        self._next_scrape = slot + SCRAPE_INTERVAL
        return slot - now

    def fresh_enough(self) -> bool:
        """Whether the last rendering may still be served (then a scrape costs no rendering and no refresh)."""
        return time.monotonic() - self._rendered_at < self.cache_seconds

    def exposition(self) -> bytes:
        """The text format of every metric (all workers' in multiprocess mode), at most ``cache_seconds`` old.

        Rendering costs ~10 ms for ~100 KB; a scrape loop on the API port must not be able to spend
        the event loop on it, so one rendering serves every scrape for ``cache_seconds``.
        """
        if self.fresh_enough():
            return self._rendered
        if self.multiprocess_dir is None:
            rendered = generate_latest(self.registry)
        else:
            registry = CollectorRegistry()
            prom_mp.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            rendered = generate_latest(registry)
        self._rendered, self._rendered_at = rendered, time.monotonic()
        return rendered

    def process_exiting(self) -> None:
        """Drop this process's live gauges from the shared directory (a worker shutting down)."""
        if self.multiprocess_dir is not None:
            with contextlib.suppress(OSError):
                prom_mp.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
