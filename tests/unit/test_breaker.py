from __future__ import annotations

from f2f_cli.stores.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_lets_one_trial_through() -> None:
    clock = FakeClock()
    b = CircuitBreaker(threshold=3, reset_seconds=1.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state is BreakerState.CLOSED
    b.failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.now = 1.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # only one trial at a time
    b.success()
    assert b.state is BreakerState.CLOSED
    assert b.opened_count == 1


def test_failed_trial_reopens() -> None:
    clock = FakeClock()
    b = CircuitBreaker(threshold=1, reset_seconds=1.0, clock=clock)
    b.failure()
    clock.now = 1.5
    assert b.allow()
    b.failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_a_trial_that_never_reports_does_not_wedge_the_breaker() -> None:
    clock = FakeClock()
    b = CircuitBreaker(threshold=1, reset_seconds=1.0, clock=clock)
    b.failure()
    clock.now = 1.0
    assert b.allow()  # the caller forgets to report
    clock.now = 1.5
    assert not b.allow()
    clock.now = 2.0
    assert b.allow()
