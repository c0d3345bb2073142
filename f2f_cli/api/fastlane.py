"""The session endpoints that carry the traffic, served as plain ASGI.

``GET {prefix}/sessions/{id}``, ``GET`` and ``POST {prefix}/sessions/{id}/ingredients`` are most of
what the app sends. Through Starlette each one pays for its error middlewares, the router trying
routes in turn, a ``Request`` and a ``Response`` object and the edge middleware's header rewrite:
about a fifth of a bare app's whole request. Here they are matched with one prefix test and
answered with one precomputed header list, and everything a request gets on the Starlette path
stays: the request id, the client address, the security headers, the JSON errors with their
statuses and ``Retry-After``, the HTTP metrics under the route template and the access line
(:class:`f2f_cli.api.middleware.Edge`), and the handlers themselves (``api/routes/sessions.py``).

Anything else about a request sends it the Starlette way, where the same handlers answer it:
another path or method (``HEAD``, ``OPTIONS``, ``DELETE``), a request with an ``Origin`` when CORS
is configured, the metrics port, a ``root_path``. The ``current`` alias (the session the
``X-Session-ID`` header or the cookie names) is resolved by the same function either way.

A middleware added to the app that this lane does not know of (``LANE_KNOWS`` in ``api/app.py``) would be
skipped on these routes, so the app turns the lane off at its first call and logs a WARNING saying which.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.types import Receive, Scope, Send

from f2f_cli.api.clientip import client_address
from f2f_cli.api.errors import describe_f2f_error, log_unexpected
from f2f_cli.api.middleware import (
    CACHE_CONTROL,
    CLIENT_CLOSED,
    REQUEST_ID_BYTES,
    SECURITY_HEADERS,
    Edge,
    request_id_or_new,
)
from f2f_cli.api.responses import body_too_large, check_json_head, decode_json
from f2f_cli.api.routes.sessions import (
    CURRENT,
    SESSION_HEADER,
    add_names,
    read_ingredients,
    read_session,
    resolve_session_id,
)
from f2f_cli.api.schemas import IngredientsIn
from f2f_cli.api.services import Services
from f2f_cli.domain.ids import check_session_id
from f2f_cli.errors import F2FError
from f2f_cli.logs import request_id_var
from f2f_cli.settings import Settings

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
_SESSION_HEADER = SESSION_HEADER.encode()
# What every answer here carries after its own content headers and request id.
_TRAILING_HEADERS = (*SECURITY_HEADERS, CACHE_CONTROL)

Operation = Callable[[Services, str, Receive, bytes | None, bytes | None], Awaitable[msgspec.Struct]]


class SessionFastLane:
    def __init__(self, settings: Settings, edge: Edge, services: Callable[[], Services | None]) -> None:
        self._base = f"{settings.api_prefix}/sessions/"
        self._session_route = f"{settings.api_prefix}/sessions/{{session_id}}"
        self._ingredients_route = f"{self._session_route}/ingredients"
        self._cors = bool(settings.cors_origins)
        self._metrics_port = settings.metrics_port
        self._max_body = settings.max_body_bytes
        self._edge = edge
        self._trusted = edge.trusted_proxies
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve the request if it is one of this lane's; False (nothing read, nothing sent) if not."""
        started = time.perf_counter()
        path: str = scope["path"]
        if not path.startswith(self._base) or scope.get("root_path"):
            return False
        session_id, slash, tail = path[len(self._base):].partition("/")
        method: str = scope["method"]
        operation: Operation
        if not slash:
            if method != "GET":
                return False
            operation, route = self._get, self._session_route
        elif tail == "ingredients" and (method == "GET" or method == "POST"):
            operation = self._list if method == "GET" else self._add
            route = self._ingredients_route
        else:
            return False
        if not session_id:
            return False
        if self._metrics_port is not None and (scope.get("server") or (None, None))[1] == self._metrics_port:
            return False
        services = self._services()
        if services is None:
            return False
        given_id: str | None = None
        forwarded: list[str] = []
        content_type: bytes | None = None
        declared: bytes | None = None
        named: bytes | None = None
        cookies: list[bytes] = []
        # One pass over the raw headers; as in EdgeMiddleware the last X-Request-ID counts, and as in
        # Starlette's Headers the first Content-Type, Content-Length and X-Session-ID, and every Cookie.
        for name, value in scope["headers"]:
            if name == REQUEST_ID_BYTES:
                given_id = value.decode("latin-1")
            elif name == _SESSION_HEADER:
                if named is None:
                    named = value
            elif name == b"cookie":
                cookies.append(value)
            elif name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length":
                if declared is None:
                    declared = value
            elif name == b"x-forwarded-for":
                if self._trusted:
                    forwarded.append(value.decode("latin-1"))
            elif name == b"origin" and self._cors:
                return False  # CORS headers are CORSMiddleware's business
        if session_id == CURRENT:
            # The alias resolves inside the request, so that naming no session is its 400 like any other.
            operation = _current(operation, named, cookies)
        await self._serve(scope, receive, send, started, method, route, services, session_id, operation,
                          given_id, forwarded, content_type, declared)
        return True

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, started: float, method: str, route: str,
        services: Services, session_id: str, operation: Operation, given_id: str | None, forwarded: list[str],
        content_type: bytes | None, declared: bytes | None,
    ) -> None:
        request_id = request_id_or_new(given_id)
        token = request_id_var.set(request_id)
        peer = scope.get("client")
        address = client_address(peer[0] if peer else None, forwarded, self._trusted)
        rid = request_id.encode("latin-1")
        status = 500
        response_started = False
        # Traced as EdgeMiddleware traces the Starlette routes: one server span, named at the end.
        tracing = self._edge.tracing
        span = tracing.begin_request(method, scope["headers"]) if tracing is not None else None
        try:
            extra: dict[str, str] | None = None
            try:
                body = _encode(await operation(services, session_id, receive, content_type, declared))
                status = 200
            except F2FError as exc:
                status, error, extra = describe_f2f_error(exc, method, route)
                body = _encode(error)
            response_started = True
            await _respond(send, status, body, rid, extra)
        except ClientDisconnect:
            # As in EdgeMiddleware: the client left while its body was arriving; nginx's 499, no trace.
            status = CLIENT_CLOSED
        except Exception as exc:
            if response_started:
                raise
            status = 500
            await _respond(send, status, _encode(log_unexpected(method, route, exc)), rid, None)
        finally:
            self._edge.finish(request_id, method, route, status, started, address,
                              span.end(route, status) if span is not None else None)
            request_id_var.reset(token)

    # -- the operations: the same handlers as the Starlette routes ----------------------------------

    @staticmethod
    async def _get(services: Services, session_id: str, _receive: Receive, _type: bytes | None,
                   _declared: bytes | None) -> msgspec.Struct:
        return await read_session(services, session_id)

    @staticmethod
    async def _list(services: Services, session_id: str, _receive: Receive, _type: bytes | None,
                    _declared: bytes | None) -> msgspec.Struct:
        return await read_ingredients(services, session_id)

    async def _add(self, services: Services, session_id: str, receive: Receive, content_type: bytes | None,
                   declared: bytes | None) -> msgspec.Struct:
        # The same order of checks as the Starlette route: the id, then the body's head, then the body.
        check_session_id(session_id)
        check_json_head(
            content_type.decode("latin-1") if content_type is not None else None,
            declared.decode("latin-1") if declared is not None else None,
            self._max_body,
        )
        raw = await _read_body(receive, self._max_body)
        return await add_names(services, session_id, decode_json(raw, IngredientsIn))


def _current(operation: Operation, named: bytes | None, cookie_headers: list[bytes]) -> Operation:
    """``operation`` on the session the ``current`` alias names (``resolve_session_id``'s rules)."""

    def cookies() -> dict[str, str]:
        jar: dict[str, str] = {}
        for header in cookie_headers:  # Starlette's way: every Cookie header, later ones winning
            jar.update(cookie_parser(header.decode("latin-1")))
        return jar

    async def on_current(services: Services, alias: str, receive: Receive, content_type: bytes | None,
                         declared: bytes | None) -> msgspec.Struct:
        header = named.decode("latin-1") if named is not None else None
        return await operation(services, resolve_session_id(alias, header, cookies), receive, content_type,
                               declared)

    return on_current


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, 413 past ``limit`` bytes; ClientDisconnect if the client leaves first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, request_id: bytes, extra: dict[str, str] | None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), (REQUEST_ID_BYTES, request_id)]
    if extra:
        headers.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items())
    headers.extend(_TRAILING_HEADERS)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
