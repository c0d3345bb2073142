"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from f2f_cli.api.metrics import CONTENT_TYPE, Metrics
from f2f_cli.api.responses import JSONResponse
from f2f_cli.api.schemas import HealthOut
from f2f_cli.api.services import Services


async def healthz(_request: Request) -> Response:
    """The process is up and serving; touches no store (a dead database must not restart pods)."""
    return JSONResponse(HealthOut(status="ok"))


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    ready, checks = await services.readiness()
    return JSONResponse(
        HealthOut(status="ready" if ready else "unavailable", checks=checks, phase=services.phase),
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    """Prometheus text format; every worker's figures under ``f2f serve --workers N``."""
    registry: Metrics = request.app.state.metrics
    await registry.refresh(request.app.state.services)
    return Response(registry.exposition(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/readyz", readyz, methods=["GET"], name="readyz"),
        Route("/metrics", metrics, methods=["GET"], name="metrics"),
    ]
