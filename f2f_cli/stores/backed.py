"""The ``redis`` phase store: Redis is the authority, the SQL backup answers when Redis cannot.

A plain ``RedisSessionStore`` (with its backup stream) does the work; this wrapper only acts on
the two faults of DESIGN.md "Redis faults in the redis phase":

- Redis unreachable: a read is answered from the SQL backup at once (stale by at most the backup
  lag); a write still fails (503) until the fleet fails over, because only one store may assign
  versions.
- One Cluster shard unreachable while the rest of Redis answers (its primary died and the Cluster has
  not promoted a replica yet, or the shard is lost): reads as above; a write to one of its sessions is
  held, retried every ``HOLD_STEP_SECONDS`` for at most ``FaultHooks.shard_hold_seconds()`` (below the
  clients' request deadline), while the Cluster client refreshes its slot map; the write lands on the
  promoted replica, or is answered 503 when the hold runs out. Only Redis assigns the version either way.
- Redis lost data: a miss is checked against the generation marker (``FaultHooks.explain_miss``,
  rate-limited by the runtime so a miss costs at most one more round trip). While the fleet is
  recovering, a read that misses is served from the backup and copied into Redis (version-guarded,
  with the session's own expiry), and a write to a session Redis lacks rehydrates it first, then
  runs in Redis with its backup-stream entry as usual.

The hit path is exactly the Redis store's: one round trip, nothing added.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from redis.exceptions import (
    ClusterDownError,
    MaxClientsReachedError,
    MaxConnectionsError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from f2f_cli.domain.model import Mutation, Session
from f2f_cli.errors import SessionNotFound, StoreUnavailable
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore

T = TypeVar("T")

# A held write is tried again this often; the Cluster client refreshes its slot map in between.
HOLD_STEP_SECONDS = 0.1
# What a node that is down (or a Cluster that is electing a primary for the slot) raises: worth holding
# a write for. A refused command, a full backup stream or an exhausted pool is not.
_NODE_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterDownError, TryAgainError, RedisClusterException,
              OSError)
_NOT_NODE_DOWN = (MaxConnectionsError, MaxClientsReachedError)


def node_down(exc: StoreUnavailable) -> bool:
    """Whether a Redis call failed because its node (or its slot's primary) is down."""
    cause = exc.__cause__
    return isinstance(cause, _NODE_DOWN) and not isinstance(cause, _NOT_NODE_DOWN)


class FaultHooks(Protocol):
    """What the store asks of the runtime (``f2f_cli.control.runtime``)."""

    def rehydrating(self) -> bool:
        """True while the fleet is recovering: misses are served from the backup."""

    async def explain_miss(self) -> bool:
        """Whether Redis lost data (checks the marker at most once per interval)."""

    def redis_reached(self) -> None: ...

    def redis_failed(self) -> None: ...

    def rehydrated(self) -> None: ...

    def shard_hold_seconds(self) -> float:
        """How long a write to a shard that is down may be held: 0 unless Redis is a Cluster whose other
        shards answer (a whole-Redis outage is the fleet-wide failover's, and holding would only delay
        its 503s)."""

    def write_held(self, seconds: float, ok: bool) -> None:
        """A write was held ``seconds`` for a shard; ``ok`` when it landed."""


class BackedRedisStore:
    backend = "redis"

    def __init__(self, redis: RedisSessionStore, sql: SqlSessionStore, hooks: FaultHooks, *,
                 reads_sql_on_error: bool) -> None:
        self.redis = redis
        self.sql = sql
        self.hooks = hooks
        self.reads_sql_on_error = reads_sql_on_error

    async def _redis(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis call and tell the runtime whether Redis answered (its failover vote)."""
        try:
            result = await call()
        except SessionNotFound:
            self.hooks.redis_reached()
            raise
        except StoreUnavailable:
            self.hooks.redis_failed()
            raise
        self.hooks.redis_reached()
        return result

    async def _lost(self) -> bool:
        return self.hooks.rehydrating() or await self.hooks.explain_miss()

    async def _rehydrate(self, session_id: str) -> Session | None:
        """Copy the backup's state of ``session_id`` into Redis; None when the backup has no live copy."""
        copy = await self.sql.read_copy(session_id)
        if copy is None or copy.deleted:
            return None
        if await self._redis(lambda: self.redis.apply_copy(copy)):
            self.hooks.rehydrated()
        return copy

    # -- reads ---------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        # ``_redis`` written out: this is the request path's most frequent call, and the hit path should
        # cost what the Redis store's does.
        try:
            session = await self.redis.get(session_id)
        except SessionNotFound:
            self.hooks.redis_reached()
            if not await self._lost():
                raise
        except StoreUnavailable:
            self.hooks.redis_failed()
            if not self.reads_sql_on_error:
                raise
            return await self.sql.get(session_id)
        else:
            self.hooks.redis_reached()
            return session
        copy = await self.sql.read_copy(session_id)
        if copy is None or copy.deleted:
            raise SessionNotFound(f"session {session_id} does not exist or has expired")
        try:
            if await self._redis(lambda: self.redis.apply_copy(copy)):
                self.hooks.rehydrated()
            # A write may have landed on the rehydrated copy meanwhile: answer Redis's current state.
            return await self._redis(lambda: self.redis.get(session_id))
        except SessionNotFound:
            return copy
        except StoreUnavailable:
            if not self.reads_sql_on_error:
                raise
            return copy

    async def read_copy(self, session_id: str) -> Session | None:
        return await self._redis(lambda: self.redis.read_copy(session_id))

    async def count(self) -> int:
        return await self.redis.count()

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        return self.redis.iter_sessions(batch_size)

    # -- writes: Redis, after rehydrating a session it lost ----------------------

    async def _held(self, call: Callable[[], Awaitable[T]]) -> T:
        """``_redis``, holding the write while its shard is down (see the module's docstring).

        Every retried write is idempotent by content (a set of names, a clear, a touch) except the version
        number, which Redis assigns: one that failed mid-flight and had run costs at most one extra version."""
        try:
            return await self._redis(call)
        except StoreUnavailable as exc:
            hold = self.hooks.shard_hold_seconds()
            if hold <= 0 or not node_down(exc):
                raise
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(HOLD_STEP_SECONDS)
            try:
                result = await self._redis(call)
            except StoreUnavailable as exc:
                if not node_down(exc) or loop.time() - started + HOLD_STEP_SECONDS >= hold:
                    self.hooks.write_held(loop.time() - started, False)
                    raise
                continue
            self.hooks.write_held(loop.time() - started, True)
            return result

    async def _write(self, session_id: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._held(call)
        except SessionNotFound:
            if not await self._lost():
                raise
        if await self._rehydrate(session_id) is None:
            raise SessionNotFound(f"session {session_id} does not exist or has expired")
        return await self._held(call)

    async def create(self) -> Session:
        # A retry draws a new id, which most likely lands on a shard that answers.
        return await self._held(self.redis.create)

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        return await self._write(session_id, lambda: self.redis.add_ingredients(session_id, names))

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        return await self._write(session_id, lambda: self.redis.remove_ingredient(session_id, name))

    async def clear(self, session_id: str) -> Mutation:
        return await self._write(session_id, lambda: self.redis.clear(session_id))

    async def touch(self, session_id: str) -> Session:
        return await self._write(session_id, lambda: self.redis.touch(session_id))

    async def delete(self, session_id: str) -> None:
        await self._write(session_id, lambda: self.redis.delete(session_id))

    async def apply_copy(self, copy: Session) -> bool:
        return await self._redis(lambda: self.redis.apply_copy(copy))

    async def ping(self) -> None:
        await self._redis(self.redis.ping)

    async def close(self) -> None:
        """The Redis store and the SQL engine belong to the runtime's owner."""
