"""Waiting until every live instance has acknowledged an epoch (invariant 4)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.control import phase as control
from f2f_cli.control.phase import Instance, live_window
from f2f_cli.errors import PreconditionFailed

__all__ = ["live_window", "wait_for_epoch"]


async def wait_for_epoch(
    engine: AsyncEngine, epoch: int, *, limit: float, window: timedelta, kind: str = "serve"
) -> tuple[list[Instance], float]:
    """Block until every live ``kind`` instance reports ``epoch`` or newer; (instances, seconds waited).

    Raises PreconditionFailed naming the laggards on timeout.
    """
    start = time.monotonic()
    while True:
        instances = await control.live_instances(engine, within=window, kind=kind)
        laggards = [i for i in instances if i.epoch_seen < epoch]
        if not laggards:
            return instances, time.monotonic() - start
        if time.monotonic() - start >= limit:
            names = ", ".join(f"{i.host}:{i.pid} (epoch {i.epoch_seen})" for i in laggards)
            raise PreconditionFailed(
                f"{len(laggards)} instance(s) did not acknowledge epoch {epoch} within {limit:.0f}s: {names}"
            )
        await asyncio.sleep(0.05)
