"""The outermost middleware: request id, client address, security headers, metrics, access log.

One pure-ASGI layer rather than several, because every request pays for each
layer; it reads the raw header lists once and appends bytes, and hands the
access line to :class:`f2f_cli.logs.AccessLog` (buffered, written in batches).
It also renders unexpected exceptions itself (with the app's 500 handler), so a
500 carries the request id and the security headers too.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from f2f_cli.api.clientip import Address, client_address
from f2f_cli.api.metrics import Metrics
from f2f_cli.logs import AccessLog, request_id_var
from f2f_cli.settings import IPNetwork

if TYPE_CHECKING:
    from f2f_cli.otel import OtelTracing

REQUEST_ID_HEADER = "x-request-id"
CLIENT_ADDRESS_KEY = "f2f.client_address"
# Printable, no spaces or quotes: safe to echo in a header and to write in a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# nginx's "client closed request": the status the access line shows when the client left mid-request.
CLIENT_CLOSED = 499

# The API serves JSON only: nothing may be framed, sniffed, scripted or sent on as a referrer.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

ErrorRenderer = Callable[[Request, Exception], Awaitable[Response]]
REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
CACHE_CONTROL = (b"cache-control", b"no-store")


# Rendering an address costs more than looking it up: a process sees few client addresses.
_address_text = functools.lru_cache(maxsize=4096)(str)


def request_id_from(headers: Headers) -> str:
    """The caller's ``X-Request-ID`` if it is sane, else a new random one."""
    return request_id_or_new(headers.get(REQUEST_ID_HEADER))


def request_id_or_new(given: str | None) -> str:
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    # Correlation, not a secret: a PRNG id avoids a getrandom() syscall on every request.
    return f"{random.getrandbits(128):032x}"


def route_template(scope: Scope, entry_root_path: str) -> str:
    """The matched route as written in the route table (``/v1/sessions/{session_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or isinstance(route, Mount) or not isinstance(path, str):
        return UNMATCHED
    # Mount adds its prefix to root_path; the route's own path is relative to it.
    mounted = str(scope.get("root_path", ""))[len(entry_root_path):]
    return mounted + path


class Edge:
    """The bookkeeping every request gets, whichever way it is served (:class:`EdgeMiddleware`, or
    ``api/fastlane.py`` for the hottest session endpoints): one instance per app."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        phase: Callable[[], str],
        trusted_proxies: Sequence[IPNetwork],
        access_log: AccessLog,
    ) -> None:
        self.metrics = metrics
        self.phase = phase
        self.trusted_proxies = tuple(trusted_proxies)
        self.access_log = access_log
        # Set by the app's lifespan when OTEL_* turns tracing on (f2f_cli/tracing.py); None costs one test.
        self.tracing: OtelTracing | None = None

    def finish(
        self, request_id: str, method: str, route: str, status: int, started: float, address: Address | None,
        trace_id: str | None = None,
    ) -> None:
        """Metrics and the access line of a request that has ended (``started``: ``perf_counter()``)."""
        elapsed = time.perf_counter() - started
        if method not in _METHODS:
            method = "OTHER"
        if status == CLIENT_CLOSED:
            self.metrics.observe_disconnect(method, route)
        else:
            self.metrics.observe_request(method, route, status, elapsed)
        self.access_log.record(
            request_id, method, route, status, elapsed, self.phase(),
            _address_text(address) if address is not None else None, trace_id,
        )


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, edge: Edge, on_error: ErrorRenderer) -> None:
        self.app = app
        self.edge = edge
        self.trusted_proxies = edge.trusted_proxies
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # One pass over the raw headers for the two this layer reads (Headers() would decode every name twice).
        given_id: str | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == REQUEST_ID_BYTES:
                given_id = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self.trusted_proxies:
                forwarded.append(value.decode("latin-1"))
        request_id = request_id_or_new(given_id)
        token = request_id_var.set(request_id)
        peer = scope.get("client")
        address = client_address(peer[0] if peer else None, forwarded, self.trusted_proxies)
        scope[CLIENT_ADDRESS_KEY] = address
        entry_root_path = scope.get("root_path", "")
        status = 500
        response_started = False
        rid_header = (REQUEST_ID_BYTES, request_id.encode("latin-1"))
        tracing = self.edge.tracing
        span = tracing.begin_request(scope["method"], scope["headers"]) if tracing is not None else None

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = message.setdefault("headers", [])
                if not isinstance(headers, list):
                    headers = message["headers"] = list(headers)
                # Starlette writes header names in lower case; a route's own header wins over the defaults.
                present = {name for name, _ in headers}
                headers.append(rid_header)
                for pair in SECURITY_HEADERS:
                    if pair[0] not in present:
                        headers.append(pair)
                if b"cache-control" not in present:
                    # Session state is private and changes on every write.
                    headers.append(CACHE_CONTROL)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            # The client went away while its body was arriving: nobody is left to answer, and it is
            # not the server's fault. Counted on its own and logged as nginx's 499, without a trace.
            status = CLIENT_CLOSED
        except Exception as exc:
            if response_started:
                raise
            response = await self.on_error(Request(scope), exc)
            await response(scope, receive, send_with_headers)
        finally:
            route = route_template(scope, entry_root_path)
            self.edge.finish(request_id, scope["method"], route, status, started, address,
                             span.end(route, status) if span is not None else None)
            request_id_var.reset(token)


class MetricsPortSplit:
    """With ``F2F_METRICS_PORT``: that port serves ``/metrics`` only, and the API port everything else.

    Sits inside :class:`EdgeMiddleware`, so its 404s carry the request id and security headers like any
    other. The port is the local one the connection arrived on (``scope["server"]``).
    """

    def __init__(self, app: ASGIApp, *, metrics_port: int, metrics_path: str, not_found: ASGIApp) -> None:
        self.app = app
        self.metrics_port = metrics_port
        self.metrics_path = metrics_path
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_metrics_port = server is not None and server[1] == self.metrics_port
            if on_metrics_port != (scope["path"] == self.metrics_path):
                await self.not_found(scope, receive, send)
                return
        await self.app(scope, receive, send)
