"""The app factory."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, compile_path
from starlette.types import Receive, Scope, Send

from f2f_cli import tracing
from f2f_cli.api import errors, openapi
from f2f_cli.api.fastlane import SessionFastLane
from f2f_cli.api.metrics import Metrics
from f2f_cli.api.middleware import REQUEST_ID_HEADER, Edge, EdgeMiddleware, MetricsPortSplit
from f2f_cli.api.responses import JSONResponse, error_response
from f2f_cli.api.routes import health, recipes, sessions
from f2f_cli.api.routes.sessions import SESSION_HEADER
from f2f_cli.api.routing import resource
from f2f_cli.api.services import Services
from f2f_cli.heap import freeze_long_lived
from f2f_cli.logs import AccessLog
from f2f_cli.settings import Settings, get_settings


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    # A new response each time: the edge middleware appends its headers to the one it is given.
    await error_response(404, "not_found", "no such endpoint")(scope, receive, send)


log = logging.getLogger(__name__)

# The middleware whose work the fast lane does itself (api/fastlane.py). A middleware added to the app that is not
# one of these would be skipped for the lane's routes, so the lane then turns itself off.
LANE_KNOWS: frozenset[object] = frozenset({EdgeMiddleware, MetricsPortSplit, CORSMiddleware})


class F2FApp(Starlette):
    """Starlette, with the session endpoints that carry the traffic served first by the fast lane."""

    fast_lane: SessionFastLane | None = None
    _lane_checked = False

    def unknown_middleware(self) -> list[str]:
        """The app's middleware the fast lane does not know, by name (empty: the lane may serve)."""
        return [getattr(m.cls, "__qualname__", repr(m.cls)) for m in self.user_middleware if m.cls not in LANE_KNOWS]

    def _check_lane(self) -> SessionFastLane | None:
        # Once, at the first request: middleware can be added after create_app until the stack is built.
        self._lane_checked = True
        unknown = self.unknown_middleware()
        if unknown and self.fast_lane is not None:
            log.warning("fast lane off: the app's middleware %s is unknown to it and would be skipped on the "
                        "session routes; every request takes the Starlette path", ", ".join(unknown))
            self.fast_lane = None
        return self.fast_lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.fast_lane if self._lane_checked else self._check_lane()
        if lane is not None and scope["type"] == "http" and await lane(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def _middleware(settings: Settings, edge: Edge) -> list[Middleware]:
    stack = [Middleware(EdgeMiddleware, edge=edge, on_error=errors.unexpected_error)]
    if settings.metrics_port is not None:
        stack.append(
            Middleware(
                MetricsPortSplit,
                metrics_port=settings.metrics_port,
                metrics_path="/metrics",
                not_found=_not_found,
            )
        )
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Content-Type", SESSION_HEADER, REQUEST_ID_HEADER],
                expose_headers=["Location", "Retry-After", REQUEST_ID_HEADER],
                # The session cookie must never be readable by any origin at all.
                allow_credentials=not wildcard,
                max_age=600,
            )
        )
    return stack


def create_app(settings: Settings) -> F2FApp:
    """A new app for ``settings``; stores connect in the lifespan, not here."""
    document = openapi.build_openapi(
        settings.api_prefix,
        [*openapi.session_operations(settings.api_prefix), *openapi.recipe_operations()],
        openapi.health_operations(),
        max_ingredient_length=settings.max_ingredient_length,
    )
    metrics = Metrics.from_environment(settings.metrics_refresh_seconds, settings.metrics_cache_seconds)
    access_log = AccessLog(settings.log_format)
    running: dict[str, Services] = {}

    def current_phase() -> str:
        services = running.get("services")
        return services.phase if services is not None else "starting"

    edge = Edge(metrics=metrics, phase=current_phase, trusted_proxies=settings.trusted_proxies,
                access_log=access_log)

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Before the stores connect: the redis-py and psycopg instrumentations wrap new connections.
        edge.tracing = tracing.start("serve")
        services = Services(
            settings, store_observer=metrics.observe_store, on_index_loaded=metrics.recommender_index_loaded
        )
        app.state.services = services
        running["services"] = services
        if settings.redis_url is not None:
            metrics.set_backup_lag_source(services.backup_lag)
        await services.start()
        # Everything allocated so far (modules, the recipe index) lives as long as the process.
        freeze_long_lived()
        sampler = asyncio.create_task(tracing.untraced(metrics.run_sampler(services)), name="f2f-metrics-sampler")
        try:
            yield {}
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await services.stop()
            metrics.process_exiting()
            access_log.flush()
            if edge.tracing is not None:
                edge.tracing = None
                tracing.shutdown()

    routes: list[BaseRoute] = [
        # The session routes first (the router tries routes in order and they carry the traffic); the
        # prefix is written into each path rather than mounted: a Mount is one more match per request.
        *_prefixed(settings.api_prefix, [*sessions.routes(), *recipes.routes()]),
        *health.routes(),
        resource("/openapi.json", "openapi", GET=openapi_json),
    ]
    app = F2FApp(
        routes=routes,
        middleware=_middleware(settings, edge),
        lifespan=lifespan,
        exception_handlers=errors.HANDLERS,
    )
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access_log = access_log
    app.fast_lane = SessionFastLane(settings, edge, lambda: running.get("services"))
    return app


def _prefixed(prefix: str, routes: list[Route]) -> list[Route]:
    """The routes with ``prefix`` written into their paths (same class, same handlers, same methods)."""
    if not prefix:
        return routes
    moved = []
    for route in routes:
        twin = copy.copy(route)
        twin.path = prefix + route.path
        twin.path_regex, twin.path_format, twin.param_convertors = compile_path(twin.path)
        moved.append(twin)
    return moved


def app_from_environment() -> F2FApp:
    """The uvicorn factory: settings from F2F_* at worker start."""
    return create_app(get_settings())
