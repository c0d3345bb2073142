"""What ``f2f migrate status`` shows: the phase, the instances, counts per store, backlog, history.

During an incident it also says who holds the migrator lease, whether writes are held (since when,
by whom, toward which phase, until which deadline), where an interrupted backfill stopped, how old
the backup backlog is and whether a worker drains it, and what to run next (``advice``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
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
from f2f_cli.control.phase import Control, Instance, Phase, RedisState
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
    advice: list[Advice] = field(default_factory=list)
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


@dataclass(frozen=True, slots=True)
class Advice:
    """One 'next:' line of ``f2f migrate status``; the table and ``--json`` print the same rows."""

    code: str  # stable name for scripts, e.g. 'writes-held', 'routine-dual'
    text: str
    incident: bool  # True: something needs the operator now; False: the routine next step of a healthy state


# A rule reads the status and returns its lines: none when its condition does not hold.
Rule = Callable[[Status, datetime], list[str]]


def _take_over(st: Status) -> str:
    return " --take-over" if st.lease_stale else ""


def _lease_stale(st: Status, now: datetime) -> list[str]:
    lease = st.lease
    if lease is None or not st.lease_stale:
        return []
    return [f"the migrator lease is held by {lease.holder} ('{lease.command}', step {lease.step}) with no heartbeat "
           f"for {lease.silent_for(now):.0f}s: that run is gone; the next 'f2f migrate' needs --take-over"]


def _lease_running(st: Status, now: datetime) -> list[str]:
    lease = st.lease
    if lease is None or st.lease_stale:
        return []
    return [f"'f2f migrate {lease.command}' is running on {lease.holder} (step {lease.step}); wait for it"]


def _writes_held(st: Status, now: datetime) -> list[str]:
    c = st.control
    if c.phase is not Phase.CUTOVER:
        return []
    held = (f"WRITES HELD since {c.changed_at:%H:%M:%S}Z by {c.changed_by} "
            f"(cut-over {c.cutover_from or '?'} → {c.cutover_to or '?'})")
    if st.cutover_lapsed:
        return [f"{held}; its deadline passed: the next instance poll returns the fleet to {c.cutover_from}, or run "
               f"'f2f migrate rollback{_take_over(st)}'"]
    until = f"{c.hold_deadline:%H:%M:%S}Z" if c.hold_deadline else "no deadline (written by an older f2f)"
    return [f"{held}; deadline {until}, after which the fleet returns to {c.cutover_from or 'its origin'} by "
           f"itself; to return now: 'f2f migrate rollback{_take_over(st)}'"]


def _backfill_interrupted(st: Status, now: datetime) -> list[str]:
    if st.control.phase is not Phase.DUAL_WRITE or (st.lease is not None and not st.lease_stale):
        return []
    where = (f"checkpoint: {st.checkpoint_copied} sessions copied, up to {st.checkpoint_last_id}"
             if st.checkpoint_copied is not None else "no checkpoint: the backfill starts over")
    return [f"an interrupted 'to dual' left dual-write ({where}): run 'f2f migrate to dual --resume"
           f"{_take_over(st)}' to finish it, or 'f2f migrate rollback{_take_over(st)}' to return to postgres"]


def _last_attempt(st: Status, now: datetime) -> list[str]:
    """The last history row when it did not end well, unless a lease, a hold or dual-write explains it already."""
    last = st.history[0] if st.history else None
    if last is None or st.lease is not None or st.control.phase in (Phase.CUTOVER, Phase.DUAL_WRITE):
        return []
    if last.action.endswith(("interrupted", "failed")):
        why = f": {last.reason}" if last.reason else ""
        return [f"the last attempt ({last.action}, by {last.actor}) did not finish{why}; no write is held; "
               "'f2f migrate plan' shows the next move"]
    if last.action == "cutover lapsed":
        return [f"a cut-over lapsed (its migrator stopped renewing it) and the fleet returned to {st.control.phase} "
               "by itself; no write is held; 'f2f migrate plan' shows the next move"]
    return []


def _no_worker(st: Status, now: datetime) -> list[str]:
    spec = spec_of(st.control.phase)
    draining_matters = spec.authority is Authority.REDIS or bool(st.backup_backlog)
    if not spec.backup_stream or not draining_matters or st.workers_live:
        return []
    age = f", oldest {st.backlog_age_s:.0f}s old" if st.backlog_age_s is not None else ""
    return [f"no live 'f2f worker': the backup is not drained (backlog {st.backup_backlog}{age}); start one"]


SHARD_ADVICE = {
    ShardState.FAILING_OVER: "is failing over: its primary is down and the Cluster is promoting a replica; its "
                             "sessions are read from the SQL backup and their writes held meanwhile (503 past "
                             "F2F_REDIS_SHARD_HOLD_SECONDS)",
    ShardState.LOST: "is LOST (primary and replicas down): its sessions are read from the SQL backup, their writes "
                     "fail; start the node again (empty is fine: the fleet restores it from the backup) or give its "
                     "slots to another primary",
}


def _shards(st: Status, now: datetime) -> list[str]:
    return [f"Redis Cluster shard {s.primary} ({s.slots} slots) {SHARD_ADVICE[s.state]}"
            for s in st.shards or [] if s.state in SHARD_ADVICE]


def _untrusted(st: Status, now: datetime) -> list[str]:
    if not spec_of(st.control.phase).repairs_redis or st.control.redis_trusted:
        return []
    return ["Redis copy untrusted: instances repair it in the background, or run 'f2f migrate repair'"]


def _redis_fault_state(st: Status, now: datetime) -> list[str]:
    f = st.faults
    if f is None or f.redis_state == RedisState.OK:
        return []
    if f.redis_state == RedisState.FAILED_OVER:
        return ["the fleet failed over to SQL (Redis unreachable): nothing to run while Redis is down; once it "
               "answers, one instance reconciles the backup stream by itself, then Redis is refilled; fail back "
               "with 'f2f migrate to redis' when the state is ok again"]
    progress = f" ({f.restore_done or 0}/{f.restore_total} sessions)" if f.restore_total is not None else ""
    return [f"Redis is being restored from SQL by one instance{progress}: nothing to run; reads and writes are "
           "served meanwhile"]


# Incidents, most urgent first: each rule is one condition and its line.
INCIDENT_RULES: tuple[tuple[str, Rule], ...] = (
    ("lease-stale", _lease_stale),
    ("lease-running", _lease_running),
    ("writes-held", _writes_held),
    ("backfill-interrupted", _backfill_interrupted),
    ("last-attempt", _last_attempt),
    ("no-worker", _no_worker),
    ("shard", _shards),
    ("redis-fault", _redis_fault_state),
    ("redis-untrusted", _untrusted),
)

# With no incident, what an operator of a healthy fleet does next in each phase (the phases of a cut-over and of an
# interrupted 'to dual' always have an incident row above).
ROUTINE: dict[Phase, str] = {
    Phase.POSTGRES: "sessions live in SQL only; to start the move to Redis: 'f2f migrate plan to dual' shows the "
                    "steps, then 'f2f migrate to dual --yes'",
    Phase.DUAL_WRITE: "'f2f migrate to dual --resume' finishes the backfill",
    Phase.DUAL: "reads come from Redis, SQL stays the authority; 'f2f migrate verify' compares the stores; when "
                "they agree and an 'f2f worker' runs: 'f2f migrate to redis --yes' (or 'f2f migrate rollback --yes' "
                "back to postgres)",
    Phase.CUTOVER: "writes are held until the cut-over opens its next phase",
    Phase.REDIS: "Redis is the authority and 'f2f worker' keeps SQL as the backup; watch its lag with 'f2f worker "
                 "--lag' (or this status); 'f2f migrate rollback --yes' returns to dual",
}


def advice(st: Status, now: datetime) -> list[Advice]:
    """What the operator should do next: the incidents, most urgent first, or the phase's routine step."""
    rows = [Advice(code, text, True) for code, rule in INCIDENT_RULES for text in rule(st, now)]
    return rows or [Advice(f"routine-{st.control.phase}", ROUTINE[st.control.phase], False)]
