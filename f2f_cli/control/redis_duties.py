"""The Redis-fault duties of one ``f2f serve`` process (docs/ARCHITECTURE.md, "Redis faults").

On each poll, as the phase spec asks, it checks or keeps the generation marker, votes on Redis
reachability and fails the fleet over when a majority cannot reach Redis, and starts the background
recovery (reconcile, restore) that one instance of the fleet runs at a time. It is also the
``FaultHooks`` the Redis-authority store calls per request.

``redis_generation`` is the fleet's Redis generation marker (``f2f_control.redis_generation``), which
changes only when Redis lost data; it has nothing to do with the store switch's ``switch_number``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.control import faults
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Control
from f2f_cli.control.recovery import recover
from f2f_cli.control.specs import Marker, PhaseSpec
from f2f_cli.errors import F2FError
from f2f_cli.redis.marker import markers_match, read_reachable_markers, write_markers
from f2f_cli.redis.shards import Shard, ShardState, shard_states
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore

log = logging.getLogger("f2f.runtime")

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



class RedisFaultDuties:
    def __init__(
        self,
        engine: AsyncEngine,
        sql: SqlSessionStore,
        *,
        instance_id: str,
        poll_seconds: float,
        failover_seconds: float,
        shard_hold_seconds: float,
        backlog_source: BacklogSource | None,
        recovery_store: RedisSessionStore | None,
        marker_store: Callable[[], RedisSessionStore | None],
        spec: Callable[[], PhaseSpec],
        reread_control: Callable[[], Awaitable[None]],
        wake: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.sql = sql
        self.instance_id = instance_id
        self.poll_seconds = poll_seconds
        self.failover_seconds = failover_seconds
        self.shard_hold = shard_hold_seconds
        self.redis_generation: str | None = None
        self.fault_events = FaultEvents()
        self.last_backlog: int | None = None
        self.backlog_peak: int | None = None
        self.restore_progress: tuple[int, int] | None = None
        # A Cluster's shards and their states, as of this instance's last poll in the redis phase.
        self.shards: list[Shard] = []
        # Sessions fenced since the last Redis state change (``faults.fence``: once per session).
        self.fenced: set[str] = set()
        self._marker_store = marker_store
        self._spec = spec
        self._reread_control = reread_control
        self._wake = wake
        self._backlog_source = backlog_source
        # The restore pipelines thousands of copies per call: it needs a longer command timeout than requests.
        self.recovery_store = recovery_store
        self._started_mono = time.monotonic()
        self._backlog_at = float("-inf")
        self._backlog_samples: list[tuple[float, int]] = []
        self._redis_ok_mono = self._started_mono  # start counts as contact: a new pod waits F before voting
        self._redis_ok_at: datetime | None = None
        self._miss_checked_at = float("-inf")
        self._miss_check: asyncio.Task[bool] | None = None
        self.recovery: asyncio.Task[None] | None = None

    @property
    def spec(self) -> PhaseSpec:
        return self._spec()

    async def fence(self, session_id: str) -> None:
        """After a failover the first write to a session is fenced first (``faults.fence``)."""
        if self.spec.fences_writes and session_id not in self.fenced:
            await faults.fence(self.engine, session_id)
            self.fenced.add(session_id)

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


    async def poll_duties(self, spec: PhaseSpec, state: Control) -> None:
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

    def contact_at(self) -> datetime | None:
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
        expected = self.redis_generation
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
        await self._reread_control()
        self._wake()
        return self.spec.rehydrates

    async def _keep_marker(self) -> None:
        """Redis is a copy of SQL here: write the marker where it is missing."""
        store = self._marker_store()
        if store is None:
            return
        found = await self._read_markers(store)
        if found is None:
            return
        if self.redis_generation is None:
            await self._establish(store, found)
        elif not markers_match(found, self.redis_generation):
            with contextlib.suppress(RedisError, OSError):
                await write_markers(store.client, store.keys, self.redis_generation)

    async def _establish(self, store: RedisSessionStore, found: list[str | None]) -> None:
        """No generation recorded yet: adopt the one Redis carries everywhere, or create one."""
        value = found[0] if found and found[0] and markers_match(found, found[0]) else secrets.token_hex(8)
        try:
            await write_markers(store.client, store.keys, value, only_missing=True)
            recorded = await faults.establish_generation(self.engine, value)
            if recorded is not None:
                await write_markers(store.client, store.keys, recorded)
                self.redis_generation = recorded
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
        self._wake()

    def _start_recovery(self) -> None:
        if self.recovery is not None and not self.recovery.done():
            return
        self.recovery = asyncio.create_task(self._recover(), name="f2f-redis-recovery")

    async def _recover(self) -> None:
        store = self.recovery_store or self._marker_store()
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
        self._wake()

    def _progress(self, done: int, total: int) -> None:
        self.restore_progress = (done, total)

