"""What ``f2f migrate status`` shows: the phase, the instances, counts per store, backlog, history.

During an incident it also says who holds the migrator lease, whether writes are held (since when,
by whom, toward which phase, until which deadline), where an interrupted backfill stopped, how old
the backup backlog is and whether a worker drains it, and what to run next (``advice``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.backup.shard_lag import backup_lag_by_shard
from f2f_cli.backup.worker import BackupLag, backup_lag
from f2f_cli.clock import utcnow
from f2f_cli.control import lease as leases
from f2f_cli.control import phase as control
from f2f_cli.control.faults import Conflict, conflict_report
from f2f_cli.control.lease import Lease
from f2f_cli.control.phase import Control, Instance, Phase
from f2f_cli.control.specs import Authority, spec_of
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import f2f_instances, f2f_phase_history
from f2f_cli.errors import F2FError
from f2f_cli.migration import checkpoint as checkpoints
from f2f_cli.migration.backfill import CHECKPOINT
from f2f_cli.redis.client import REDIS_FAILURES
from f2f_cli.redis.shards import Shard, ShardState, shard_states
from f2f_cli.stores.redis import RedisSessionStore
from f2f_cli.stores.sql import SqlSessionStore


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    from_phase: str | None
    to_phase: str | None
    epoch: int | None
    writes_held_ms: float | None = None
    reason: str | None = None  # a failed, refused or interrupted attempt: why


@dataclass(slots=True)
class Status:
    control: Control
    instances: list[tuple[Instance, bool]]  # (instance, stale)
    sql_sessions: int | None = None
    redis_sessions: int | None = None
    backup_backlog: int | None = None
    redis_error: str | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    faults: Faults | None = None
    # -- incidents (issue 19) --
    lease: Lease | None = None
    lease_stale: bool = False
    cutover_lapsed: bool = False
    checkpoint_copied: int | None = None
    checkpoint_last_id: str | None = None
    backlog_age_s: float | None = None
    workers_live: int = 0
    instances_aged_out: int = 0
    redis_copy: str = ""
    advice: list[str] = field(default_factory=list)
    # A Redis Cluster's shards (primary, slots, ok / failing-over / lost); None when Redis is not a Cluster.
    shards: list[Shard] | None = None
    # The backup lag per shard (primary name -> its backlog); None when Redis is not a Cluster.
    backup_shards: dict[str, BackupLag] | None = None


CONFLICT_REPORT = "f2f_failover_conflicts"


@dataclass(slots=True)
class Faults:
    """Redis faults: the fleet's Redis state, restore progress, RPO estimate and the conflict report."""

    redis_state: str
    since: datetime | None
    rpo_estimate: int | None
    restore_done: int | None
    restore_total: int | None
    conflicts: int
    conflict_report: str
    latest_conflicts: list[Conflict]


async def backup_backlog(redis: RedisSessionStore) -> int:
    """Backup-stream entries not yet committed to SQL."""
    return (await backup_lag(redis.client, redis.keys)).total


# Instances not seen for this long are gone for good (a deleted pod): counted, no longer listed.
AGE_OUT = timedelta(minutes=10)


async def collect(
    engine: AsyncEngine, sql: SqlSessionStore, redis: RedisSessionStore | None, *, window: timedelta,
    history: int = 10, lease_stale_after: timedelta = timedelta(seconds=15),
) -> Status:
    state = await control.get_control(engine)
    cutoff = utcnow() - window
    with translate_db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(select(f2f_instances).order_by(f2f_instances.c.host, f2f_instances.c.pid))).all()
            events = (
                await conn.execute(select(f2f_phase_history).order_by(f2f_phase_history.c.id.desc()).limit(history))
            ).all()
    now = utcnow()
    instances = []
    aged_out = 0
    for r in rows:
        inst = Instance(**r._mapping)
        if now - inst.last_seen > AGE_OUT:
            aged_out += 1
            continue
        instances.append((inst, inst.last_seen <= cutoff))
    status = Status(control=state, instances=instances, instances_aged_out=aged_out)
    status.history = [_history_entry(e) for e in events]
    total, latest = await conflict_report(engine)
    status.faults = Faults(state.redis_state.value, state.redis_state_since, state.rpo_estimate, state.restore_done,
                           state.restore_total, total, CONFLICT_REPORT, latest)
    status.sql_sessions = await sql.count()
    if redis is not None:
        # Before the count: a count scans every primary and fails while one shard is down.
        with contextlib.suppress(*REDIS_FAILURES):
            status.shards = await shard_states(redis.client)
        try:
            status.redis_sessions = await redis.count()
            sharded = await backup_lag_by_shard(redis.client, redis.keys)
            lag = sharded.overall
            status.backup_backlog = lag.total
            status.backlog_age_s = None if lag.oldest_age_ms is None else lag.oldest_age_ms / 1000
            if redis.keys.cluster:
                status.backup_shards = sharded.shards
        except F2FError as exc:
            status.redis_error = exc.message
    await _incident(engine, status, now, cutoff, lease_stale_after)
    return status


def _history_entry(e: Any) -> HistoryEntry:
    detail: dict[str, Any] = {}
    if e.detail:
        try:
            detail = json.loads(e.detail)
        except ValueError:
            detail = {}
    held = detail.get("writes_held_ms") if isinstance(detail, dict) else None
    reason = detail.get("reason") if isinstance(detail, dict) else None
    return HistoryEntry(e.at, e.actor, e.action, e.from_phase, e.to_phase, e.epoch,
                        float(held) if isinstance(held, int | float) else None,
                        str(reason) if reason else None)


async def _incident(engine: AsyncEngine, st: Status, now: datetime, cutoff: datetime, stale_after: timedelta) -> None:
    """The lease, the cut-over, the checkpoint, worker liveness and the Redis copy, then the advice."""
    st.lease = await leases.current(engine)
    st.lease_stale = st.lease is not None and st.lease.stale(now, stale_after)
    st.cutover_lapsed = st.control.hold_lapsed(now)
    cp = await checkpoints.load(engine, CHECKPOINT)
    if cp is not None:
        st.checkpoint_copied, st.checkpoint_last_id = cp.copied, cp.last_session_id
    st.workers_live = sum(1 for i, stale in st.instances if i.kind == "worker" and not stale)
    spec = spec_of(st.control.phase)
    if spec.copies_to_redis and spec.authority is not None:
        st.redis_copy = "trusted" if st.control.redis_trusted else "untrusted: repairs pending, reads go to SQL"
    elif spec.authority is None:
        st.redis_copy = "unchanged while writes are held (cut-over)"
    elif spec.backup_stream:
        st.redis_copy = "authority (SQL is the backup)"
    else:
        st.redis_copy = "not maintained in this phase (a copy left from an earlier dual phase is stale)"
    st.advice = advice(st, now)


def advice(st: Status, now: datetime) -> list[str]:
    """What the operator should do next, most urgent first."""
    c = st.control
    out: list[str] = []
    lease = st.lease
    take_over = " --take-over" if st.lease_stale else ""
    if lease is not None and st.lease_stale:
        out.append(f"the migrator lease is held by {lease.holder} ('{lease.command}', step {lease.step}) with no "
                   f"heartbeat for {lease.silent_for(now):.0f}s: that run is gone; the next 'f2f migrate' "
                   "needs --take-over")
    elif lease is not None:
        out.append(f"'f2f migrate {lease.command}' is running on {lease.holder} (step {lease.step}); wait for it")
    if c.phase is Phase.CUTOVER:
        direction = f"{c.cutover_from or '?'} → {c.cutover_to or '?'}"
        if st.cutover_lapsed:
            out.append(f"WRITES HELD since {c.changed_at:%H:%M:%S}Z by {c.changed_by} (cut-over {direction}); its "
                       f"deadline passed: the next instance poll returns the fleet to {c.cutover_from}, or run "
                       f"'f2f migrate rollback{take_over}'")
        else:
            until = f"{c.hold_deadline:%H:%M:%S}Z" if c.hold_deadline else "no deadline (written by an older f2f)"
            out.append(f"WRITES HELD since {c.changed_at:%H:%M:%S}Z by {c.changed_by} (cut-over {direction}); "
                       f"deadline {until}, after which the fleet returns to {c.cutover_from or 'its origin'} by "
                       f"itself; to return now: 'f2f migrate rollback{take_over}'")
    if c.phase is Phase.DUAL_WRITE and (lease is None or st.lease_stale):
        where = (f"checkpoint: {st.checkpoint_copied} sessions copied, up to {st.checkpoint_last_id}"
                 if st.checkpoint_copied is not None else "no checkpoint: the backfill starts over")
        out.append(f"an interrupted 'to dual' left dual-write ({where}): run 'f2f migrate to dual --resume{take_over}'"
                   f" to finish it, or 'f2f migrate rollback{take_over}' to return to postgres")
    last = st.history[0] if st.history else None
    if out:
        pass  # the advice above already covers the last attempt
    elif last is not None and lease is None and c.phase is not Phase.CUTOVER:
        if last.action.endswith(("interrupted", "failed")):
            why = f": {last.reason}" if last.reason else ""
            out.append(f"the last attempt ({last.action}, by {last.actor}) did not finish{why}; no write is "
                       "held; 'f2f migrate plan' shows the next move")
        elif last.action == "cutover lapsed":
            out.append(f"a cut-over lapsed (its migrator stopped renewing it) and the fleet returned to {c.phase} by "
                       "itself; no write is held; 'f2f migrate plan' shows the next move")
    elif last is not None and st.lease_stale and last.action == "cutover lapsed":
        out.append(f"a cut-over lapsed and the fleet returned to {c.phase} by itself; no write is held")
    draining_matters = spec_of(c.phase).authority is Authority.REDIS or bool(st.backup_backlog)
    if spec_of(c.phase).backup_stream and draining_matters and st.workers_live == 0:
        age = f", oldest {st.backlog_age_s:.0f}s old" if st.backlog_age_s is not None else ""
        out.append(f"no live 'f2f worker': the backup is not drained (backlog {st.backup_backlog}{age}); start one")
    for shard in st.shards or []:
        if shard.state is ShardState.FAILING_OVER:
            out.append(f"Redis Cluster shard {shard.primary} ({shard.slots} slots) is failing over: its primary is "
                       "down and the Cluster is promoting a replica; its sessions are read from the SQL backup and "
                       "their writes held meanwhile (503 past F2F_REDIS_SHARD_HOLD_SECONDS)")
        elif shard.state is ShardState.LOST:
            out.append(f"Redis Cluster shard {shard.primary} ({shard.slots} slots) is LOST (primary and replicas "
                       "down): its sessions are read from the SQL backup, their writes fail; start the node again "
                       "(empty is fine: the fleet restores it from the backup) or give its slots to another primary")
    if spec_of(c.phase).repairs_redis and not c.redis_trusted:
        out.append("Redis copy untrusted: instances repair it in the background, or run 'f2f migrate repair'")
    return out
