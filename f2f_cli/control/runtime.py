"""The phase runtime of one ``f2f serve`` process.

It polls ``f2f_control`` (and listens for PostgreSQL NOTIFY where offered),
switches the store between requests when the phase or epoch changes, holds
writes during a cut-over, and acknowledges a new epoch in its heartbeat only
after the writes it started under the previous phase have finished, so that
``f2f migrate`` may rely on "every live instance has seen epoch N" (invariant 4).

It also carries the fleet through Redis faults (docs/ARCHITECTURE.md, "Redis faults"): on each
poll, as the phase spec asks, it checks or keeps the generation marker, votes on Redis
reachability and fails the fleet over when a majority cannot reach Redis, and starts the
background recovery (reconcile, restore) that one instance of the fleet runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli import tracing
from f2f_cli.clock import utcnow
from f2f_cli.control import faults
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Control, Phase, RedisState
from f2f_cli.control.recovery import recover
from f2f_cli.control.repair import repair_pass
from f2f_cli.control.specs import Authority, Marker, PhaseSpec, ReadFrom, spec_of
from f2f_cli.domain.model import Mutation, Session
from f2f_cli.domain.store import SessionStore
from f2f_cli.errors import F2FError, WritesHeld
from f2f_cli.redis.marker import markers_match, read_reachable_markers, write_markers
from f2f_cli.redis.shards import Shard, ShardState, shard_states
from f2f_cli.stores.backed import BackedRedisStore
from f2f_cli.stores.breaker import CircuitBreaker
from f2f_cli.stores.dual import DualEvents, DualSessionStore
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore
from f2f_cli.stores.unavailable import UnavailableStore

log = logging.getLogger("f2f.runtime")

# How long one write waits for a cut-over before it is answered 503 (f2f migrate reports it).
HOLD_TIMEOUT_SECONDS = 5.0

# Gives the Redis store of a phase; ``True`` asks for the one that appends to the backup stream.
# The factory's owner (``Backends``) opens and closes the stores: the runtime only borrows them.
RedisStoreFactory = Callable[[bool], SessionStore]

NO_REDIS = UnavailableStore("redis", "this phase needs Redis but F2F_REDIS_URL is not set")


# The backlog of the backup stream(s) (entries no worker has committed yet): the RPO estimate.
BacklogSource = Callable[[], Awaitable[int]]
# An unexplained miss checks the marker at most this often (so a miss costs at most one more round trip).
MISS_CHECK_SECONDS = 1.0
BACKLOG_SAMPLE_SECONDS = 5.0
BACKLOG_WINDOW_SECONDS = 10.0
# A Cluster none of whose shards answered for this long (or two polls) is down as a whole: no shard holds.
WHOLE_REDIS_SILENT_SECONDS = 2.0
SHARD_SAMPLE_SECONDS = 1.0


class FaultEvents:
    """Counters the metrics endpoint reads (``f2f_redis_data_loss_total`` and friends)."""

    def __init__(self) -> None:
        self.data_loss = 0
        self.failovers = 0
        self.rehydrated = 0
        self.restores = 0
        # Writes held for a Cluster shard that was down: landed, answered 503 when the hold ran out.
        self.shard_holds_landed = 0
        self.shard_holds_failed = 0


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
        self.drain_timeout = drain_timeout
        self.breaker = CircuitBreaker()
        self.dual_events = DualEvents()
        self.started_at = utcnow()
        self._started_mono = time.monotonic()
        self.phase = Phase.POSTGRES
        self.epoch = 0
        # The epoch reported in heartbeats: raised only once the writes of earlier epochs are done.
        self.acknowledged_epoch = 0
        self.acknowledged_phase = Phase.POSTGRES
        self.redis_trusted = True
        self.redis_state = RedisState.OK
        self.generation: str | None = None
        self.failover_seconds = failover_seconds
        self.shard_hold = shard_hold_seconds
        self.fault_events = FaultEvents()
        self.last_backlog: int | None = None
        self.backlog_peak: int | None = None
        self.restore_progress: tuple[int, int] | None = None
        # A Cluster's shards and their states, as of this instance's last poll in the redis phase.
        self.shards: list[Shard] = []
        self._backlog_source = backlog_source
        # The restore pipelines thousands of copies per call: it needs a longer command timeout than requests.
        self._recovery_store = recovery_store
        self._backlog_at = float("-inf")
        self._backlog_samples: list[tuple[float, int]] = []
        self._redis_ok_mono = self._started_mono  # start counts as contact: a new pod waits F before voting
        self._redis_ok_at: datetime | None = None
        self._miss_checked_at = float("-inf")
        self._miss_check: asyncio.Task[bool] | None = None
        self._fenced: set[str] = set()
        self._recovery: asyncio.Task[None] | None = None
        self.last_poll_ok: datetime | None = None
        self._redis_factory = redis_factory
        self._cache: SessionStore | None = None
        self._backup: SessionStore | None = None
        self._store: SessionStore = sql
        self._generation = 0
        self._inflight: dict[int, int] = {}
        self._drained = asyncio.Condition()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._repairing = False
        self._refresh_lock = asyncio.Lock()
        self.facade = PhaseStore(self)

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
        if self._recovery is not None:
            self._tasks.append(self._recovery)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(F2FError):
            await control.remove_instance(self.engine, self.instance_id)

    # -- the current store -------------------------------------------------------

    def store(self) -> SessionStore:
        return self._store

    def cache(self) -> SessionStore:
        if self._cache is None:
            self._cache = self._redis_factory(False) if self._redis_factory else NO_REDIS
        return self._cache

    def backup_store(self) -> SessionStore:
        if self._backup is None:
            self._backup = self._redis_factory(True) if self._redis_factory else NO_REDIS
        return self._backup

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
            return BackedRedisStore(backup, self.sql, self, reads_sql_on_error=spec.reads_sql_on_redis_error)
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
                await self._heartbeat()
        spec = self.spec
        await self._fault_duties(spec, state)
        if not state.redis_trusted and spec.repairs_redis and self.breaker.allow():
            await self._repair()

    def _adopt(self, state: Control) -> None:
        """Take the fleet's Redis fields; a new Redis state changes the store at once (same phase, same
        authority: no writes need draining)."""
        self.redis_trusted = state.redis_trusted
        self.generation = state.redis_generation
        if state.redis_state is not self.redis_state:
            log.warning("Redis state %s (phase %s)", state.redis_state, state.phase)
            self.redis_state = state.redis_state
            self._fenced.clear()
            if state.epoch == self.epoch:
                self._store = self._store_for(self.phase, self.redis_state)
        if state.restore_total is not None:
            self.restore_progress = (state.restore_done or 0, state.restore_total)

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
        previous = self._generation
        self._store = self._store_for(new_phase, self.redis_state)
        self.phase, self.epoch = new_phase, epoch
        self._generation += 1
        self._changed.set()
        self._changed = asyncio.Event()
        log.info("phase %s (epoch %d)", new_phase, epoch)
        await self._wait_drained(previous)
        self.acknowledged_phase, self.acknowledged_epoch = new_phase, epoch
        await self._heartbeat()

    async def _wait_drained(self, generation: int) -> None:
        async def drained() -> None:
            async with self._drained:
                await self._drained.wait_for(lambda: self._inflight.get(generation, 0) == 0)

        try:
            await asyncio.wait_for(drained(), self.drain_timeout)
        except TimeoutError:
            log.warning("writes of the previous phase still running after %.0fs", self.drain_timeout)

    async def _heartbeat(self) -> None:
        await control.heartbeat(
            self.engine,
            self.instance_id,
            self.kind,
            self.acknowledged_phase.value,
            self.acknowledged_epoch,
            self.started_at,
            redis_ok_at=self._contact_at(),
        )

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

    # -- Redis faults: the store's hooks (``stores.backed.FaultHooks``) ---------------------

    def rehydrating(self) -> bool:
        return self.spec.rehydrates

    def redis_reached(self) -> None:
        self._redis_ok_mono = time.monotonic()
        self._redis_ok_at = None  # computed lazily at the next heartbeat (no clock read per request)

    def redis_failed(self) -> None:
        """Nothing to do now: the vote looks at the last success, not at failures."""

    def rehydrated(self) -> None:
        self.fault_events.rehydrated += 1

    def shard_hold_seconds(self) -> float:
        """Hold writes for a down shard only on a Cluster that answered lately (a request to another shard or
        the poll's marker check): when all of Redis is gone the fleet-wide failover is the answer."""
        store = self._marker_store()
        if self.shard_hold <= 0 or store is None or not store.keys.cluster:
            return 0.0
        if time.monotonic() - self._redis_ok_mono > max(WHOLE_REDIS_SILENT_SECONDS, 2 * self.poll_seconds):
            return 0.0
        return self.shard_hold

    def write_held(self, seconds: float, ok: bool) -> None:
        if ok:
            self.fault_events.shard_holds_landed += 1
        else:
            self.fault_events.shard_holds_failed += 1

    async def explain_miss(self) -> bool:
        """A miss Redis cannot explain: did Redis lose data? Checks the marker at most once per
        ``MISS_CHECK_SECONDS``; concurrent misses share that one check."""
        if self.spec.marker is not Marker.CHECK:
            return self.spec.rehydrates
        if self._miss_check is None:
            if time.monotonic() - self._miss_checked_at < MISS_CHECK_SECONDS:
                return False
            self._miss_check = asyncio.ensure_future(self._check_marker(on_miss=True))
            self._miss_check.add_done_callback(self._miss_check_done)
        try:
            return await asyncio.shield(self._miss_check)
        except F2FError:
            return True  # the loss could not be recorded: still answer this miss from the backup

    def _miss_check_done(self, task: asyncio.Task[bool]) -> None:
        if self._miss_check is task:
            self._miss_check = None
        if not task.cancelled():
            task.exception()  # retrieved: a failed check is logged by its caller, never "never retrieved"

    # -- Redis faults: the poll's duties -------------------------------------------------

    def _marker_store(self) -> RedisSessionStore | None:
        store = self.cache()
        return store if isinstance(store, RedisSessionStore) else None

    async def _fault_duties(self, spec: PhaseSpec, state: Control) -> None:
        if spec.marker is Marker.CHECK:
            await self._sample_backlog()
            await self._sample_shards()
            await self._check_marker()
        elif spec.marker is Marker.KEEP:
            await self._keep_marker()
        if spec.fails_over:
            await self._maybe_fail_over(state)
        if spec.restores_redis or spec.reconciles:
            self._start_recovery()

    def _contact_at(self) -> datetime | None:
        if self._redis_ok_at is None and self._redis_ok_mono > self._started_mono:
            self._redis_ok_at = utcnow() - timedelta(seconds=time.monotonic() - self._redis_ok_mono)
        return self._redis_ok_at

    async def _sample_backlog(self) -> None:
        """Sample the backup-stream backlog (each poll; on a Cluster, whose streams are many, every
        ``BACKLOG_SAMPLE_SECONDS``). The RPO estimate is the last sample; the largest of the last
        ``BACKLOG_WINDOW_SECONDS`` goes beside it in the history as an upper bound (the backlog swings
        between polls)."""
        store = self._marker_store()
        every = BACKLOG_SAMPLE_SECONDS if store is not None and store.keys.cluster else 0.0
        now = time.monotonic()
        if self._backlog_source is None or now - self._backlog_at < every:
            return
        self._backlog_at = now
        try:
            sample = await self._backlog_source()
        except Exception as exc:  # Redis down: keep what was seen before it went
            log.debug("backlog sample failed: %s", exc)
            return
        self._backlog_samples = [(t, n) for t, n in self._backlog_samples if now - t <= BACKLOG_WINDOW_SECONDS]
        self._backlog_samples.append((now, sample))
        self.last_backlog = sample
        self.backlog_peak = max(n for _, n in self._backlog_samples)

    async def _sample_shards(self) -> None:
        """On a Cluster: each shard's state (``redis.shards``) for ``/metrics``; a change is logged."""
        store = self._marker_store()
        if store is None or not store.keys.cluster:
            return
        try:
            # Bounded: with every node hung it would ask each in turn, and the poll must still vote.
            async with asyncio.timeout(SHARD_SAMPLE_SECONDS):
                shards = await shard_states(store.client) or []
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            log.debug("shard states: Redis unreachable (%s)", exc)
            return
        before = {s.primary: s.state for s in self.shards}
        for shard in shards:
            if shard.state is not ShardState.OK and before.get(shard.primary) is not shard.state:
                log.warning("Redis Cluster shard %s (%d slots) is %s", shard.primary, shard.slots, shard.state)
        self.shards = shards

    async def _read_markers(self, store: RedisSessionStore) -> list[str | None] | None:
        try:
            found, unreachable = await read_reachable_markers(store.client, store.keys)
        except (RedisError, RedisClusterException, OSError) as exc:
            log.debug("marker check: Redis unreachable (%s)", exc)
            return None
        # One shard down is not Redis down: the fleet-wide failover votes only when no primary answers. The
        # markers of the shards that did not answer are checked once they do (promoted, or back empty).
        self.redis_reached()
        if unreachable:
            log.debug("marker check: %d Cluster shard(s) did not answer", unreachable)
        return found

    async def _check_marker(self, *, on_miss: bool = False) -> bool:
        """True when Redis lost data: the fleet is (now) recovering and misses are served from SQL.

        Only a check that reached Redis and found the marker in place holds off the next miss check for
        ``MISS_CHECK_SECONDS``: right after a restart the first check may still fail to connect."""
        store = self._marker_store()
        if store is None:
            return False
        found = await self._read_markers(store)
        if found is None:
            # Redis answered the miss but not the check (a restart's stale connections): unknown, so a miss
            # is answered from the backup, which holds the session if Redis lost it and nothing otherwise.
            return on_miss
        expected = self.generation
        if on_miss and expected is not None and markers_match(found, expected):
            self._miss_checked_at = time.monotonic()
        if expected is None:
            await self._establish(store, found)
            return False
        if markers_match(found, expected):
            return False
        if await faults.enter_recovering(self.engine, expected_generation=expected, found=found,
                                         rpo_estimate=self.last_backlog, rpo_upper=self.backlog_peak,
                                         actor=self.instance_id):
            self.fault_events.data_loss += 1
            log.warning("Redis lost data (marker %s expected, found %s); recovering from the SQL backup, "
                        "estimated RPO %s writes", expected, found, self.last_backlog)
        self._adopt(await control.get_control(self.engine))
        self._wake.set()
        return self.spec.rehydrates

    async def _keep_marker(self) -> None:
        """Redis is a copy of SQL here: write the marker where it is missing."""
        store = self._marker_store()
        if store is None:
            return
        found = await self._read_markers(store)
        if found is None:
            return
        if self.generation is None:
            await self._establish(store, found)
        elif not markers_match(found, self.generation):
            with contextlib.suppress(RedisError, OSError):
                await write_markers(store.client, store.keys, self.generation)

    async def _establish(self, store: RedisSessionStore, found: list[str | None]) -> None:
        """No generation recorded yet: adopt the one Redis carries everywhere, or create one."""
        value = found[0] if found and found[0] and markers_match(found, found[0]) else secrets.token_hex(8)
        try:
            await write_markers(store.client, store.keys, value, only_missing=True)
            recorded = await faults.establish_generation(self.engine, value)
            if recorded is not None:
                await write_markers(store.client, store.keys, recorded)
                self.generation = recorded
        except (RedisError, OSError) as exc:
            log.debug("could not write the generation marker: %s", exc)

    async def _maybe_fail_over(self, state: Control) -> None:
        seconds = self.failover_seconds
        if seconds <= 0 or time.monotonic() - self._redis_ok_mono < seconds:
            return
        votes = await faults.failover_votes(self.engine, window=control.live_window(self.poll_seconds),
                                            unreachable_for=timedelta(seconds=seconds))
        if not votes.majority:
            log.info("Redis unreachable from here for %.0fs, but only %d of %d live instances agree: no failover",
                     time.monotonic() - self._redis_ok_mono, votes.unreachable, votes.live)
            return
        after = await faults.auto_failover(self.engine, expect_epoch=state.epoch, rpo_estimate=self.last_backlog,
                                           rpo_upper=self.backlog_peak, votes=votes, actor=self.instance_id)
        if after is not None:
            self.fault_events.failovers += 1
            log.warning("Redis unreachable from %d of %d live instances for %.0fs: failed the fleet over to SQL "
                        "(phase dual, epoch %d), estimated RPO %s writes", votes.unreachable, votes.live,
                        seconds, after.epoch, self.last_backlog)
        self._wake.set()

    def _start_recovery(self) -> None:
        if self._recovery is not None and not self._recovery.done():
            return
        self._recovery = asyncio.create_task(self._recover(), name="f2f-redis-recovery")

    async def _recover(self) -> None:
        store = self._recovery_store or self._marker_store()
        if store is None:
            return
        try:
            report = await recover(self.engine, self.sql, store, actor=self.instance_id,
                                   settle_seconds=2 * self.poll_seconds, on_progress=self._progress)
        except F2FError as exc:
            log.info("Redis recovery postponed: %s", exc.message)
            return
        except Exception:
            log.exception("Redis recovery failed; retrying at the next poll")
            return
        if report is not None and report.restored:
            self.fault_events.restores += 1
        self._wake.set()

    def _progress(self, done: int, total: int) -> None:
        self.restore_progress = (done, total)

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        if session_id is not None and self.spec.fences_writes and session_id not in self._fenced:
            await faults.fence(self.engine, session_id)
            self._fenced.add(session_id)
        generation = self._generation
        self._inflight[generation] = self._inflight.get(generation, 0) + 1
        try:
            yield self._store
        finally:
            self._inflight[generation] -= 1
            if self._inflight[generation] == 0:
                del self._inflight[generation]
                async with self._drained:
                    self._drained.notify_all()


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
