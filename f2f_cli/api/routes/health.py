"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from f2f_cli.api.metrics import CONTENT_TYPE, SCRAPE_MAX_WAIT, Metrics
from f2f_cli.api.ratelimit import RateLimited
from f2f_cli.api.responses import JSONResponse
from f2f_cli.api.routing import resource
from f2f_cli.api.schemas import HealthOut
from f2f_cli.api.services import Services


async def healthz(request: Request) -> Response:
    """The process is up and serving; touches no store (a dead database must not restart pods).

    ``phase`` is the phase this process serves, as its runtime last read it (memory, no store call).
    """
    return JSONResponse(HealthOut(status="ok", phase=request.app.state.services.phase))


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    ready, checks = await services.readiness()
    # "degraded": ready (200), but the phase uses Redis and F2F_REDIS_URL is not set (Services.redis_missing).
    status = "unavailable" if not ready else "degraded" if services.redis_missing() else "ready"
    return JSONResponse(HealthOut(status=status, checks=checks, phase=services.phase),
                        status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format; every worker's figures under ``f2f serve --workers N``."""
    registry: Metrics = request.app.state.metrics
    wait = registry.scrape_slot()
    if wait is None:
        # A flood: it waits the longest a scrape may wait, then is told to come back.
        await asyncio.sleep(SCRAPE_MAX_WAIT)
        raise RateLimited("/metrics is being scraped too often", retry_after=1)
    if wait:
        await asyncio.sleep(wait)
    if not registry.fresh_enough():
        await registry.refresh(request.app.state.services)
    return Response(registry.exposition(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [
        resource("/healthz", "healthz", GET=healthz),
        resource("/readyz", "readyz", GET=readyz),
        resource("/metrics", "metrics", GET=metrics),
    ]
