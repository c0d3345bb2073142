"""A clock tests can move forward: real time plus an offset, so order-by-time still holds between calls."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from f2f_cli.clock import utcnow


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def wait(store: object, seconds: float) -> None:
    """Let ``seconds`` pass for ``store``: at once on a store built with a ShiftedClock, on the wall clock otherwise.

    Redis expires keys by its own clock, so stores backed by a server can only be waited for.
    """
    clock = getattr(store, "test_clock", None)
    if isinstance(clock, ShiftedClock):
        clock.advance(seconds)
        await asyncio.sleep(0)
    else:
        await asyncio.sleep(seconds)
