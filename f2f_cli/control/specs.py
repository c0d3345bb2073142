"""What each phase means, as data: who assigns versions, where reads, writes and copies go.

Every part of f2f that behaves differently per phase (the runtime of ``f2f serve``,
the operator commands, readiness, the migrator) reads these specs instead of
naming phases, so a rule is stated once and a new state is one more row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from f2f_cli.control.phase import Control, Phase


class Authority(StrEnum):
    """The store that assigns session versions (DESIGN.md: one version authority per phase)."""

    SQL = "sql"
    REDIS = "redis"


class ReadFrom(StrEnum):
    SQL = "sql"
    # Redis first while it is trusted; SQL on a miss, an error or while Redis is untrusted (read-repair).
    REDIS_THEN_SQL = "redis-then-sql"
    REDIS = "redis"


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


def spec_of(phase: Phase) -> PhaseSpec:
    return SPECS[phase]


def current_spec(control: Control) -> PhaseSpec:
    return SPECS[control.phase]
