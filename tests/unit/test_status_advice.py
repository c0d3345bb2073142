"""``f2f migrate status``'s ``next:`` rows: incidents first, else the routine step of the phase (issue #32 point 6)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from f2f_cli.clock import utcnow
from f2f_cli.control.phase import Control, Phase, RedisState
from f2f_cli.migration.status import ROUTINE, Faults, HistoryEntry, Status, advice
from f2f_cli.redis.shards import Shard, ShardState

NOW = utcnow()


def _status(phase: Phase, **kw: object) -> Status:
    control = Control(phase=phase, epoch=3, changed_at=NOW - timedelta(minutes=5), changed_by="ops@host",
                      redis_trusted=True, **kw.pop("control", {}))  # type: ignore[arg-type]
    return Status(control=control, instances=[], workers_live=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", [Phase.POSTGRES, Phase.DUAL, Phase.REDIS])
def test_a_healthy_phase_gets_its_routine_next_step(phase: Phase) -> None:
    rows = advice(_status(phase), NOW)
    assert [(r.code, r.incident) for r in rows] == [(f"routine-{phase}", False)]
    assert rows[0].text == ROUTINE[phase] and "f2f " in rows[0].text  # a command to run, not only a description


def test_every_phase_has_a_routine_line() -> None:
    assert set(ROUTINE) == set(Phase)


def test_an_incident_replaces_the_routine_line_most_urgent_first() -> None:
    st = _status(Phase.CUTOVER, control={"cutover_from": Phase.DUAL, "cutover_to": Phase.REDIS,
                                         "hold_deadline": NOW + timedelta(seconds=20)})
    st.workers_live = 0
    rows = advice(st, NOW)
    assert rows[0].code == "writes-held" and rows[0].text.startswith("WRITES HELD")
    assert all(r.incident for r in rows) and not any(r.code.startswith("routine") for r in rows)


def test_redis_without_a_worker_and_a_lost_shard_are_incidents() -> None:
    st = _status(Phase.REDIS, shards=[Shard("127.0.0.1:7000", 5461, ShardState.LOST),
                                      Shard("127.0.0.1:7001", 5461, ShardState.OK)])
    st.workers_live, st.backup_backlog = 0, 12
    codes = [r.code for r in advice(st, NOW)]
    assert codes == ["no-worker", "shard"]


def test_a_failed_attempt_and_a_redis_fault_say_what_to_do() -> None:
    st = _status(Phase.DUAL, history=[HistoryEntry(NOW, "ops@host", "to redis failed", "dual", "redis", 3,
                                                   reason="verify found 2 differences")])
    st.faults = Faults(RedisState.RECOVERING.value, NOW, 4, 10, 100, 0, "f2f_failover_conflicts", [])
    rows = advice(st, NOW)
    assert [r.code for r in rows] == ["last-attempt", "redis-fault"]
    assert "verify found 2 differences" in rows[0].text and "10/100" in rows[1].text
