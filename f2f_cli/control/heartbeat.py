"""The heartbeat of one ``f2f serve`` process in ``f2f_instances``: which phase and epoch it acknowledges.

The acknowledged epoch lags the served one until the previous phase's writes have drained
(``control.switch``): ``f2f migrate`` reads it as "this instance has seen epoch N" (invariant 4).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.control import phase as control
from f2f_cli.control.phase import Phase


class Heartbeat:
    def __init__(self, engine: AsyncEngine, instance_id: str, kind: str, *,
                 redis_contact: Callable[[], datetime | None]) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.kind = kind
        self.started_at = utcnow()
        self.acknowledged_epoch = 0
        self.acknowledged_phase = Phase.POSTGRES
        # The failover vote counts from the last Redis contact, which the Redis duties track.
        self._redis_contact = redis_contact

    async def acknowledge(self, phase: Phase, epoch: int) -> None:
        self.acknowledged_phase, self.acknowledged_epoch = phase, epoch
        await self.beat()

    async def beat(self) -> None:
        await control.heartbeat(
            self.engine,
            self.instance_id,
            self.kind,
            self.acknowledged_phase.value,
            self.acknowledged_epoch,
            self.started_at,
            redis_ok_at=self._redis_contact(),
        )
