"""Durations operators type: ``90s``, ``30m``, ``1h``, ``7d``, ``1h30m``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from f2f_cli.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")


def parse_duration(text: str, *, what: str = "duration", allow_zero: bool = True) -> timedelta:
    """``'1h30m'`` → 90 minutes; a bare number means seconds. Raises ``InvalidInput`` with an example."""
    raw = text.strip().lower()
    if raw.isdigit():
        seconds = int(raw)
    elif _WHOLE.fullmatch(raw):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
    else:
        raise InvalidInput(f"{what} {text!r} is not a duration: use e.g. 90s, 30m, 1h, 7d or 1h30m")
    if seconds == 0 and not allow_zero:
        raise InvalidInput(f"{what} must be longer than zero")
    if seconds > 3650 * 86400:
        raise InvalidInput(f"{what} {text!r} is longer than ten years")
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """Compact, human: ``-3m``, ``45s``, ``2h05m``, ``1d03h``."""
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"
