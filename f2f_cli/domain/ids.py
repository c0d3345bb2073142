"""Session ids: 192 random bits from ``secrets``, URL-safe base64 (32 characters)."""

from __future__ import annotations

import re
import secrets

from f2f_cli.errors import InvalidSessionId

SESSION_ID_BYTES = 24
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{32}")


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_valid_session_id(value: str) -> bool:
    return SESSION_ID_RE.fullmatch(value) is not None


def check_session_id(value: str) -> str:
    """Return ``value`` if it is a well-formed id; raise before any store sees it."""
    if not isinstance(value, str) or not is_valid_session_id(value):
        raise InvalidSessionId("session id must be 32 URL-safe characters (A-Z a-z 0-9 _ -)")
    return value
