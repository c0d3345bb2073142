"""A small circuit breaker, so a dead Redis costs one timeout now and then, not one per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_seconds`` lets one trial through."""

    def __init__(
        self, *, threshold: int = 3, reset_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        now = self._clock()
        # One trial at a time; a trial whose caller never reported back frees the slot after a while.
        if state is BreakerState.HALF_OPEN and (
            self._trial_started is None or now - self._trial_started >= self.reset_seconds
        ):
            self._trial_started = now
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started = None

    def failure(self) -> None:
        self._failures += 1
        self._trial_started = None
        if self._opened_at is not None or self._failures >= self.threshold:
            if self._opened_at is None:
                self.opened_count += 1
            self._opened_at = self._clock()
