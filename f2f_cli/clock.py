"""The one clock every module reads: UTC, at the millisecond precision every store keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, in UTC, at millisecond precision: the precision every store keeps.

    Redis holds times as epoch milliseconds; truncating here makes a session
    read back identically from SQL and from Redis, so copies compare equal.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
