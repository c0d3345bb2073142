"""What a phase-changing ``f2f migrate`` keeps alive while it runs: its lease and its cut-over deadline.

Both are renewed from one background task every ``beat`` seconds. A renewal that finds the lease
taken over, or the cut-over already ended by the fleet (its deadline lapsed), is remembered rather
than raised: the migrator checks ``refusal()`` before each phase change, where stopping is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control import lease
from f2f_cli.control import phase as control
from f2f_cli.errors import F2FError


class KeepAlive:
    def __init__(self, engine: AsyncEngine, *, beat: float, hold_for: timedelta, step: Callable[[], str]) -> None:
        self.engine = engine
        self.beat = beat
        self.hold_for = hold_for
        # The lease row shows the migrator's current step, so a refusal can name it.
        self._step = step
        self.lease: lease.Lease | None = None
        self.lease_lost = False
        # The epoch of the cut-over this run holds, if any: its deadline is renewed with the lease.
        self.hold_epoch: int | None = None
        self.hold_lapsed = False

    async def acquire(self, *, actor: str, command: str, stale_after: timedelta, take_over: bool) -> None:
        """Take the lease; raises ``lease.LeaseHeld`` when another run has it."""
        self.lease = await lease.acquire(self.engine, actor=actor, command=command, stale_after=stale_after,
                                         take_over=take_over)
        self.lease_lost = False

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Renew the lease (taken by ``acquire``) until the block ends, then release it."""
        task = asyncio.create_task(self._renew_loop(), name="f2f-migrator-keepalive")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, F2FError):
                await task
            if self.lease is not None:
                token, self.lease = self.lease.token, None
                with contextlib.suppress(F2FError):
                    await asyncio.shield(lease.release(self.engine, token))

    def hold(self, epoch: int) -> None:
        self.hold_epoch, self.hold_lapsed = epoch, False

    def end_hold(self) -> None:
        self.hold_epoch = None

    def refusal(self) -> str | None:
        """Why this run may not change the phase any more, or None."""
        if self.lease_lost:
            return "this run lost the migrator lease (another run took it over); stopped"
        if self.hold_epoch is not None and self.hold_lapsed:
            return "the cut-over deadline lapsed before this run could renew it; the fleet went back by itself"
        return None

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.beat)
            with contextlib.suppress(F2FError):
                if self.lease is not None and not await lease.renew(self.engine, self.lease.token, step=self._step()):
                    self.lease_lost = True
                if self.hold_epoch is not None and not await control.renew_hold(
                        self.engine, self.hold_epoch, self.hold_for):
                    self.hold_lapsed = True
