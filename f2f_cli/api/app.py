"""The app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from f2f_cli.api import errors, openapi
from f2f_cli.api.responses import JSONResponse
from f2f_cli.api.routes import health, recipes, sessions
from f2f_cli.api.services import Services
from f2f_cli.settings import Settings, get_settings


def create_app(settings: Settings) -> Starlette:
    """A new app for ``settings``; stores connect in the lifespan, not here."""
    document = openapi.build_openapi(
        settings.api_prefix, [*openapi.session_operations(), *openapi.recipe_operations()], openapi.health_operations()
    )

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        services = Services(settings)
        app.state.services = services
        await services.start()
        try:
            yield {}
        finally:
            await services.stop()

    api_routes: list[BaseRoute] = [*sessions.routes(), *recipes.routes()]
    routes: list[BaseRoute] = [
        *health.routes(),
        Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
    ]
    if settings.api_prefix:
        routes.append(Mount(settings.api_prefix, routes=api_routes))
    else:
        routes.extend(api_routes)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=errors.HANDLERS)
    app.state.settings = settings
    return app


def app_from_environment() -> Starlette:
    """The uvicorn factory: settings from F2F_* at worker start."""
    return create_app(get_settings())
