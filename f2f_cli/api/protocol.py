"""The HTTP/1.1 connection handler ``f2f serve`` runs: uvicorn's httptools protocol plus the rules every
request passes before the app sees it.

What uvicorn offers and what this adds:

- **Deadlines.** uvicorn closes a keep-alive connection that stays idle after a response
  (``timeout_keep_alive``). Nothing limits a request that never finishes: here the head must be complete
  within ``F2F_HEADER_TIMEOUT_SECONDS`` of the connection opening (or of the previous response) and the
  body within ``F2F_BODY_TIMEOUT_SECONDS`` of the head; otherwise ``408`` and the connection closes.
- **Head limits.** httptools (llhttp) puts no bound on header size or count, and uvicorn adds none. Here
  the head is limited to ``F2F_MAX_HEADER_BYTES`` and ``F2F_MAX_HEADERS`` fields (``431``), counted while
  it arrives, including a head that starts in the same read as the previous request's end. A chunk-size
  line (with its extensions) or a trailer section is held to the same byte limit (``400``).
- **Upgrade.** llhttp stops at the end of an ``Upgrade`` request's head and calls the message complete
  without its body; uvicorn then parses whatever follows as new requests (request smuggling: uvicorn
  #2722, httptools #124). f2f supports no upgrade, so, as RFC 9110 §7.8 allows, it ignores the ``Upgrade``
  header: the head is parsed again without it and the request is served as plain HTTP/1.1 with its body.
  ``CONNECT`` is refused (``405``) and the connection closed.
- **Framing and head rules** (RFC 9112): an HTTP/1.1 request needs exactly one ``Host`` (``400``); only
  ``chunked`` is a known transfer coding (``501`` otherwise); only HTTP/1.0 and 1.1 are spoken (``505``).
  The path is routed as sent: a percent-encoded path is not decoded, so ``%2F`` is not a slash and
  ``/%6detrics`` is not ``/metrics`` (no f2f path needs percent-encoding).
- **Slow readers.** A response the client does not read for ``F2F_WRITE_TIMEOUT_SECONDS`` (the transport's
  buffer stays above its high-water mark, or a closing connection still holds unsent bytes) aborts the
  connection. Reading stops while the send buffer is full or pipelined requests wait, and at most
  ``F2F_MAX_PIPELINED_REQUESTS`` are read ahead of their answers: the connection answers those and closes.
  (uvicorn resumes reading after every response, so a client that pipelines and never reads made the
  server queue requests and responses without bound.)
- **Clients that leave.** uvicorn marks only the newest request as disconnected; with requests pipelined
  the one being answered wrote to a closed transport and logged two tracebacks. Here every request of the
  connection sees the disconnect.
- **Its own answers.** uvicorn answers a malformed request with a text/plain ``400`` without the security
  headers. Every response this layer writes (400, 405, 408, 431, 501, 505) is JSON ``{"error", "message"}``
  with the same security headers and an ``X-Request-ID`` as the app's responses, and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from f2f_cli.api.middleware import REQUEST_ID_HEADER, SECURITY_HEADERS, new_request_id
from f2f_cli.api.schemas import ErrorOut
from f2f_cli.settings import Settings

log = logging.getLogger("f2f.http")
_encoder = msgspec.json.Encoder()
# What the request line adds to the method and the target: a space, " HTTP/1.1", CRLF.
_REQUEST_LINE_EXTRA = 12
# A chunk-size line and the CRLF after its data, at their shortest ("0\r\n" ... "\r\n").
_CHUNK_FRAMING = 5
_LINGER_ABORT = struct.pack("ii", 1, 0)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    write_timeout: float = 30.0
    max_pipelined: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            write_timeout=settings.write_timeout_seconds,
            max_pipelined=settings.max_pipelined_requests,
        )


class Refused(Exception):
    """Raised from a parser callback (httptools wraps it in an HttpParserCallbackError): answer and close."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools wraps it in an HttpParserCallbackError."""


class _PipelineFull(Exception):
    """Raised from a parser callback: stop parsing, answer what was read, then close."""


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
        self._write_timer: asyncio.TimerHandle | None = None
        # The current read: how many of its bytes the requests parsed in it used (an estimate from the
        # parsed head and body), and the scope of the last request that ended in it.
        self._read_used = 0
        self._ended_scope: object | None = None
        self._chunked = False  # the current request's body is chunked
        self._stalled = 0  # bytes of chunk framing or trailers read since the parser last made progress
        self._chunks_seen = 0  # body callbacks so far: tells whether a read made progress past the head
        self._upgrade_head: bytes | None = None  # an Upgrade request's head without Upgrade, to parse again
        self._running: RequestResponseCycle | None = None  # the request being answered
        self._full = False  # the pipeline cap was reached: answer what was read, then close
        self._refusal: bytes | None = None  # an error answer waiting for the earlier requests' answers

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
                self._close()
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
        self._close()

    def _reject(self, status: int, code: str, message: str) -> None:
        self._stop_timer()
        self.flow.pause_reading()
        answer = error_bytes(status, code, message, self.server_state.default_headers)
        running = self._running
        if running is not None and not running.response_complete:
            if self._in_head or self.pipeline or running is not self.cycle:
                # Earlier requests of the connection are still being answered: this answer goes after theirs.
                self._refusal = answer
                return
            # The request being answered is the one refused (its body broke a rule): the app sees a
            # disconnect, and the answer is this one unless the app's has begun.
            running.disconnected = True
            running.message_event.set()
            if running.response_started:
                answer = b""
        if answer:
            self.transport.write(answer)
        self._close()

    # -- slow readers ------------------------------------------------------------
    # The transport calls pause_writing when its buffer passes the high-water mark and resume_writing when
    # it drains below the low one: a response that stays above the mark for the write timeout is not being
    # read, and the connection is aborted (with SO_LINGER 0, so the kernel drops the unsent bytes too).

    def _close(self) -> None:
        """Close the connection; bytes still buffered get the write timeout to leave."""
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self._arm_write_deadline()

    def _arm_write_deadline(self) -> None:
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout, self._write_expired)

    def _write_expired(self) -> None:
        self._write_timer = None
        transport = self.transport
        log.info("response not read within %gs: connection aborted", self.limits.write_timeout)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Not a TCP socket (or a pseudo-socket without the option): abort anyway.
            with contextlib.suppress(OSError, AttributeError, TypeError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        transport.abort()

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.pause_reading()  # no new requests while the answers to the old ones are not read
        self._arm_write_deadline()

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if not self.pipeline and not self._full and not self.transport.is_closing():
            self.flow.resume_reading()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        # Every request of the connection sees the client leave, not only the newest one (uvicorn's
        # ``self.cycle``): the one being answered would otherwise write to a closed transport.
        for cycle in (self._running, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.pipeline.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        began_in_head = self._in_head
        chunks_seen = self._chunks_seen
        if self._in_head:
            self._head_seen = True
            self._raw_head += len(data)
        elif self._chunked:
            self._stalled += len(data)
        self._read_used = 0
        self._ended_scope = None
        if not self._feed(data):
            return
        if self._in_head:
            ended = self._ended_scope
            if ended is not None and self.scope is not ended:
                # A request ended inside this read and the next one's head began after it: what is left
                # of the read (at least its target so far) is that head's so far.
                self._raw_head = max(len(data) - self._read_used, len(self.url))
                self._head_seen = True
            if self._raw_head > self.limits.max_header_bytes:
                # The head is still incomplete and already too big: stop buffering it.
                self._head_too_large()
            return
        if began_in_head and self._chunked and self._chunks_seen == chunks_seen:
            # The head ended in this read and no chunk has parsed since: the rest of the read is one chunk-size
            # line so far (an endless extension sent right behind the head), counted like the later reads.
            self._stalled = len(data) - self._read_used
        if self._stalled > self.limits.max_header_bytes:
            log.info("chunk-size line or trailers over %d bytes: 400, connection closed",
                     self.limits.max_header_bytes)
            self._reject(400, "invalid_request",
                         f"a chunk-size line or the trailers are limited to {self.limits.max_header_bytes} bytes")

    def _feed(self, data: bytes) -> bool:
        """Parse ``data``; False when the connection is being closed."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return self._upgrade(data[int(exc.args[0]):])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if self._full or self._refusal is not None:
                pass  # the parser has stopped; what was read before is answered, then the connection closes
            elif isinstance(cause, HeadTooLarge):
                self._head_too_large()
            elif isinstance(cause, Refused):
                log.info("%s: %d, connection closed", cause.message, cause.status)
                self._reject(cause.status, cause.code, cause.message)
            elif isinstance(cause, _PipelineFull):
                log.info("over %d pipelined requests: answering those, then closing", self.limits.max_pipelined)
                self._full = True
                self._disarm()  # the request not kept must not time out into a 408 among the answers
                self._in_head = True
                self.flow.pause_reading()
            else:
                log.info("malformed HTTP request: 400, connection closed")
                self._reject(400, "invalid_request", "malformed HTTP request")
            return False
        return True

    def _upgrade(self, rest: bytes) -> bool:
        """llhttp stopped after an Upgrade request's head: parse that head again without ``Upgrade`` and go
        on with what followed it (its body, then the next requests) as HTTP/1.1."""
        head = self._upgrade_head
        self._upgrade_head = None
        if head is None:  # pragma: no cover - on_headers_complete prepares a head or refuses the request
            self._reject(400, "invalid_request", "malformed HTTP request")
            return False
        log.debug("upgrade not supported: served as HTTP/1.1")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        return self._feed(head + rest)

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

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self._close()

    # -- parser callbacks ------------------------------------------------------

    def on_headers_complete(self) -> None:
        # The limits on the parsed head, checked once it is whole rather than per field: a head arriving
        # over several reads is stopped by ``data_received`` as soon as its raw bytes pass the limit; one
        # that came in a single read is already in memory, and is refused here before the app sees it.
        headers = self.headers
        size = len(self.url)
        hosts = 0
        chunked = False
        for name, value in headers:
            size += len(name) + len(value) + 4  # ": " and CRLF
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise Refused(501, "not_implemented", "the only transfer coding accepted is chunked")
                chunked = True
        if len(headers) > self.limits.max_headers or size > self.limits.max_header_bytes:
            raise HeadTooLarge
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Refused(505, "http_version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served")
        if hosts != 1 and (hosts or version == "1.1"):
            raise Refused(400, "invalid_request", "an HTTP/1.1 request needs exactly one Host header")
        if parser.should_upgrade():
            method = parser.get_method()
            if method == b"CONNECT":
                raise Refused(405, "method_not_allowed", "CONNECT is not supported")
            # Nothing is started for this head: llhttp now ends the message without its body and stops,
            # and ``_upgrade`` parses the head again without Upgrade (RFC 9110 §7.8: a server may ignore it).
            self._upgrade_head = b"".join(
                [method, b" ", self.url, b" HTTP/", version.encode(), b"\r\n",
                 *(b"%s: %s\r\n" % (name, value) for name, value in headers if name != b"upgrade"), b"\r\n"]
            )
            return
        self._read_used += size + len(parser.get_method()) + _REQUEST_LINE_EXTRA
        self._chunked = chunked
        self._stalled = 0
        self._in_head = False
        self._arm(self.limits.body_timeout)
        queued = len(self.pipeline)
        super().on_headers_complete()
        scope = self.scope
        if b"%" in scope["raw_path"]:
            # Routed as sent: percent-decoding would make "%2F" a slash and "/%6detrics" "/metrics" behind a
            # proxy that matched the raw path. The app has not run yet (its task only starts on the next
            # turn of the loop), so the scope can still change.
            scope["path"] = scope["raw_path"].decode("latin-1")
        if len(self.pipeline) == queued:
            self._running = self.cycle
        elif len(self.pipeline) > self.limits.max_pipelined:
            # This one is not kept: the client sends it again on a new connection (RFC 9112 §9.3.2). The
            # last one kept closes the connection after its answer.
            self.pipeline.popleft()
            self.pipeline[0][0].keep_alive = False
            raise _PipelineFull

    def on_body(self, body: bytes) -> None:
        self._read_used += len(body)
        self._stalled = 0
        self._chunks_seen += 1
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._read_used += _CHUNK_FRAMING
        self._stalled = 0
        self._chunks_seen += 1

    def on_message_complete(self) -> None:
        if self._upgrade_head is not None:
            return  # the Upgrade request's head, parsed again by ``_upgrade``
        self._disarm()
        # Whatever arrives next belongs to the next request's head.
        self._in_head = True
        self._raw_head = 0
        self._head_seen = False
        self._chunked = False
        self._stalled = 0
        self._read_used += 2  # the blank line that ends the head (or the chunked body)
        self._ended_scope = self.scope
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, except that reading resumes only when no pipelined request is waiting, the send buffer
        # is below its high-water mark and the pipeline cap was not reached (uvicorn resumes reading after
        # every response, so a client that pipelines and never reads was read without bound).
        self.server_state.total_requests += 1
        self._running = None
        transport = self.transport
        if transport.is_closing():
            if transport.get_write_buffer_size():
                self._arm_write_deadline()
            return
        self._unset_keepalive_if_required()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._running = cycle
            self._start_asgi_task(cycle, app)
            return
        if self._refusal is not None:
            transport.write(self._refusal)
            self._close()
            return
        if self._full:
            return
        if not self.flow.write_paused:
            self.flow.resume_reading()
        if self._in_head and self._head_seen:
            # The next request's head has begun: its deadline, not the idle keep-alive timeout, applies.
            self._arm(self.limits.header_timeout)
        else:
            if self._in_head:
                self._arm(self.limits.header_timeout)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def shutdown(self) -> None:
        self._stop_timer()
        super().shutdown()
