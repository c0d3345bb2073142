"""One route per path, whatever the number of methods it takes.

Starlette answers ``405`` with the ``Allow`` of the first route whose path matched; with one route per
method, ``Allow`` named only that route's methods. A single route per path makes ``405`` and
``OPTIONS`` list everything the path supports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class _Resource(Route):
    """A Route whose 405 lists its methods in a stable, sorted order (Starlette joins a set)."""

    allow = ""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        await super().handle(scope, receive, send)


def resource(path: str, name: str, **handlers: Endpoint) -> Route:
    """A route serving ``handlers`` (``GET=..., POST=...``) and answering ``OPTIONS`` with ``Allow``."""
    table = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in table:
        table["HEAD"] = table["GET"]
    allow = ", ".join(sorted({*table, "OPTIONS"}))

    async def options(_request: Request) -> Response:
        return Response(status_code=204, headers={"Allow": allow})

    table["OPTIONS"] = options

    async def dispatch(request: Request) -> Response:
        # The Route only lets the methods in ``table`` through; anything else is its 405.
        return await table[request.method](request)

    route = _Resource(path, dispatch, methods=list(table), name=name)
    route.allow = allow
    return route
