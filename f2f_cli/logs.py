"""Stdlib logging for ``F2F_LOG_FORMAT=console|json`` and ``F2F_LOG_LEVEL``.

One configuration serves the CLI (:func:`configure_logging`) and ``f2f serve``
(:func:`logging_config`, handed to uvicorn as ``log_config`` so every worker
process applies it). Every line carries the request id of the request it was
logged under, and any ``scheme://user:password@`` in a message is masked
before it is written, whoever logged it.
"""

from __future__ import annotations

import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec

request_id_var: ContextVar[str | None] = ContextVar("f2f_request_id", default=None)

# Fields an access line (or any record) may carry via ``extra=``; the JSON format emits them as keys.
EXTRA_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "phase", "client")

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
