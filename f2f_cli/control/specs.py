"""What each phase means, as data: who assigns versions, where reads, writes and copies go.

Every part of f2f that behaves differently per phase (the runtime of ``f2f serve``,
the operator commands, readiness, the migrator) reads these specs instead of
naming phases, so a rule is stated once and a new state is one more row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from f2f_cli.control.phase import Control, Phase, RedisState


class Authority(StrEnum):
    """The store that assigns session versions (DESIGN.md: one version authority per phase)."""

    SQL = "sql"
    REDIS = "redis"


class ReadFrom(StrEnum):
    SQL = "sql"
    # Redis first while it is trusted; SQL on a miss, an error or while Redis is untrusted (read-repair).
    REDIS_THEN_SQL = "redis-then-sql"
    REDIS = "redis"


class Marker(StrEnum):
    """What an instance does with the generation marker (``f2f_cli.redis.marker``) on each poll."""

    NONE = "none"
    # Redis is a copy of SQL here: a missing marker is simply written again.
    KEEP = "keep"
    # Redis is the authority: a missing or foreign marker means it lost data (enter recovering).
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    phase: Phase
    # None while writes are held: no store may assign a version during a cut-over.
    authority: Authority | None
    reads: ReadFrom
    # A write committed in SQL is copied, full state, to Redis.
    copies_to_redis: bool
    # A write in Redis appends a full-state copy to the backup stream that `f2f worker` drains into SQL.
    backup_stream: bool
    writes_held: bool
    # The stores the phase cannot serve without (readiness, preflight).
    needs_sql: bool
    needs_redis: bool
    # Untrusted Redis is repaired from SQL in the background by the serving instances.
    repairs_redis: bool
    # -- Redis faults (DESIGN.md "Redis faults in the redis phase"; docs/ARCHITECTURE.md "Redis faults")
    marker: Marker = Marker.NONE
    # A Redis error on a read is answered from the SQL backup (stale by at most the backup lag).
    reads_sql_on_redis_error: bool = False
    # A Redis miss is served from SQL and copied into Redis; a write to a missing session rehydrates it first.
    rehydrates: bool = False
    # One instance (advisory lock) copies every SQL session into Redis, then trusts Redis again.
    restores_redis: bool = False
    # After an automatic failover: apply what the backup stream still holds, report conflicts, then restore.
    reconciles: bool = False
    # Record each session's SQL version before its first write (so a newer Redis copy is a reported conflict).
    fences_writes: bool = False
    # Serving instances vote on Redis reachability; a majority unreachable fails the fleet over to SQL.
    fails_over: bool = False
    # Ready while either store serves (the redis phase reads from the SQL backup when Redis is down).
    ready_on_either: bool = False

    @property
    def holds_sessions_in(self) -> tuple[str, ...]:
        """The stores that hold sessions, the version authority (or the cut-over's source) first."""
        if self.authority is Authority.REDIS:
            return ("redis", "sql")
        if self.copies_to_redis or self.backup_stream:
            return ("sql", "redis")
        return ("sql",)

    def reads_redis(self, redis_trusted: bool) -> bool:
        """Whether a read goes to Redis first, given the trust flag in ``f2f_control``."""
        if self.reads is ReadFrom.REDIS:
            return True
        return self.reads is ReadFrom.REDIS_THEN_SQL and redis_trusted


SPECS: dict[Phase, PhaseSpec] = {
    spec.phase: spec
    for spec in (
        PhaseSpec(Phase.POSTGRES, Authority.SQL, ReadFrom.SQL, copies_to_redis=False, backup_stream=False,
                  writes_held=False, needs_sql=True, needs_redis=False, repairs_redis=False),
        PhaseSpec(Phase.DUAL_WRITE, Authority.SQL, ReadFrom.SQL, copies_to_redis=True, backup_stream=False,
                  writes_held=False, needs_sql=True, needs_redis=False, repairs_redis=True),
        PhaseSpec(Phase.DUAL, Authority.SQL, ReadFrom.REDIS_THEN_SQL, copies_to_redis=True, backup_stream=False,
                  writes_held=False, needs_sql=True, needs_redis=False, repairs_redis=True),
        # Reads continue as in dual and redis, which both read Redis; writes wait for the next phase.
        # The Redis side keeps its backup stream, so a cut-over back from redis drains nothing twice.
        PhaseSpec(Phase.CUTOVER, None, ReadFrom.REDIS_THEN_SQL, copies_to_redis=True, backup_stream=True,
                  writes_held=True, needs_sql=True, needs_redis=False, repairs_redis=False),
        PhaseSpec(Phase.REDIS, Authority.REDIS, ReadFrom.REDIS, copies_to_redis=False, backup_stream=True,
                  writes_held=False, needs_sql=False, needs_redis=True, repairs_redis=False),
    )
}


def _variants() -> dict[tuple[Phase, RedisState], PhaseSpec]:
    redis, dual = SPECS[Phase.REDIS], SPECS[Phase.DUAL]
    normal_redis = replace(redis, marker=Marker.CHECK, reads_sql_on_redis_error=True, fails_over=True,
                           ready_on_either=True)
    recovering_redis = replace(normal_redis, marker=Marker.NONE, rehydrates=True, restores_redis=True)
    return {
        (Phase.DUAL_WRITE, RedisState.OK): replace(SPECS[Phase.DUAL_WRITE], marker=Marker.KEEP),
        (Phase.DUAL, RedisState.OK): replace(dual, marker=Marker.KEEP),
        # Redis is being refilled from SQL: copies go on, reads stay on SQL (Redis untrusted), no repair
        # pass (the restore covers every session).
        (Phase.DUAL, RedisState.RECOVERING): replace(dual, repairs_redis=False, restores_redis=True),
        # Just failed over: SQL alone until the returning Redis is reconciled; no copy into Redis may
        # overwrite the evidence of a conflict before it is counted.
        (Phase.DUAL, RedisState.FAILED_OVER): replace(
            dual, reads=ReadFrom.SQL, copies_to_redis=False, repairs_redis=False, reconciles=True,
            fences_writes=True,
        ),
        (Phase.REDIS, RedisState.OK): normal_redis,
        (Phase.REDIS, RedisState.RECOVERING): recovering_redis,
        # Not reached through f2f (failover leaves redis), but never trust a Redis that was failed over from.
        (Phase.REDIS, RedisState.FAILED_OVER): recovering_redis,
    }


VARIANTS = _variants()


def spec_of(phase: Phase, state: RedisState = RedisState.OK) -> PhaseSpec:
    """The spec of ``phase`` while Redis is in ``state`` (``f2f_control.redis_state``)."""
    return VARIANTS.get((phase, state)) or SPECS[phase]


def current_spec(control: Control) -> PhaseSpec:
    return spec_of(control.phase, control.redis_state)
