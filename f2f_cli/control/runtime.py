"""The phase runtime of one ``f2f serve`` process.

It polls ``f2f_control`` (and listens for PostgreSQL NOTIFY where offered),
switches the store between requests when the phase or epoch changes, holds
writes during a cut-over, and acknowledges a new epoch in its heartbeat only
after the writes it started under the previous phase have finished, so that
``f2f migrate`` may rely on "every live instance has seen epoch N" (invariant 4).

It composes one class per duty: ``control.switch.StoreSwitch`` (the store switch and its drain),
``control.heartbeat.Heartbeat`` (the acknowledged phase and epoch) and
``control.redis_duties.RedisFaultDuties`` (the generation marker, failover and recovery through
Redis faults, docs/ARCHITECTURE.md "Redis faults"). What stays here is the poll, the phase it
adopts, the cut-over hold and the repair of an untrusted Redis copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli import tracing
from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.control.heartbeat import Heartbeat
from f2f_cli.control.phase import Control, Phase, RedisState
from f2f_cli.control.redis_duties import BacklogSource, FaultEvents, RedisFaultDuties
from f2f_cli.control.repair import repair_pass
from f2f_cli.control.specs import Authority, PhaseSpec, ReadFrom, spec_of
from f2f_cli.control.switch import StoreSwitch
from f2f_cli.domain.model import Mutation, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError, WritesHeld
from f2f_cli.redis.shards import Shard
from f2f_cli.stores.backed import BackedRedisStore
from f2f_cli.stores.breaker import CircuitBreaker
from f2f_cli.stores.dual import DualEvents, DualSessionStore
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from f2f_cli.stores.unavailable import UnavailableStore

__all__ = ["HOLD_TIMEOUT_SECONDS", "BacklogSource", "FaultEvents", "PhaseRuntime", "PhaseStore", "RedisStoreFactory"]

log = logging.getLogger("f2f.runtime")

# How long one write waits for a cut-over before it is answered 503 (f2f migrate reports it).
HOLD_TIMEOUT_SECONDS = 5.0

# Gives the Redis store of a phase; ``True`` asks for the one that appends to the backup stream.
# The factory's owner (``Backends``) opens and closes the stores: the runtime only borrows them.
RedisStoreFactory = Callable[[bool], SessionStore]

NO_REDIS = UnavailableStore("redis", "this phase needs Redis but F2F_REDIS_URL is not set")


class PhaseRuntime:
    def __init__(
        self,
        engine: AsyncEngine,
        sql: SqlSessionStore,
        *,
        redis_factory: RedisStoreFactory | None,
        poll_seconds: float,
        instance_id: str,
        kind: str = "serve",
        hold_timeout: float = HOLD_TIMEOUT_SECONDS,
        drain_timeout: float = 10.0,
        failover_seconds: float = 5.0,
        backlog_source: BacklogSource | None = None,
        recovery_store: RedisSessionStore | None = None,
        shard_hold_seconds: float = 0.0,
    ) -> None:
        self.engine = engine
        self.sql = sql
        self.poll_seconds = poll_seconds
        self.instance_id = instance_id
        self.kind = kind
        self.hold_timeout = hold_timeout
        self.breaker = CircuitBreaker()
        self.dual_events = DualEvents()
        self.phase = Phase.POSTGRES
        self.epoch = 0
        self.redis_trusted = True
        self.redis_state = RedisState.OK
        self.last_poll_ok: datetime | None = None
        self._redis_factory = redis_factory
        self._cache: SessionStore | None = None
        self._backup: SessionStore | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._repairing = False
        self._refresh_lock = asyncio.Lock()
        self.switch = StoreSwitch(sql, drain_timeout=drain_timeout)
        self.redis = RedisFaultDuties(
            engine, sql, instance_id=instance_id, poll_seconds=poll_seconds, failover_seconds=failover_seconds,
            shard_hold_seconds=shard_hold_seconds, backlog_source=backlog_source, recovery_store=recovery_store,
            marker_store=self._marker_store, spec=lambda: self.spec, reread_control=self._reread_control,
            wake=self._wake.set,
        )
        self.heartbeat = Heartbeat(engine, instance_id, kind, redis_contact=self.redis.contact_at)
        self.facade = PhaseStore(self)

    # -- what the duties hold, under the names callers (metrics, tests) read -----------------

    @property
    def drain_timeout(self) -> float:
        return self.switch.drain_timeout

    @property
    def started_at(self) -> datetime:
        return self.heartbeat.started_at

    @property
    def acknowledged_epoch(self) -> int:
        return self.heartbeat.acknowledged_epoch

    @property
    def acknowledged_phase(self) -> Phase:
        return self.heartbeat.acknowledged_phase

    @property
    def redis_generation(self) -> str | None:
        """The fleet's Redis generation marker (not the store switch's ``switch.switch_number``)."""
        return self.redis.redis_generation

    @property
    def fault_events(self) -> FaultEvents:
        return self.redis.fault_events

    @property
    def shards(self) -> list[Shard]:
        return self.redis.shards

    @property
    def last_backlog(self) -> int | None:
        return self.redis.last_backlog

    @property
    def backlog_peak(self) -> int | None:
        return self.redis.backlog_peak

    @property
    def restore_progress(self) -> tuple[int, int] | None:
        return self.redis.restore_progress

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Read the phase once (so the first request is served right), then poll in the background."""
        try:
            await self.refresh()
        except F2FError as exc:
            log.warning("cannot read the phase yet (%s); will retry every %.1fs", exc.message, self.poll_seconds)
        self._tasks.append(asyncio.create_task(tracing.untraced(self._poll_loop()), name="f2f-phase-poll"))
        if self.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(tracing.untraced(self._listen_loop()), name="f2f-phase-listen"))

    async def stop(self) -> None:
        if self.redis.recovery is not None:
            self._tasks.append(self.redis.recovery)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(F2FError):
            await control.remove_instance(self.engine, self.instance_id)

    # -- the current store -------------------------------------------------------

    def store(self) -> SessionStore:
        return self.switch.store

    def cache(self) -> SessionStore:
        if self._cache is None:
            self._cache = self._redis_factory(False) if self._redis_factory else NO_REDIS
        return self._cache

    def backup_store(self) -> SessionStore:
        if self._backup is None:
            self._backup = self._redis_factory(True) if self._redis_factory else NO_REDIS
        return self._backup

    def _marker_store(self) -> RedisSessionStore | None:
        store = self.cache()
        return store if isinstance(store, RedisSessionStore) else None

    @property
    def spec(self) -> PhaseSpec:
        """The spec this instance serves: its phase, in the fleet's current Redis state."""
        return spec_of(self.phase, self.redis_state)

    def _store_for(self, p: Phase, state: RedisState) -> SessionStore:
        spec = spec_of(p, state)
        if spec.authority is Authority.REDIS:
            backup = self.backup_store()
            if not isinstance(backup, RedisSessionStore):
                return backup
            return BackedRedisStore(backup, self.sql, self.redis, reads_sql_on_error=spec.reads_sql_on_redis_error)
        if not spec.copies_to_redis:
            return self.sql
        return DualSessionStore(
            self.sql,
            self.cache(),
            read_from_cache=spec.reads is not ReadFrom.SQL,
            breaker=self.breaker,
            on_copy_failed=self._copy_failed,
            cache_trusted=lambda: self.redis_trusted,
            events=self.dual_events,
        )

    async def _copy_failed(self, session_id: str, reason: str) -> None:
        # Before the response is sent: this instance stops trusting Redis at once,
        # the others at their next poll (or NOTIFY).
        self.redis_trusted = False
        await control.mark_redis_untrusted(self.engine, session_id, reason)

    # -- phase changes -------------------------------------------------------------

    async def refresh(self) -> None:
        async with self._refresh_lock:
            state = await control.get_control(self.engine)
            if state.hold_lapsed(utcnow()):
                state = await self._end_lapsed_cutover(state)
            self.last_poll_ok = utcnow()
            self._adopt(state)
            if state.epoch != self.epoch:
                await self._switch(state.phase, state.epoch)
            else:
                await self.heartbeat.beat()
        spec = self.spec
        await self.redis.poll_duties(spec, state)
        if not state.redis_trusted and spec.repairs_redis and self.breaker.allow():
            await self._repair()

    def _adopt(self, state: Control) -> None:
        """Take the fleet's Redis fields; a new Redis state changes the store at once (same phase, same
        authority: no writes need draining)."""
        self.redis_trusted = state.redis_trusted
        self.redis.redis_generation = state.redis_generation
        if state.redis_state is not self.redis_state:
            log.warning("Redis state %s (phase %s)", state.redis_state, state.phase)
            self.redis_state = state.redis_state
            self.redis.fenced.clear()
            if state.epoch == self.epoch:
                self.switch.replace(self._store_for(self.phase, self.redis_state))
        if state.restore_total is not None:
            self.redis.restore_progress = (state.restore_done or 0, state.restore_total)

    async def _reread_control(self) -> None:
        self._adopt(await control.get_control(self.engine))

    async def _end_lapsed_cutover(self, state: control.Control) -> control.Control:
        """The migrator stopped renewing its cut-over (killed, lost pod): return the fleet to where it came from.

        Writes stay held until the return has committed, so no write runs under an authority the
        migrator might still be opening; of the instances that see the lapse, one update wins.
        """
        returned = await control.return_lapsed_cutover(self.engine, state.epoch, actor=f"{self.instance_id} (lapse)")
        if returned is not None:
            log.warning("cut-over by %s lapsed (deadline %s): fleet returned to %s (epoch %d)",
                        state.changed_by, state.hold_deadline, returned.phase, returned.epoch)
            return returned
        return await control.get_control(self.engine)

    async def _switch(self, new_phase: Phase, epoch: int) -> None:
        store = self._store_for(new_phase, self.redis_state)
        # The phase is set before the switch wakes held writes: they re-read it to see the hold is over.
        self.phase, self.epoch = new_phase, epoch
        log.info("phase %s (epoch %d)", new_phase, epoch)
        await self.switch.switch_to(store)
        await self.heartbeat.acknowledge(new_phase, epoch)

    async def _repair(self) -> None:
        if self._repairing:
            return
        self._repairing = True
        try:
            report = await repair_pass(self.engine, self.sql, self.cache())
            self.breaker.success()
            if report.trusted:
                self.redis_trusted = True
                log.info("repair pass copied %d sessions; Redis trusted again", report.copied)
        except Exception as exc:
            self.breaker.failure()
            reason = exc.message if isinstance(exc, F2FError) else type(exc).__name__
            log.info("repair pass postponed: %s", reason)
        finally:
            self._repairing = False

    async def _poll_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.refresh()
            except F2FError as exc:
                log.warning("phase poll failed: %s", exc.message)
            except Exception:
                log.exception("phase poll failed")

    async def _listen_loop(self) -> None:
        """PostgreSQL LISTEN: a phase change wakes the poller at once. Polling still covers failures."""
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute("LISTEN f2f_control")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("LISTEN connection lost: %s", exc)
            await asyncio.sleep(max(self.poll_seconds, 1.0))

    # -- writes --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def write_slot(self, session_id: str | None = None) -> AsyncIterator[SessionStore]:
        """The store to write to, after any cut-over hold; counted so a switch can wait for it.

        After a failover the first write to a session is fenced first (``faults.fence``)."""
        deadline = asyncio.get_running_loop().time() + self.hold_timeout
        while spec_of(self.phase).writes_held:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise WritesHeld("writes are held for a phase cut-over; retry shortly")
            self._wake.set()  # poll now rather than at the next tick
            await self.switch.wait_changed(min(remaining, 0.05))
        if session_id is not None:
            await self.redis.fence(session_id)
        async with self.switch.slot() as store:
            yield store


class PhaseStore:
    """The ``SessionStore`` the API uses: each call goes to the store of the current phase."""

    backend = "phase"

    def __init__(self, runtime: PhaseRuntime) -> None:
        self._rt = runtime

    async def get(self, session_id: str) -> Session:
        return await self._rt.store().get(session_id)

    async def count(self) -> int:
        return await self._rt.store().count()

    def iter_sessions(self, batch_size: int = 500) -> AsyncIterator[Session]:
        return self._rt.store().iter_sessions(batch_size)

    async def create(self) -> Session:
        async with self._rt.write_slot() as store:
            return await store.create()

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> Mutation:
        async with self._rt.write_slot(session_id) as store:
            return await store.add_ingredients(session_id, names)

    async def remove_ingredient(self, session_id: str, name: str) -> Mutation:
        async with self._rt.write_slot(session_id) as store:
            return await store.remove_ingredient(session_id, name)

    async def clear(self, session_id: str) -> Mutation:
        async with self._rt.write_slot(session_id) as store:
            return await store.clear(session_id)

    async def touch(self, session_id: str) -> Session:
        async with self._rt.write_slot(session_id) as store:
            return await store.touch(session_id)

    async def delete(self, session_id: str) -> None:
        async with self._rt.write_slot(session_id) as store:
            await store.delete(session_id)

    async def apply_copy(self, copy: Session) -> bool:
        async with self._rt.write_slot() as store:
            return await store.apply_copy(copy)

    async def read_copy(self, session_id: str) -> Session | None:
        return await self._rt.store().read_copy(session_id)

    async def ping(self) -> None:
        await self._rt.store().ping()

    async def close(self) -> None:
        await self._rt.stop()
