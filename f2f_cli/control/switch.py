"""The store switch of one ``f2f serve`` process, and the drain that makes it safe to acknowledge.

A switch replaces the store between requests; each write is counted under the switch number it started
in, so the switch can wait until every write of the previous number has finished (invariant 4: an epoch
is acknowledged only once nothing still writes under the phase before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from f2f_cli.domain.store import SessionStore

log = logging.getLogger("f2f.runtime")


class StoreSwitch:
    def __init__(self, store: SessionStore, *, drain_timeout: float) -> None:
        self.store = store
        self.drain_timeout = drain_timeout
        # Counts this process's store switches; unrelated to the Redis generation marker.
        self.switch_number = 0
        self._inflight: dict[int, int] = {}
        self._drained = asyncio.Condition()
        self._changed = asyncio.Event()

    def inflight(self, switch_number: int) -> int:
        return self._inflight.get(switch_number, 0)

    def replace(self, store: SessionStore) -> None:
        """Same authority, another store (a new Redis state): nothing to drain, so no new switch number."""
        self.store = store

    async def switch_to(self, store: SessionStore) -> None:
        """Serve ``store`` from now on, then wait (at most ``drain_timeout``) for the writes of the previous
        switch to finish."""
        previous = self.switch_number
        self.store = store
        self.switch_number += 1
        # An Event per switch: set once, it wakes every write waiting for this switch and is never reused.
        self._changed.set()
        self._changed = asyncio.Event()
        await self._wait_drained(previous)

    async def wait_changed(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the next switch."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _wait_drained(self, switch_number: int) -> None:
        async def drained() -> None:
            async with self._drained:
                await self._drained.wait_for(lambda: self._inflight.get(switch_number, 0) == 0)

        try:
            await asyncio.wait_for(drained(), self.drain_timeout)
        except TimeoutError:
            log.warning("writes of the previous phase still running after %.0fs", self.drain_timeout)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[SessionStore]:
        """The current store, counted under the current switch number until the write is done."""
        number = self.switch_number
        self._inflight[number] = self._inflight.get(number, 0) + 1
        try:
            yield self.store
        finally:
            self._inflight[number] -= 1
            if self._inflight[number] == 0:
                del self._inflight[number]
                async with self._drained:
                    self._drained.notify_all()
