"""The declared transitions: consistent with the phase specs, one route per move, helpful when there is none."""

from __future__ import annotations

import pytest

from f2f_cli.control.phase import Phase
from f2f_cli.control.specs import spec_of
from f2f_cli.migration import transitions
from f2f_cli.migration.transitions import TRANSITIONS


@pytest.mark.parametrize("t", TRANSITIONS, ids=lambda t: f"{t.command} from {t.source}")
def test_a_move_holds_writes_exactly_when_it_moves_the_version_authority(t: transitions.Transition) -> None:
    assert transitions.authority_moves(t) == t.holds_writes
    if t.holds_writes:
        assert spec_of(t.step("hold").sets).writes_held  # type: ignore[arg-type]
        assert t.index("hold") < t.index("open")


@pytest.mark.parametrize("t", TRANSITIONS, ids=lambda t: f"{t.command} from {t.source}")
def test_every_move_takes_the_lease_first_and_ends_by_setting_its_target(t: transitions.Transition) -> None:
    assert t.checks[0] == "lease"
    setting = [s for s in t.steps if s.sets is not None]
    if t.target is not None:
        assert setting[-1].sets is t.target
    assert len({s.key for s in t.steps}) == len(t.steps)


def test_routes_and_refusals() -> None:
    assert transitions.route(Phase.REDIS, Phase.DUAL).command == "rollback"  # type: ignore[union-attr]
    assert transitions.route(Phase.DUAL_WRITE, Phase.DUAL).command == "to dual --resume"  # type: ignore[union-attr]
    assert transitions.route(Phase.REDIS, Phase.POSTGRES) is None
    assert transitions.no_route(Phase.REDIS, Phase.POSTGRES) == (
        "no direct move from redis to postgres: run 'f2f migrate rollback' (redis → dual), "
        "then 'f2f migrate rollback' (dual → postgres)")
    assert "'f2f migrate to dual' (postgres → dual), then 'f2f migrate to redis'" in transitions.no_route(
        Phase.POSTGRES, Phase.REDIS)
    with pytest.raises(KeyError):
        TRANSITIONS[0].step("no-such-step")
