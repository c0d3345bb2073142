"""The backup writer of the ``redis`` phase: drain the backup stream(s) into SQL.

Each ``f2f worker`` joins the consumer group ``f2f-backup`` on every backup
stream (one on standalone/Sentinel, one per hash slot on a Cluster, see
``redis_keys``) and loops:

1. every ``claim_interval``: XAUTOCLAIM entries another consumer left pending
   longer than ``claim_idle_ms`` (a worker that died mid-batch);
2. XREADGROUP a batch of new entries (BLOCK on a single stream; on a Cluster a
   read of each primary's node stream plus the few fallback slot streams the
   backup index names, see ``redis.node_streams``, each its own task on its own
   primary: a primary that is slow or failing over holds back no other's
   entries; then a short idle sleep when nothing came);
3. apply the batch to SQL in one transaction: coalesced to the newest copy per
   session, set-based and version-guarded (``backup.apply``). **While it
   commits, the next batch is already being read** (pipelined);
4. only after the commit: XACK + XDEL the entries in one script per stream, a
   task per stream that the loop does not wait for (the next batch's SQL runs
   meanwhile; an acknowledgement that fails is retried with the next batch's,
   and the ones in flight are waited for before the worker stops).

Because committed entries are deleted, a stream holds exactly the entries no
worker has committed yet: its length is the backlog (``backup_lag``). Several
workers share the work through the group; a crash between commit and ack only
replays copies SQL already holds, which the version guard turns into no-ops.

If Redis comes back empty (restart without persistence), reads answer
``NOGROUP``; the worker then recreates its group (and the stream) by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import signal
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError, ResponseError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli import tracing
from f2f_cli.backends import Backends
from f2f_cli.backup.apply import KnownCopies, PackedCopy, apply_packed
from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.errors import StoreUnavailable
from f2f_cli.heap import freeze_long_lived
from f2f_cli.redis.client import REDIS_FAILURES, RedisClient, is_cluster
from f2f_cli.redis.keys import BACKUP_GROUP, RedisKeys
from f2f_cli.redis.node_streams import NodeStreams
from f2f_cli.redis.scripts import ACK_DELETE, READ_GROUP
from f2f_cli.settings import Settings

log = logging.getLogger("f2f.worker")

Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields
SWEEP_SLICE = 512  # Cluster: slot streams whose length one index-repair step reads
# What the loop survives by backing off and retrying: Redis or SQL unreachable or refusing.
_WORKER_FAILURES: tuple[type[Exception], ...] = (*REDIS_FAILURES, SQLAlchemyError, StoreUnavailable)


@dataclass(frozen=True, slots=True)
class BackupLag:
    """What the backup stream(s) still hold: delivered-but-uncommitted and not yet delivered."""

    pending: int
    undelivered: int
    oldest_age_ms: int | None
    streams: int

    @property
    def total(self) -> int:
        return self.pending + self.undelivered


@dataclass
class WorkerStats:
    batches: int = 0
    entries: int = 0
    sessions: int = 0  # after coalescing
    applied: int = 0  # session rows that changed
    ingredient_rows: int = 0  # ingredient rows inserted, updated or deleted
    diffed_in_worker: int = 0  # sessions whose ingredient difference the worker computed itself
    reclaimed: int = 0
    errors: int = 0
    groups_recreated: int = 0
    sql_seconds: float = 0.0  # wall time in the SQL transactions (apply + commit)
    ack_seconds: float = 0.0  # wall time acknowledging and deleting committed entries (beside the next batch's SQL)
    wait_seconds: float = 0.0  # wall time waiting for a read (nothing prefetched yet)
    started: float = field(default_factory=time.monotonic)
    # Per committed entry: ms from its XADD (the entry id's clock) to the SQL commit. Off unless a
    # caller (a bench) sets it to a list.
    lag_samples: list[int] | None = None
    last_lag_ms: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_interval: float = 5.0
    idle_sleep: float = 0.01  # Cluster only: pause between polls of an empty backup index
    sweep_interval: float = 30.0  # Cluster only: every slot stream is checked once per interval (index repair)
    heartbeat_seconds: float = 5.0
    report_seconds: float = 30.0  # info line with throughput, lag and backlog
    catchup_report_seconds: float = 5.0  # the same while catching up on a large backlog
    consumer: str | None = None
    # Sessions whose last committed copy the worker keeps to diff the next one in Python (the packed
    # ingredients plus ~200 bytes each: about 40 MB at 20,000 sessions of 90 ingredients).
    known_sessions: int = 20_000


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


async def _streams_with_entries(client: RedisClient, keys: RedisKeys) -> list[tuple[str, int]]:
    streams = keys.backup_streams()
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    return [(s, int(n)) for s, n in zip(streams, lengths, strict=True) if int(n)]


async def backup_lag(client: RedisClient, keys: RedisKeys) -> BackupLag:
    """The backlog of every backup stream (callable from ``/metrics``, ``f2f migrate``, benches).

    On a Cluster this reads every slot's stream on purpose: ``f2f migrate`` relies on it to know the
    backup is drained, so it must not trust the index the worker uses for speed."""
    try:
        present = await _streams_with_entries(client, keys)
        pending = 0
        oldest: int | None = None
        for stream, _ in present:
            summary = await client.xpending(stream, BACKUP_GROUP)
            pending += int(summary["pending"])
            first = await client.xrange(stream, count=1)
            if first and first[0][0] is not None:
                ms = _entry_ms(_as_text(first[0][0]))
                oldest = ms if oldest is None else min(oldest, ms)
        now_ms = int(time.time() * 1000)
        total = sum(n for _, n in present)
        return BackupLag(
            pending=pending,
            undelivered=total - pending,
            oldest_age_ms=None if oldest is None else max(0, now_ms - oldest),
            streams=len(present),
        )
    except REDIS_FAILURES as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc


async def backlog_per_primary(client: RedisClient, keys: RedisKeys) -> dict[str, int]:
    """Entries not yet committed, per primary (``host:port``; one Redis: ``"redis"``): its node stream and
    the indexed fallback streams it serves. Cheap (a few XLEN), unlike :func:`backup_lag`, which reads every
    slot stream; what only the periodic sweep would find (a lost index entry) is not counted here."""
    if not keys.cluster:
        return {"redis": int(await client.xlen(keys.backup_streams()[0]))}
    if NodeStreams.needs_map(client):
        await client.initialize()
    cluster: Any = client
    streams = list(dict.fromkeys([
        *NodeStreams(keys).streams(client).values(),
        *(keys.slot_stream(int(m)) for m in await client.smembers(keys.backup_index)),
    ]))  # fmt: skip
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    per: dict[str, int] = {}
    for stream, n in zip(streams, await pipe.execute(), strict=True):
        node = cluster.nodes_manager.get_node_from_slot(keys.backup_slot_of_stream(stream))
        per[node.name] = per.get(node.name, 0) + int(n)
    return per


def _is_nogroup(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


def _is_noscript(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (isinstance(exc, ResponseError) and "NOSCRIPT" in str(exc))


class BackupWorker:
    """One consumer of the backup group; ``run`` until ``stop`` is set."""

    def __init__(
        self, settings: Settings, options: WorkerOptions, *, redis: RedisClient, engine: AsyncEngine
    ) -> None:
        self.settings = settings
        self.options = options
        self.redis = redis
        self.engine = engine
        self.keys = RedisKeys(settings.redis_key_prefix, cluster=is_cluster(self.redis))
        host = socket.gethostname()
        self.consumer = self.options.consumer or f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
        self.instance_id = f"worker-{self.consumer}"[:64]
        self.host = host
        self.stats = WorkerStats()
        self._ack = self.redis.register_script(ACK_DELETE)
        self._read_group = self.redis.register_script(READ_GROUP)
        tracing.name_scripts({self._ack.sha: "ack_delete", self._read_group.sha: "read_group"})
        self._node_streams = NodeStreams(self.keys)
        self._started_at = utcnow()
        self._last_claim = -math.inf
        self._last_heartbeat = -math.inf
        self._next_slice_at = time.monotonic() + self.options.sweep_interval * SWEEP_SLICE / 16_384
        self._sweep_cursor = 0
        self._retry: list[Entry] = []
        self._known = KnownCopies(self.options.known_sessions)
        self._prefetch: asyncio.Task[list[Entry]] | None = None
        # Cluster: the reads and claims in flight, one per (kind, stream), and the streams whose last one
        # failed (monotonic time they may be tried again, current pause): see _read_cluster.
        self._jobs: dict[tuple[str, str], asyncio.Task[list[Entry]]] = {}
        self._paused: dict[str, tuple[float, float]] = {}
        self._index_slots: list[int] = []
        self._slice: asyncio.Task[None] | None = None  # Cluster: the index-repair step in flight
        self._index_read: asyncio.Task[Any] | None = None  # Cluster: an index read that outlasted a poll
        # How long a poll waits for one primary (a read, an acknowledgement, the index) before going on without it.
        self._bound = max(self.options.block_ms / 1000, 1.0)
        self._unacked: dict[str, list[str]] = defaultdict(list)  # committed, acknowledgement failed: retried
        self._acking: set[asyncio.Task[None]] = set()
        self._rotate = 0
        # Every stream that was a node stream while this worker ran: after a resharding moves a primary's
        # first slot, writers whose slot map is older keep naming the former one, which the primary still
        # serves; read it on without waiting for the index repair pass (up to ``sweep_interval``).
        self._former_nodes: dict[str, None] = {}
        self._report_at = time.monotonic()
        self._report_entries = 0
        self._report_lags: list[int] = []

    # -- set-up -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create the group on every stream (MKSTREAM), load the ack script, fill the Cluster index."""
        streams = self.keys.backup_streams()
        for start in range(0, len(streams), 2000):
            await self._create_groups(streams[start : start + 2000])
        await self.redis.script_load(ACK_DELETE)
        await self.redis.script_load(READ_GROUP)
        if self.keys.cluster:
            await self._sweep()

    async def _create_groups(self, streams: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xgroup_create(stream, BACKUP_GROUP, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, BaseException) and "BUSYGROUP" not in str(result):
                raise result

    async def _recreate_group(self, streams: Sequence[str]) -> None:
        """Redis lost the stream and its group (a restart without persistence): make them again."""
        await self._create_groups(streams)
        self.stats.groups_recreated += 1
        log.warning(
            "worker %s: the backup consumer group was missing on %d stream(s) (Redis restarted empty?); recreated it",
            self.consumer, len(streams),
        )  # fmt: skip

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, prepared: bool = False) -> WorkerStats:
        """Drain until ``stop`` is set (``prepared``: the caller ran :meth:`prepare` already)."""
        if not prepared:
            await self.prepare()
        try:
            await self._heartbeat(force=True)
        except _WORKER_FAILURES as exc:
            # A worker that starts while PostgreSQL is down still drains nothing it cannot commit;
            # it waits in the loop below, which retries the heartbeat with everything else.
            self._last_heartbeat = 0.0
            log.warning("worker %s: cannot record a heartbeat yet: %s", self.consumer, exc)
        backlog = await self._backlog()
        # Says what it reads, as ``f2f worker --lag`` counts it (streams with entries), not every slot stream.
        log.info(
            "worker %s started: %s, batch %d, backlog %d entries",
            self.consumer, f"Redis Cluster, a stream per primary ({len(self._node_streams.streams(self.redis))} "
            "primaries)" if self.keys.cluster else "one backup stream", self.options.batch_size, backlog,
        )  # fmt: skip
        backoff = 0.1
        while not stop.is_set():
            try:
                done = await self.run_once()
                backoff = 0.1
                if done == 0 and self._unacked:  # idle: no next batch to carry a failed acknowledgement
                    self._acknowledge(())
                if done == 0 and self.keys.cluster:
                    await _sleep_or_stop(stop, self.options.idle_sleep)
                await self._heartbeat()
                await self._report()
            except _WORKER_FAILURES as exc:
                self.stats.errors += 1
                log.warning("worker %s: %s; retrying in %.1fs", self.consumer, exc, backoff)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
        # Whatever the read in flight brought is pending on us: commit it before leaving.
        with contextlib.suppress(*_WORKER_FAILURES):
            await self._finish()
        log.info("worker %s stopping after %d entries", self.consumer, self.stats.entries)
        return self.stats

    async def run_once(self) -> int:
        """Commit one batch to SQL and acknowledge it, reading the next batch meanwhile.

        Returns the entries committed (0: nothing to do)."""
        entries = await self._take()
        if not entries:
            return 0
        if self._prefetch is None:  # (after a failed commit the earlier read may still be in flight)
            self._prefetch = asyncio.create_task(self._read())
        try:
            await self._commit(entries)
        except BaseException:
            self._retry = list(entries)  # still pending on us: try them again first
            raise
        return len(entries)

    async def _finish(self) -> None:
        """Commit what is already ours (a failed batch, the read in flight) without reading more."""
        entries, self._retry = self._retry, []
        if self._prefetch is not None:
            task, self._prefetch = self._prefetch, None
            entries += await task
        if self._jobs:  # Cluster: reads still out (a slow primary) get one bounded wait, then are cancelled
            nodes = set(self._node_streams.streams(self.redis).values())
            entries += await self._collect(list(self._jobs.values()), nodes, quiet=True)
            await self._cancel_jobs(acks=False)
        if entries:
            try:
                await self._commit(entries)
            except BaseException:
                self._retry = entries
                raise
        await self._settle_acks()  # what stays pending now waits for another worker's claim

    async def _take(self) -> list[Entry]:
        """The next batch: a failed one first, then the prefetched read, reclaimed entries or a new read."""
        if self._retry:
            entries, self._retry = self._retry, []
            return entries
        if self._prefetch is not None:
            task, self._prefetch = self._prefetch, None
            waited = time.perf_counter()
            entries = await task
            self.stats.wait_seconds += time.perf_counter() - waited
            if entries:
                return entries
        if time.monotonic() - self._last_claim >= self.options.claim_interval:
            self._last_claim = time.monotonic()
            if self.keys.cluster:  # claimed per stream like the reads (counted where collected)
                entries = await self._read_cluster(claim=True)
            else:
                entries = await self._reclaim()
                self.stats.reclaimed += len(entries)
            if entries:
                return entries
        return await self._read()

    # -- reading ------------------------------------------------------------------------------

    async def _read(self) -> list[Entry]:
        if self.keys.cluster:
            return await self._read_cluster()
        opts = self.options
        stream = self.keys.backup_streams()[0]
        try:
            reply = await self.redis.xreadgroup(
                BACKUP_GROUP, self.consumer, {stream: ">"}, count=opts.batch_size, block=opts.block_ms
            )
        except ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            await self._recreate_group([stream])
            return []
        return _flatten(reply)

    async def _indexed_streams(self) -> list[str]:
        """Cluster: every primary's node stream, then the slot streams the index says may hold entries
        (writes that fell back to their slot's stream, see ``redis.node_streams``; at most ``batch_size``, rotating)."""
        if time.monotonic() >= self._next_slice_at and (self._slice is None or self._slice.done()):
            # It reads every primary: in the background, so that a slow or hung one never stalls a poll.
            self._slice = asyncio.create_task(self._sweep_slice_quietly())
        if self._node_streams.moved(self.redis):
            await self.redis.nodes_manager.initialize()  # type: ignore[union-attr]
        self._former_nodes.update(dict.fromkeys(self._node_streams.streams(self.redis).values()))
        nodes = list(self._former_nodes)
        await self._read_index(bool(nodes))
        slots = self._index_slots
        if len(slots) > self.options.batch_size:
            self._rotate = (self._rotate + self.options.batch_size) % len(slots)
            slots = (slots[self._rotate :] + slots[: self._rotate])[: self.options.batch_size]
        known = set(nodes)
        return nodes + [s for s in (self.keys.slot_stream(slot) for slot in slots) if s not in known]

    async def _read_index(self, have_nodes: bool) -> None:
        """Cluster: refresh ``_index_slots`` from the backup index, which lives on one primary. Read every poll
        (bounded); once a read outlasts the bound, it is left in flight and polls go on with the last slots read,
        without waiting again, until it answers: a hung index primary must not stall the others' reads."""
        task = self._index_read
        if task is None:
            task = asyncio.ensure_future(self.redis.smembers(self.keys.backup_index))
            await asyncio.wait({task}, timeout=self._bound)
            if not task.done():
                self._index_read = task
                log.debug("worker %s: backup index unanswered; using the last one read", self.consumer)
                return
        elif not task.done():
            return
        self._index_read = None
        try:
            self._index_slots = sorted(int(m) for m in task.result())
        except REDIS_FAILURES as exc:  # (OSError: TimeoutError too)
            if not self._index_slots and not have_nodes:
                raise
            log.debug("worker %s: backup index unreadable (%s); using the last one read", self.consumer, exc)

    async def _read_cluster(self, *, claim: bool = False) -> list[Entry]:
        """Cluster: read (``claim``: XAUTOCLAIM) each stream in a task of its own, on its primary's connection.

        The poll waits up to ``block_ms`` (at least 1 s) for the tasks it started, then returns what has come. A primary
        that is slow or failing over holds back no other primary's entries: its task stays in flight and
        a later poll collects it when it answers (its entries are pending on this worker meanwhile); after a
        failure its stream is tried again after a growing pause and is not waited for until it answers.
        The poll fails (the loop backs off) only when nothing answered and something failed."""
        streams = await self._indexed_streams()
        per_stream = max(1, self.options.batch_size // max(1, len(streams)))
        fresh = self._start_jobs("claim" if claim else "read", streams, per_stream)
        return await self._collect(fresh, set(self._node_streams.streams(self.redis).values()))

    def _start_jobs(self, kind: str, streams: Sequence[str], count: int) -> list[asyncio.Task[list[Entry]]]:
        """Start a read or claim on every stream without one in flight; return those the poll waits for."""
        now = time.monotonic()
        wait: list[asyncio.Task[list[Entry]]] = []
        for stream in streams:
            if (kind, stream) in self._jobs or self._paused.get(stream, (0.0, 0.0))[0] > now:
                continue
            work = self._read_stream(stream, count) if kind == "read" else self._claim_stream(stream, count)
            job = self._jobs[(kind, stream)] = asyncio.create_task(work)
            if stream not in self._paused:
                wait.append(job)
        return wait

    async def _collect(self, wait: Sequence[asyncio.Task[list[Entry]]], nodes: set[str], *,
                       quiet: bool = False) -> list[Entry]:  # fmt: skip
        if wait:
            await asyncio.wait(wait, timeout=self._bound)
        entries: list[Entry] = []
        idle: list[str] = []
        lost: list[str] = []
        failure: BaseException | None = None
        answered = False
        for key, job in list(self._jobs.items()):
            if not job.done():
                continue
            del self._jobs[key]
            kind, stream = key
            if job.cancelled():
                continue
            exc = job.exception()
            if exc is None:
                answered = True
                got = job.result()
                entries.extend(got)
                if stream in self._paused:
                    del self._paused[stream]
                    log.info("worker %s: stream %s answers again", self.consumer, stream)
                if kind == "claim":
                    self.stats.reclaimed += len(got)
                elif not got and stream not in nodes:
                    idle.append(stream)
            elif _is_nogroup(exc):
                answered = True
                lost.append(stream)
            elif isinstance(exc, REDIS_FAILURES):
                failure = exc
                self._pause(stream, exc, quiet=quiet)
            else:
                raise exc
        if lost:
            await self._recreate_group(lost)
        if idle:
            try:
                await asyncio.wait_for(self._forget(idle), self._bound)
            except REDIS_FAILURES as exc:  # the index repair pass finds it later
                log.debug("worker %s: could not trim the backup index: %s", self.consumer, exc)
        if failure is not None and not answered and not quiet:
            raise failure
        return entries

    def _pause(self, stream: str, exc: BaseException, *, quiet: bool) -> None:
        _, pause = self._paused.get(stream, (0.0, 0.05))
        pause = min(pause * 2, 5.0)
        self._paused[stream] = (time.monotonic() + pause, pause)
        self.stats.errors += 1
        if not quiet:
            log.warning("worker %s: stream %s: %s; the other streams go on, this one again in %.1fs",
                        self.consumer, stream, exc, pause)  # fmt: skip

    async def _read_stream(self, stream: str, count: int) -> list[Entry]:
        # EVALSHA is routed by its declared key (a bare XREADGROUP costs redis-py a COMMAND GETKEYS round trip);
        # the Script object loads the script again where a restarted primary forgot it.
        return _flatten(await self._read_group(keys=[stream], args=[BACKUP_GROUP, self.consumer, count]))

    async def _claim_stream(self, stream: str, count: int) -> list[Entry]:
        reply: Any = await self.redis.xautoclaim(stream, BACKUP_GROUP, self.consumer,
                                                 min_idle_time=self.options.claim_idle_ms, start_id="0-0",
                                                 count=count)  # fmt: skip
        entries = [(stream, _as_text(eid), fields) for eid, fields in reply[1] if fields]
        if len(reply) > 2 and reply[2]:  # entries deleted after delivery: only their pending record remains
            await self.redis.xack(stream, BACKUP_GROUP, *reply[2])
        if entries:
            log.info("worker %s reclaimed %d entries another worker left pending on %s", self.consumer,
                     len(entries), stream)  # fmt: skip
        return entries

    async def _cancel_jobs(self, *, acks: bool = True) -> None:
        jobs: list[asyncio.Task[Any]] = list(self._jobs.values())
        self._jobs = {}
        for extra in (self._slice, self._index_read):
            if extra is not None:
                jobs.append(extra)
        self._slice = self._index_read = None
        if acks:
            jobs += self._acking
            self._acking = set()
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(BaseException):
                await job

    async def _forget(self, streams: Sequence[str]) -> None:
        """Drop idle streams from the index, then put back any that gained an entry meanwhile.

        Removing first and checking after is what makes this safe against a concurrent writer:
        a write that lands after our XLEN found the stream empty, so it adds the slot itself."""
        slots = [self.keys.backup_slot_of_stream(s) for s in streams]
        await self.redis.srem(self.keys.backup_index, *slots)
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
        lengths = await pipe.execute()
        back = [slot for slot, n in zip(slots, lengths, strict=True) if int(n)]
        if back:
            await self.redis.sadd(self.keys.backup_index, *back)

    async def _sweep_slice_quietly(self) -> None:
        try:
            await self._sweep_slice()
        except REDIS_FAILURES as exc:  # the next round of the pass looks again
            log.debug("worker %s: index repair step failed: %s", self.consumer, exc)

    async def _sweep_slice(self) -> None:
        """Cluster: repair the index a slice at a time, so that every stream is looked at once per
        ``sweep_interval`` without a pause: reading all 16,384 lengths at once costs the worker about a
        second of CPU (the replies are parsed in its event loop), which would show as a lag spike."""
        streams = self.keys.backup_streams()
        part = streams[self._sweep_cursor : self._sweep_cursor + SWEEP_SLICE]
        self._sweep_cursor = (self._sweep_cursor + SWEEP_SLICE) % len(streams)
        self._next_slice_at = time.monotonic() + self.options.sweep_interval * SWEEP_SLICE / len(streams)
        pipe = self.redis.pipeline(transaction=False)
        for stream in part:
            pipe.xlen(stream)
        found = [s for s, n in zip(part, await pipe.execute(), strict=True) if int(n)]
        if found:
            await self.redis.sadd(self.keys.backup_index, *(self.keys.backup_slot_of_stream(s) for s in found))

    async def _sweep(self) -> None:
        """Cluster: read every slot stream's length and index the non-empty ones (at start)."""
        present = await _streams_with_entries(self.redis, self.keys)
        if present:
            await self.redis.sadd(self.keys.backup_index, *(self.keys.backup_slot_of_stream(s) for s, _ in present))

    async def _reclaim(self) -> list[Entry]:
        """One Redis: claim what another consumer left pending (a Cluster claims per stream, see _claim_stream)."""
        opts = self.options
        candidates = list(self.keys.backup_streams())
        per_stream = max(1, opts.batch_size // len(candidates))
        pipe = self.redis.pipeline(transaction=False)
        for stream in candidates:
            pipe.xautoclaim(stream, BACKUP_GROUP, self.consumer, min_idle_time=opts.claim_idle_ms, start_id="0-0",
                            count=per_stream)  # fmt: skip
        entries: list[Entry] = []
        lost: list[str] = []
        vanished: list[tuple[str, list[Any]]] = []
        for stream, reply in zip(candidates, await pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, BaseException):
                if not _is_nogroup(reply):
                    raise reply
                lost.append(stream)
                continue
            entries.extend((stream, _as_text(eid), fields) for eid, fields in reply[1] if fields)
            if len(reply) > 2 and reply[2]:  # entries deleted after delivery: only their pending record remains
                vanished.append((stream, list(reply[2])))
        if lost:
            await self._recreate_group(lost)
        for stream, ids in vanished:
            await self.redis.xack(stream, BACKUP_GROUP, *ids)
        if entries:
            log.info("worker %s reclaimed %d entries another worker left pending", self.consumer, len(entries))
        return entries

    # -- committing ---------------------------------------------------------------------------

    async def _commit(self, entries: Sequence[Entry]) -> None:
        # One span per batch: its SQL transaction and its XACK/XDEL nest inside (f2f_cli/tracing.py).
        with tracing.span("worker.batch", **{"f2f.worker.entries": len(entries)}) as span:
            sessions_before = self.stats.sessions
            await self._commit_batch(entries)
            span.set_attribute("f2f.worker.sessions", self.stats.sessions - sessions_before)
            span.set_attribute("f2f.worker.lag_ms", self.stats.last_lag_ms or 0)

    async def _commit_batch(self, entries: Sequence[Entry]) -> None:
        copies = [PackedCopy.from_entry(fields) for _, _, fields in entries]
        began = time.perf_counter()
        async with self.engine.begin() as conn:
            # PostgreSQL: COMMIT rides with the last statement (the context's own commit then sends nothing).
            result = await apply_packed(conn, copies, self._known, commit=True)
        committed_ms = int(time.time() * 1000)
        committed = time.perf_counter()
        self._known.remember(result.chosen)
        self._acknowledge(entries)
        self.stats.sql_seconds += committed - began
        lags = [max(0, committed_ms - _entry_ms(eid)) for _, eid, _ in entries]
        self.stats.batches += 1
        self.stats.entries += len(entries)
        self.stats.sessions += result.sessions
        self.stats.applied += len(result.changed)
        self.stats.ingredient_rows += result.ingredient_rows
        self.stats.diffed_in_worker += result.diffed_in_worker
        self.stats.last_lag_ms = max(lags)
        if self.stats.lag_samples is not None:
            self.stats.lag_samples.extend(lags)
        self._report_entries += len(entries)
        self._report_lags.append(max(lags))

    def _acknowledge(self, entries: Sequence[Entry]) -> None:
        """Acknowledge and delete committed entries: a task per stream (so per primary on a Cluster), not
        waited for, so the next batch's SQL runs meanwhile (an acknowledgement was 1-7 ms of every batch
        cycle, and the cycle is what the backup lag is made of). Ids whose acknowledgement failed go again
        with the next batch's; until then they stay pending, and replaying a committed copy is a no-op."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, ids in self._unacked.items():
            by_stream[stream].extend(ids)
        self._unacked.clear()
        for stream, eid, _ in entries:
            by_stream[stream].append(eid)
        jobs = [asyncio.create_task(self._ack_stream(stream, ids)) for stream, ids in by_stream.items()]
        self._acking.update(jobs)
        for job in jobs:
            job.add_done_callback(self._acking.discard)

    async def _settle_acks(self) -> None:
        """Wait (at most ``block_ms``, at least 1 s) for the acknowledgements in flight, retrying failed ones once."""
        if self._unacked:
            self._acknowledge(())
        if self._acking:
            await asyncio.wait(list(self._acking), timeout=self._bound)

    async def _ack_stream(self, stream: str, ids: list[str]) -> None:
        began = time.perf_counter()
        try:
            await self._ack(keys=[stream], args=[BACKUP_GROUP, *ids])  # reloads the script on NOSCRIPT
            self.stats.ack_seconds += time.perf_counter() - began
        except REDIS_FAILURES as exc:
            self._unacked[stream].extend(ids)
            self.stats.errors += 1
            log.warning("worker %s: acknowledging %d entries on %s failed (%s); retried with the next batch",
                        self.consumer, len(ids), stream, exc)  # fmt: skip

    # -- reporting ----------------------------------------------------------------------------

    async def _backlog(self) -> int:
        """Entries not yet committed: one XLEN, or on a Cluster the indexed streams' lengths."""
        streams = await self._indexed_streams() if self.keys.cluster else list(self.keys.backup_streams())
        if not streams:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
        return sum(int(n) for n in await pipe.execute())

    async def _report(self) -> None:
        """Info lines: throughput, lag and backlog every ``report_seconds``; every
        ``catchup_report_seconds`` while the backlog is more than a few batches."""
        now = time.monotonic()
        elapsed = now - self._report_at
        opts = self.options
        if elapsed < opts.catchup_report_seconds:
            return
        backlog: int | None = None
        try:
            backlog = await asyncio.wait_for(self._backlog(), self._bound)
        except REDIS_FAILURES:
            if not self.keys.cluster:
                raise  # (on a Cluster a primary that does not answer must not stop the loop for a log line)
        catching_up = backlog is not None and backlog > 4 * opts.batch_size
        if not catching_up and elapsed < opts.report_seconds:
            return
        rate = self._report_entries / elapsed
        lag = f"{statistics.median(self._report_lags):.0f} ms median, {max(self._report_lags)} ms max" \
            if self._report_lags else "-"  # fmt: skip
        if catching_up and backlog is not None:
            eta = f", about {backlog / rate:.0f} s to go" if rate > 0 else ""
            log.info("worker %s catching up: %d entries left, %.0f entries/s%s; batch lag %s",
                     self.consumer, backlog, rate, eta, lag)  # fmt: skip
        else:
            log.info("worker %s: %d entries in %.0f s (%.0f/s), backlog %s, batch lag %s",
                     self.consumer, self._report_entries, elapsed, rate, "unknown" if backlog is None else backlog,
                     lag)  # fmt: skip
        self._report_at = now
        self._report_entries = 0
        self._report_lags = []

    async def _heartbeat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.options.heartbeat_seconds:
            return
        self._last_heartbeat = now
        # The worker has no phase of its own: it reports the one in force, so `migrate status` and
        # rollback's liveness check see it beside the serving instances.
        state = await control.get_control(self.engine)
        await control.heartbeat(
            self.engine, self.instance_id, "worker", state.phase.value, state.epoch, self._started_at
        )

    async def close(self) -> None:
        if self._prefetch is not None:  # its entries stay pending on us; another worker reclaims them
            self._prefetch.cancel()
            with contextlib.suppress(BaseException):
                await self._prefetch
            self._prefetch = None
        await self._cancel_jobs()
        try:
            await control.remove_instance(self.engine, self.instance_id)
        except StoreUnavailable as exc:  # the row then ages out by last_seen
            log.warning("could not remove heartbeat row: %s", exc.message)

    @classmethod
    def on(cls, backends: Backends, options: WorkerOptions | None = None) -> BackupWorker:
        """A worker over ``backends``; its Redis client is its own, with a timeout that outlasts BLOCK."""
        options = options or WorkerOptions()
        block_s = options.block_ms / 1000
        timeout = block_s + max(backends.settings.redis_command_timeout, 5.0)
        return cls(backends.settings, options, redis=backends.redis_client(command_timeout=timeout),
                   engine=backends.engine)


def _flatten(reply: Any) -> list[Entry]:
    entries: list[Entry] = []
    if not reply:
        return entries
    items = reply.items() if isinstance(reply, dict) else reply
    for stream, messages in items:
        if messages and isinstance(messages[0], list) and not isinstance(messages[0][0], bytes | str):
            messages = messages[0]  # RESP3 shape
        for eid, fields in messages:
            if isinstance(fields, list):  # raw from a script: field, value, field, value ...
                fields = dict(zip(fields[0::2], fields[1::2], strict=True))
            if fields:
                entries.append((_as_text(stream), _as_text(eid), fields))
    return entries


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_worker(settings: Settings, options: WorkerOptions) -> WorkerStats:
    """Run one worker until SIGTERM or SIGINT; the current batch is committed and acknowledged first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Backends.open(settings) as backends:
        worker = BackupWorker.on(backends, options)
        try:
            await worker.prepare()
            # A full collection over everything the start-up allocated stalled every batch for 40-165 ms.
            freeze_long_lived()
            return await worker.run(stop, prepared=True)
        finally:
            await worker.close()
