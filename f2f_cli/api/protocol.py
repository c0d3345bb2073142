"""The HTTP/1.1 connection handler ``f2f serve`` runs: uvicorn's httptools protocol plus request-head limits
and deadlines for requests that are still arriving.

What uvicorn offers and what this adds:

- uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``).
  Nothing limits a request that never finishes: a connection that opens and sends nothing, half a head
  or a declared body that never comes stays open for ever. Here the head must be complete within
  ``F2F_HEADER_TIMEOUT_SECONDS`` of the connection opening (or of the previous response) and the body
  within ``F2F_BODY_TIMEOUT_SECONDS`` of the head; otherwise the answer is ``408`` and the connection closes.
- httptools (llhttp) puts no bound on header size or count, and uvicorn adds none (only its h11 protocol
  has ``h11_max_incomplete_event_size``; h11 is pure Python and much slower). Here the head is limited to
  ``F2F_MAX_HEADER_BYTES`` (request line and headers) and ``F2F_MAX_HEADERS`` fields: ``431`` above either,
  counted while the head arrives, so a 64 MB header is refused after its first 16 KB.
- uvicorn answers a malformed request with a text/plain ``400`` without the security headers. Here
  every response the connection layer writes itself (400, 408, 431) is JSON ``{"error", "message"}``
  with the same security headers and an ``X-Request-ID`` as the app's responses.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from f2f_cli.api.middleware import REQUEST_ID_HEADER, SECURITY_HEADERS, new_request_id
from f2f_cli.api.schemas import ErrorOut
from f2f_cli.settings import Settings

log = logging.getLogger("f2f.http")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
        )


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools wraps it in an HttpParserCallbackError."""


def error_bytes(status: int, code: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete JSON error response that closes the connection, written without the app."""
    body = _encoder.encode(ErrorOut(error=code, message=message))
    head = [STATUS_LINE[status]]
    for name, value in (
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (REQUEST_ID_HEADER.encode(), new_request_id().encode()),
        *SECURITY_HEADERS,
        (b"cache-control", b"no-store"),
    ):
        head.extend((name, b": ", value, b"\r\n"))
    head.append(b"\r\n")
    return b"".join(head) + body


class F2FHttpProtocol(HttpToolsProtocol):
    """One connection. ``serve`` hands uvicorn ``functools.partial(F2FHttpProtocol, limits=...)``."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._in_head = True
        self._head_seen = False  # a byte of the current head has arrived
        self._raw_head = 0  # bytes received while the head was still incomplete
        self._deadline_at: float | None = None  # loop time the current head or body must be complete by
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- deadlines -------------------------------------------------------------
    # Every request moves the deadline twice (head complete, response sent). Rather than a timer per
    # move, one timer per connection fires at the earliest deadline it was set for and re-arms itself
    # if the deadline has moved on since: a busy keep-alive connection sets no timer per request.

    def _arm(self, seconds: float) -> None:
        at = self.loop.time() + seconds
        self._deadline_at = at
        if self._timer is None or self._timer_at > at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            self._timer = self.loop.call_at(at, self._deadline_check)

    def _disarm(self) -> None:
        self._deadline_at = None  # a pending timer finds nothing to do

    def _stop_timer(self) -> None:
        self._deadline_at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline_check(self) -> None:
        self._timer = None
        at = self._deadline_at
        if at is None:
            return
        if self.loop.time() < at:
            self._timer_at = at
            self._timer = self.loop.call_at(at, self._deadline_check)
            return
        self._deadline_at = None
        self._expired()

    def _expired(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_head:
            if self._head_seen:
                log.info("request head incomplete after %gs: 408, connection closed", self.limits.header_timeout)
                self._reject(408, "request_timeout", "the request head did not arrive in time")
            else:
                # Nothing sent at all (a pre-connect, or an idle socket): close without a word.
                self.transport.close()
            return
        log.info("request body incomplete after %gs: 408, connection closed", self.limits.body_timeout)
        if cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                self.transport.write(
                    error_bytes(408, "request_timeout", "the request body did not arrive in time",
                                self.server_state.default_headers)
                )
            # The app sees a disconnect (a ClientDisconnect while reading), not a late body.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _reject(self, status: int, code: str, message: str) -> None:
        self._stop_timer()
        self.transport.write(error_bytes(status, code, message, self.server_state.default_headers))
        self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_seen = True
            self._raw_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No WebSockets here (serve runs with ws="none"): uvicorn's own handling says so and goes on.
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._head_too_large()
            else:
                log.info("malformed HTTP request: 400, connection closed")
                self._reject(400, "invalid_request", "malformed HTTP request")
            return
        if self._in_head and self._raw_head > self.limits.max_header_bytes:
            # The head is still incomplete and already too big: stop buffering it.
            self._head_too_large()

    def _head_too_large(self) -> None:
        log.warning("request head over %d bytes or %d fields: 431, connection closed",
                    self.limits.max_header_bytes, self.limits.max_headers)
        self._reject(
            431,
            "request_header_too_large",
            f"request headers are limited to {self.limits.max_header_bytes} bytes "
            f"and {self.limits.max_headers} fields",
        )

    def send_400_response(self, msg: str) -> None:
        self._reject(400, "invalid_request", "malformed HTTP request")

    # -- parser callbacks ------------------------------------------------------

    def on_headers_complete(self) -> None:
        # The limits on the parsed head, checked once it is whole rather than per field: a head arriving
        # over several reads is stopped by ``data_received`` as soon as its raw bytes pass the limit; one
        # that came in a single read is already in memory, and is refused here before the app sees it.
        headers = self.headers
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in headers)  # ": " and CRLF
        if len(headers) > self.limits.max_headers or size > self.limits.max_header_bytes:
            raise HeadTooLarge
        self._in_head = False
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        # Whatever arrives next belongs to the next request's head.
        self._in_head = True
        self._raw_head = 0
        self._head_seen = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline and self._in_head:
            # The next request's head starts now; an idle keep-alive socket is closed sooner by uvicorn.
            self._arm(self.limits.header_timeout)

    def shutdown(self) -> None:
        self._stop_timer()
        super().shutdown()
