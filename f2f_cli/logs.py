"""Stdlib logging for ``F2F_LOG_FORMAT=console|json`` and ``F2F_LOG_LEVEL``.

One configuration serves the CLI (:func:`configure_logging`) and ``f2f serve``
(:func:`logging_config`, handed to uvicorn as ``log_config`` so every worker
process applies it). Every line carries the request id of the request it was
logged under, and any ``scheme://user:password@`` in a message is masked
before it is written, whoever logged it.

Access lines (one per request, logger ``f2f.access``) skip the ``logging``
machinery: :class:`AccessLog` encodes each line once (msgspec for JSON), keeps it
in a buffer owned by the event loop and writes the buffer in one call every
``ACCESS_BATCH`` lines, every ``ACCESS_FLUSH_SECONDS`` and at shutdown. A record
per request through a handler cost about 17 % of the request rate (a listener
thread more: it fights the loop for the GIL); the batch costs next to nothing.
Same fields, same format, same masking, same ``f2f.access`` level switch.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

request_id_var: ContextVar[str | None] = ContextVar("f2f_request_id", default=None)

# Fields an access line (or any record) may carry via ``extra=``; the JSON format emits them as keys.
EXTRA_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "phase", "client", "trace_id")

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)@")
_encoder = msgspec.json.Encoder()


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        rid = getattr(record, "request_id", None)
        return f"{line} [rid={rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request fields, any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return _encoder.encode(entry).decode()


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping (also uvicorn's ``log_config``)."""
    formatter = "json" if log_format == "json" else "console"
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "f2f_cli.logs.RequestIdFilter"}},
        "formatters": {
            "console": {"()": "f2f_cli.logs.ConsoleFormatter"},
            "json": {"()": "f2f_cli.logs.JsonFormatter"},
        },
        "handlers": {
            # stderr: the CLI's stdout is reserved for results (tables, --json).
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["default"], "level": upper},
        "loggers": {
            # uvicorn's own handlers are dropped so its lines share our format.
            "uvicorn": {"handlers": [], "level": upper, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": upper, "propagate": True},
            # f2f writes its own access line (request id, phase, route template); uvicorn's would show raw paths.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # Library chatter stays out of info-level logs.
            "sqlalchemy": {"level": "WARNING"},
            "aiosqlite": {"level": "WARNING"},
            "asyncio": {"level": "WARNING"},
        },
    }


def configure_logging(log_format: str, level: str) -> None:
    """Apply :func:`logging_config` to this process (the CLI commands call it once)."""
    logging.config.dictConfig(logging_config(log_format, level))


ACCESS_LOGGER = "f2f.access"
ACCESS_BATCH = 256
ACCESS_FLUSH_SECONDS = 0.2


class AccessLine(msgspec.Struct, omit_defaults=True):
    """One JSON access line: the keys ``JsonFormatter`` writes for an ``f2f.access`` record, in its order."""

    ts: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    route: str
    status: int
    duration_ms: float
    phase: str
    client: str | None = None
    # The request's trace (32 hex digits) when OTEL_* turns tracing on and the request was sampled.
    trace_id: str | None = None


class AccessLog:
    """Access lines encoded once, buffered in the event loop, written in batches.

    ``record`` is called on the request path (in the event loop); it never
    blocks and never writes unless a batch is full. Lines go to ``stream`` (by
    default whatever ``sys.stderr`` is when the batch is written, like the
    ``logging`` handler). Lines still buffered when the process is killed
    outright (SIGKILL) are lost: at most ``ACCESS_FLUSH_SECONDS`` of them.
    """

    def __init__(
        self,
        log_format: str,
        *,
        stream: TextIO | None = None,
        batch: int = ACCESS_BATCH,
        flush_seconds: float = ACCESS_FLUSH_SECONDS,
    ) -> None:
        self.json = log_format == "json"
        self.stream = stream
        self._batch = batch
        self._flush_seconds = flush_seconds
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def enabled(self) -> bool:
        """The ``f2f.access`` logger's level decides, as for any logger (``F2F_LOG_LEVEL``)."""
        return self._logger.isEnabledFor(logging.INFO)

    def record(
        self,
        request_id: str,
        method: str,
        route: str,
        status: int,
        seconds: float,
        phase: str,
        client: str | None,
        trace_id: str | None = None,
    ) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        if "@" in request_id:  # a sane id may still look like scheme://user:password@
            request_id = redact(request_id)
        now = time.time()
        message = f"{method} {route} {status} {seconds * 1000:.1f}ms"
        if self.json:
            # Positional: the fields in AccessLine's order (keywords cost more on every request).
            line = _access_encoder.encode(AccessLine(
                self._iso_ms(now), "info", ACCESS_LOGGER, message, request_id, method, route, status,
                round(seconds * 1000, 2), phase, client, trace_id,
            )).decode()
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            line = f"{stamp},{int(now * 1000) % 1000:03d} INFO    {ACCESS_LOGGER}: {message} [rid={request_id}]"
            if trace_id is not None:
                line = f"{line} [trace={trace_id}]"
        self._lines.append(line)
        if len(self._lines) >= self._batch:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside a loop (a test): write at once
                self.flush()
                return
            self._timer = loop.call_later(self._flush_seconds, self.flush)

    def _iso_ms(self, now: float) -> str:
        """``datetime.isoformat(timespec="milliseconds")`` in UTC, the date part built once per second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{int((now - second) * 1000):03d}+00:00"

    def flush(self) -> None:
        """Write every buffered line in one call (the timer, a full batch and shutdown call it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: an access line is never worth a failed request
            pass


_access_encoder = msgspec.json.Encoder()
