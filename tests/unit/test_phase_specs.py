"""The phase specs state DESIGN.md's phase table; these pin the rules the runtime and the tools rely on."""

from __future__ import annotations

import pytest

from f2f_cli.control.phase import Phase, RedisState
from f2f_cli.control.specs import SPECS, Authority, Marker, spec_of


def test_every_phase_has_one_spec() -> None:
    assert set(SPECS) == set(Phase)
    assert all(spec.phase is phase for phase, spec in SPECS.items())


@pytest.mark.parametrize("phase", list(Phase))
def test_writes_are_held_exactly_when_no_store_assigns_versions(phase: Phase) -> None:
    spec = spec_of(phase)
    assert spec.writes_held == (spec.authority is None)


def test_design_table() -> None:
    assert spec_of(Phase.POSTGRES).holds_sessions_in == ("sql",)
    assert spec_of(Phase.DUAL_WRITE).holds_sessions_in == ("sql", "redis")
    assert spec_of(Phase.DUAL).holds_sessions_in == ("sql", "redis")
    assert spec_of(Phase.REDIS).holds_sessions_in == ("redis", "sql")
    assert spec_of(Phase.REDIS).authority is Authority.REDIS
    assert [p for p in Phase if spec_of(p).backup_stream] == [Phase.CUTOVER, Phase.REDIS]
    assert [p for p in Phase if spec_of(p).needs_redis] == [Phase.REDIS]
    assert [p for p in Phase if spec_of(p).repairs_redis] == [Phase.DUAL_WRITE, Phase.DUAL]


@pytest.mark.parametrize(("phase", "trusted", "expected"), [
    (Phase.POSTGRES, True, False),
    (Phase.DUAL_WRITE, True, False),
    (Phase.DUAL, True, True),
    (Phase.DUAL, False, False),
    (Phase.CUTOVER, True, True),
    (Phase.CUTOVER, False, False),
    (Phase.REDIS, True, True),
    (Phase.REDIS, False, True),
])
def test_where_reads_go(phase: Phase, trusted: bool, expected: bool) -> None:
    assert spec_of(phase).reads_redis(trusted) is expected


def test_redis_faults_are_states_of_the_spec_lookup() -> None:
    normal = spec_of(Phase.REDIS)
    assert normal.marker is Marker.CHECK and normal.fails_over and normal.reads_sql_on_redis_error
    assert not normal.rehydrates and not normal.restores_redis
    recovering = spec_of(Phase.REDIS, RedisState.RECOVERING)
    assert recovering.authority is Authority.REDIS and recovering.backup_stream
    assert recovering.rehydrates and recovering.restores_redis and recovering.marker is Marker.NONE
    failed_over = spec_of(Phase.DUAL, RedisState.FAILED_OVER)
    assert failed_over.authority is Authority.SQL and failed_over.fences_writes and failed_over.reconciles
    assert not failed_over.copies_to_redis and not failed_over.repairs_redis
    assert not failed_over.reads_redis(True)
    refilling = spec_of(Phase.DUAL, RedisState.RECOVERING)
    assert refilling.copies_to_redis and refilling.restores_redis and not refilling.repairs_redis
    assert spec_of(Phase.DUAL).marker is Marker.KEEP
    # Only the redis phase may fail the fleet over, and only authority-keeping states exist per phase.
    assert [p for p in Phase if spec_of(p).fails_over] == [Phase.REDIS]
    for phase in Phase:
        for state in RedisState:
            assert spec_of(phase, state).authority is spec_of(phase).authority
