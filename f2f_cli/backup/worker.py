"""The backup writer of the ``redis`` phase: drain the backup stream(s) into SQL.

Each ``f2f worker`` joins the consumer group ``f2f-backup`` on every backup
stream (one on standalone/Sentinel, one per hash slot on a Cluster, see
``redis_keys``) and loops:

1. every ``claim_interval``: XAUTOCLAIM entries another consumer left pending
   longer than ``claim_idle_ms`` (a worker that died mid-batch);
2. XREADGROUP a batch of new entries (BLOCK on a single stream; on a Cluster a
   pipelined non-blocking read of every slot's stream per primary, then a short
   idle sleep when nothing came);
3. apply the newest copy per session to SQL in one transaction (version-guarded,
   ``backup_sql``);
4. only after the commit: XACK + XDEL the entries in one script per stream.

Because committed entries are deleted, a stream holds exactly the entries no
worker has committed yet: its length is the backlog (``backup_lag``). Several
workers share the work through the group; a crash between commit and ack only
replays copies SQL already holds, which the version guard turns into no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backends import Backends
from f2f_cli.backup.apply import apply_copies
from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.domain.model import Session
from f2f_cli.errors import StoreUnavailable
from f2f_cli.redis.client import RedisClient, is_cluster
from f2f_cli.redis.codec import session_from_entry
from f2f_cli.redis.keys import BACKUP_GROUP, RedisKeys
from f2f_cli.redis.scripts import ACK_DELETE
from f2f_cli.settings import Settings

log = logging.getLogger("f2f.worker")

Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields


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
    applied: int = 0
    reclaimed: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_interval: float = 5.0
    idle_sleep: float = 0.1
    heartbeat_seconds: float = 5.0
    consumer: str | None = None


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _streams_with_entries(client: RedisClient, keys: RedisKeys) -> list[tuple[str, int]]:
    streams = keys.backup_streams()
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    return [(s, int(n)) for s, n in zip(streams, lengths, strict=True) if int(n)]


async def backup_lag(client: RedisClient, keys: RedisKeys) -> BackupLag:
    """The backlog of every backup stream (callable from ``/metrics``, ``f2f migrate``, benches)."""
    try:
        present = await _streams_with_entries(client, keys)
        pending = 0
        oldest: int | None = None
        for stream, _ in present:
            summary = await client.xpending(stream, BACKUP_GROUP)
            pending += int(summary["pending"])
            first = await client.xrange(stream, count=1)
            if first and first[0][0] is not None:
                ms = int(_as_text(first[0][0]).partition("-")[0])
                oldest = ms if oldest is None else min(oldest, ms)
        now_ms = int(time.time() * 1000)
        total = sum(n for _, n in present)
        return BackupLag(
            pending=pending,
            undelivered=total - pending,
            oldest_age_ms=None if oldest is None else max(0, now_ms - oldest),
            streams=len(present),
        )
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc


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
        self._started_at = utcnow()
        self._last_claim = 0.0
        self._last_heartbeat = 0.0
        self._retry: list[Entry] = []

    async def prepare(self) -> None:
        """Create the group on every stream (MKSTREAM) and load the ack script everywhere."""
        streams = self.keys.backup_streams()
        for start in range(0, len(streams), 2000):
            pipe = self.redis.pipeline(transaction=False)
            for stream in streams[start : start + 2000]:
                pipe.xgroup_create(stream, BACKUP_GROUP, id="0", mkstream=True)
            for result in await pipe.execute(raise_on_error=False):
                if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                    raise result
        await self.redis.script_load(ACK_DELETE)

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        await self.prepare()
        await self._heartbeat(force=True)
        log.info("worker %s consuming %d stream(s)", self.consumer, len(self.keys.backup_streams()))
        backoff = 0.1
        while not stop.is_set():
            try:
                done = await self.run_once()
                backoff = 0.1
                if done == 0 and self.keys.cluster:
                    await _sleep_or_stop(stop, self.options.idle_sleep)
                await self._heartbeat()
            except (RedisError, OSError, SQLAlchemyError, StoreUnavailable) as exc:
                self.stats.errors += 1
                log.warning("worker %s: %s; retrying in %.1fs", self.consumer, exc, backoff)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
        log.info("worker %s stopping after %d entries", self.consumer, self.stats.entries)
        return self.stats

    async def run_once(self) -> int:
        """Reclaim if due, read one batch, commit it to SQL, acknowledge it. Returns entries handled."""
        entries, self._retry = self._retry, []
        if not entries and time.monotonic() - self._last_claim >= self.options.claim_interval:
            self._last_claim = time.monotonic()
            entries = await self._reclaim()
            self.stats.reclaimed += len(entries)
        if not entries:
            entries = await self._read()
        if not entries:
            return 0
        try:
            await self._commit(entries)
        except BaseException:
            self._retry = list(entries)  # still pending on us: try them again first
            raise
        return len(entries)

    async def _read(self) -> list[Entry]:
        opts = self.options
        streams = self.keys.backup_streams()
        if len(streams) == 1:
            reply = await self.redis.xreadgroup(
                BACKUP_GROUP, self.consumer, {streams[0]: ">"}, count=opts.batch_size, block=opts.block_ms
            )
            return _flatten(reply)
        entries: list[Entry] = []
        # Per-slot streams cannot share one XREADGROUP on a Cluster; one pipelined round per primary.
        pipe = self.redis.pipeline(transaction=False)
        per_stream = max(1, opts.batch_size // 64)
        for stream in streams:
            pipe.xreadgroup(BACKUP_GROUP, self.consumer, {stream: ">"}, count=per_stream)
        for reply in await pipe.execute():
            entries.extend(_flatten(reply))
        return entries

    async def _reclaim(self) -> list[Entry]:
        opts = self.options
        present = [s for s, _ in await _streams_with_entries(self.redis, self.keys)]
        entries: list[Entry] = []
        for stream in present:
            reply = await self.redis.xautoclaim(
                stream, BACKUP_GROUP, self.consumer, min_idle_time=opts.claim_idle_ms, start_id="0-0",
                count=opts.batch_size,
            )  # fmt: skip
            claimed = reply[1]
            entries.extend((stream, _as_text(eid), fields) for eid, fields in claimed if fields)
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:  # entries deleted after delivery: only their pending record remains
                await self.redis.xack(stream, BACKUP_GROUP, *deleted)
            if len(entries) >= opts.batch_size:
                break
        if entries:
            log.info("worker %s reclaimed %d pending entries", self.consumer, len(entries))
        return entries

    async def _commit(self, entries: Sequence[Entry]) -> None:
        copies: list[Session] = [session_from_entry(fields) for _, _, fields in entries]
        async with self.engine.begin() as conn:
            changed = await apply_copies(conn, copies)
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, eid, _ in entries:
            by_stream[stream].append(eid)
        if len(by_stream) == 1:
            ((stream, ids),) = by_stream.items()
            await self._ack(keys=[stream], args=[BACKUP_GROUP, *ids])
        else:
            pipe = self.redis.pipeline(transaction=False)
            for stream, ids in by_stream.items():
                pipe.execute_command("EVALSHA", self._ack.sha, 1, stream, BACKUP_GROUP, *ids)
            await pipe.execute()
        self.stats.batches += 1
        self.stats.entries += len(entries)
        self.stats.applied += len(changed)

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
            return await worker.run(stop)
        finally:
            await worker.close()


async def read_lag(settings: Settings) -> BackupLag:
    async with Backends.open(settings) as backends:
        store = backends.redis()
        return await backup_lag(store.client, store.keys)

