"""What the app needs at run time, created in the lifespan and reached via ``request.app.state.services``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.api.ratelimit import SessionCreationLimit, session_creation_limit
from f2f_cli.backends import Backends
from f2f_cli.backup.shard_lag import ShardedLag, backup_lag_by_shard
from f2f_cli.backup.worker import BackupLag
from f2f_cli.control.phase import Phase, new_instance_id
from f2f_cli.control.runtime import PhaseRuntime, RedisStoreFactory
from f2f_cli.control.specs import Authority, ReadFrom, spec_of
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError
from f2f_cli.recipes.recommender import IndexLoaded, Recommender
from f2f_cli.settings import Settings
from f2f_cli.stores.timed import StoreObserver, TimedStore

if TYPE_CHECKING:
    from f2f_cli.redis.client import RedisClient
    from f2f_cli.stores.redis import RedisSessionStore

log = logging.getLogger(__name__)


def redis_store_factory(backends: Backends) -> RedisStoreFactory | None:
    """The phase runtime's way to the Redis stores, or None without F2F_REDIS_URL."""
    if not backends.redis_configured:
        return None

    def redis_store(backup: bool) -> SessionStore:
        return backends.redis(backup_stream=backup)

    return redis_store


# The recipe index snapshot is several megabytes: the session timeouts (tens of ms) are too short for it.
RECIPE_SNAPSHOT_TIMEOUT = 5.0


def _recipe_redis(backends: Backends) -> RedisClient | None:
    """A client for the recommender's index snapshot, or None without F2F_REDIS_URL."""
    if not backends.redis_configured:
        return None
    return backends.redis_client(command_timeout=RECIPE_SNAPSHOT_TIMEOUT, max_connections=4)


# Restoring Redis after a fault copies thousands of sessions per call: request timeouts are far too short.
RECOVERY_TIMEOUT = 10.0


def _recovery_redis(backends: Backends) -> RedisSessionStore | None:
    """The Redis store the fleet's background recovery uses (its client closed with the backends), or None
    without F2F_REDIS_URL."""
    if not backends.redis_configured:
        return None
    from f2f_cli.stores.redis import RedisSessionStore

    settings = backends.settings
    client = backends.redis_client(command_timeout=max(RECOVERY_TIMEOUT, settings.redis_command_timeout),
                                   max_connections=4)
    return RedisSessionStore(client, settings, owns_client=False)


class Services:
    """The engine, the stores and the phase runtime of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        store_observer: StoreObserver | None = None,
        on_index_loaded: IndexLoaded | None = None,
    ) -> None:
        self.settings = settings
        self.backends = Backends.open(settings)
        self.engine: AsyncEngine = self.backends.engine
        self.sql_store = self.backends.sql
        self.recipe_redis = _recipe_redis(self.backends)
        self.recovery_redis = _recovery_redis(self.backends)
        self.recommender = Recommender(
            self.engine,
            redis=self.recipe_redis,
            key_prefix=settings.redis_key_prefix,
            check_interval=settings.phase_poll_seconds,
            on_load=on_index_loaded,
        )
        self.runtime = PhaseRuntime(
            self.engine,
            self.sql_store,
            redis_factory=redis_store_factory(self.backends),
            poll_seconds=settings.phase_poll_seconds,
            instance_id=new_instance_id("serve"),
            failover_seconds=settings.redis_failover_seconds,
            shard_hold_seconds=settings.redis_shard_hold_seconds,
            backlog_source=self._backlog_total,
            recovery_store=self.recovery_redis,
        )
        self._api_store: SessionStore = self.runtime.facade
        if store_observer is not None:
            self._api_store = TimedStore(self.runtime.facade, store_observer, lambda: self.runtime.store().backend)
        shared_limit = self.backends.redis_configured and settings.sessions_per_minute > 0
        limit_redis = self.backends.redis_client() if shared_limit else None
        self.session_limit: SessionCreationLimit | None = session_creation_limit(settings, limit_redis)
        self._warned_phase: Phase | None = None

    @property
    def phase(self) -> str:
        return self.runtime.phase.value

    def store(self) -> SessionStore:
        """The store that serves requests in the current phase (switches between requests)."""
        return self._api_store

    async def start(self) -> None:
        await self.sql_store.open()  # the psycopg pool of the request path starts connecting now
        await self.runtime.start()
        self.redis_missing()  # the phase is known now: a pod without its Redis secret says so at once

    def redis_missing(self) -> str | None:
        """Why this instance is degraded when the phase uses Redis and F2F_REDIS_URL is not set, else None.

        Logged as a WARNING once per phase. Readiness stays 200 ("degraded"): every pod of a Deployment has
        the same environment, so failing readiness would take the whole API down for a copy the phase can
        do without (in dual, reads and writes are served from SQL)."""
        spec = self.runtime.spec
        uses_redis = spec.needs_redis or spec.copies_to_redis or spec.backup_stream or spec.reads is not ReadFrom.SQL
        if self.backends.redis_configured or not uses_redis:
            return None
        reason = (f"phase {spec.phase} uses Redis but F2F_REDIS_URL is not set: "
                  + ("sessions are served from the SQL database only and Redis is not kept up to date"
                     if spec.authority is not Authority.REDIS else "writes fail until it is set"))
        if self._warned_phase != spec.phase:
            self._warned_phase = spec.phase
            log.warning("%s (set F2F_REDIS_URL, e.g. from the chart's Redis Secret)", reason)
        return reason

    async def stop(self) -> None:
        await self.runtime.stop()
        if self.session_limit is not None:
            await self.session_limit.close()
        await self.backends.close()

    async def backup_lag(self) -> BackupLag | ShardedLag:
        """The backup streams' backlog (per shard too) in the phases that have one; nothing pending otherwise."""
        if not spec_of(self.runtime.phase).backup_stream:
            return BackupLag(pending=0, undelivered=0, oldest_age_ms=None, streams=0)
        store = self.backends.redis(backup_stream=True)
        return await backup_lag_by_shard(store.client, store.keys)

    async def _backlog_total(self) -> int:
        """Backup-stream entries not yet in SQL: the runtime's estimate of what a Redis fault would lose."""
        return (await self.backup_lag()).total

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Check exactly the stores the current phase needs: ready or not, and 'ok' or the reason per store.

        In the redis phase either store suffices: without Redis, reads come from the SQL backup and the
        fleet fails over; without SQL, requests do not need it (the backup lag grows)."""
        checks: dict[str, str] = {}
        spec = self.runtime.spec
        if spec.needs_sql or spec.ready_on_either:
            checks["sql"] = await _check(self.sql_store)
        if spec.needs_redis:
            checks["redis"] = await _check(self.runtime.backup_store())
        missing = self.redis_missing()
        if missing is not None:
            checks["redis"] = "not configured: F2F_REDIS_URL is not set"
        ok = [v == "ok" for k, v in checks.items() if not (missing and k == "redis")]
        return (any(ok) if spec.ready_on_either else all(ok)), checks


async def _check(store: SessionStore) -> str:
    try:
        await store.ping()
    except F2FError as exc:
        return exc.message
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"
