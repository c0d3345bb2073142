"""What the app needs at run time, created in the lifespan and reached via ``request.app.state.services``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.api.ratelimit import SessionCreationLimit, session_creation_limit
from f2f_cli.backup.worker import BackupLag, backup_lag
from f2f_cli.control.phase import new_instance_id
from f2f_cli.control.runtime import PhaseRuntime, RedisStoreFactory
from f2f_cli.control.specs import spec_of
from f2f_cli.db.engine import create_engine_for
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError
from f2f_cli.recipes.recommender import IndexLoaded, Recommender
from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from f2f_cli.stores.timed import StoreObserver, TimedStore

if TYPE_CHECKING:
    from f2f_cli.redis.client import RedisClient


def redis_store_factory(settings: Settings) -> RedisStoreFactory | None:
    """How to build the Redis store for this process, or None without F2F_REDIS_URL."""
    if settings.redis_url is None:
        return None
    from f2f_cli.stores.redis_factory import make_redis_store

    def make(backup: bool) -> SessionStore:
        return make_redis_store(settings, backup_stream=backup)

    return make


# The recipe index snapshot is several megabytes: the session timeouts (tens of ms) are too short for it.
RECIPE_SNAPSHOT_TIMEOUT = 5.0


def _recipe_redis(settings: Settings) -> RedisClient | None:
    """A client for the recommender's index snapshot, or None without F2F_REDIS_URL."""
    if settings.redis_url is None:
        return None
    from f2f_cli.redis.client import create_redis

    return create_redis(settings, command_timeout=RECIPE_SNAPSHOT_TIMEOUT, max_connections=4)


# Restoring Redis after a fault copies thousands of sessions per call: request timeouts are far too short.
RECOVERY_TIMEOUT = 10.0


def _recovery_redis(settings: Settings) -> RedisSessionStore | None:
    """The Redis store the fleet's background recovery uses, or None without F2F_REDIS_URL."""
    if settings.redis_url is None:
        return None
    from f2f_cli.redis.client import create_redis

    client = create_redis(settings, command_timeout=max(RECOVERY_TIMEOUT, settings.redis_command_timeout),
                          max_connections=4)
    return RedisSessionStore(client, settings)


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
        self.engine: AsyncEngine = create_engine_for(settings)
        self.sql_store = SqlSessionStore(
            self.engine,
            ttl_seconds=settings.session_ttl_seconds,
            max_ingredients=settings.max_ingredients,
        )
        self.recipe_redis = _recipe_redis(settings)
        self.recovery_redis = _recovery_redis(settings)
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
            redis_factory=redis_store_factory(settings),
            poll_seconds=settings.phase_poll_seconds,
            instance_id=new_instance_id("serve"),
            failover_seconds=settings.redis_failover_seconds,
            backlog_source=self._backlog_total,
            recovery_store=self.recovery_redis,
        )
        self._api_store: SessionStore = self.runtime.facade
        if store_observer is not None:
            self._api_store = TimedStore(self.runtime.facade, store_observer, lambda: self.runtime.store().backend)
        self.session_limit: SessionCreationLimit | None = session_creation_limit(settings)

    @property
    def phase(self) -> str:
        return self.runtime.phase.value

    def store(self) -> SessionStore:
        """The store that serves requests in the current phase (switches between requests)."""
        return self._api_store

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()
        if self.session_limit is not None:
            await self.session_limit.close()
        if self.recipe_redis is not None:
            await self.recipe_redis.aclose()
        if self.recovery_redis is not None:
            await self.recovery_redis.close()
        await self.engine.dispose()

    async def backup_lag(self) -> BackupLag:
        """The backup stream's backlog in the phases that have one; nothing pending otherwise."""
        if not spec_of(self.runtime.phase).backup_stream:
            return BackupLag(pending=0, undelivered=0, oldest_age_ms=None, streams=0)
        store = self.runtime.backup_store()
        assert isinstance(store, RedisSessionStore)
        return await backup_lag(store.client, store.keys)

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
        ok = [v == "ok" for v in checks.values()]
        return (any(ok) if spec.ready_on_either else all(ok)), checks


async def _check(store: SessionStore) -> str:
    try:
        await store.ping()
    except F2FError as exc:
        return exc.message
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"
