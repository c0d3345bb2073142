"""The JSON Lines format of ``export``/``import``: one ``Session`` per line, checked strictly.

A line is the store-neutral full-state copy: ``session_id``, ``created_at``,
``updated_at``, ``expires_at`` (RFC 3339 with offset, microseconds kept),
``version``, ``ingredients`` (``name``, ``added_at``) and ``deleted``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from f2f_cli.domain.ids import check_session_id
from f2f_cli.domain.model import Session, normalize_ingredient, sort_ingredients
from f2f_cli.errors import F2FError

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Session)


class LineError(msgspec.Struct, frozen=True):
    line: int
    message: str


def encode_line(session: Session) -> bytes:
    return _encoder.encode(session) + b"\n"


def _aware(value: datetime, field: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{field} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")


def decode_line(raw: bytes, *, max_ingredients: int, max_length: int) -> Session:
    """One line → a ``Session`` in canonical form; ``ValueError`` says what is wrong."""
    try:
        session = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    try:
        check_session_id(session.session_id)
    except F2FError as exc:
        raise ValueError(exc.message) from None
    for field in ("created_at", "updated_at", "expires_at"):
        _aware(getattr(session, field), field)
    if session.version < 1:
        raise ValueError("version must be at least 1")
    if not session.created_at <= session.updated_at <= session.expires_at:
        raise ValueError("times must satisfy created_at <= updated_at <= expires_at")
    if session.deleted and session.ingredients:
        raise ValueError("a deleted session (tombstone) holds no ingredients")
    if len(session.ingredients) > max_ingredients:
        raise ValueError(f"{len(session.ingredients)} ingredients, more than the limit of {max_ingredients}")
    seen: set[str] = set()
    for item in session.ingredients:
        _aware(item.added_at, "added_at")
        try:
            clean = normalize_ingredient(item.name, max_length)
        except F2FError as exc:
            raise ValueError(f"ingredient {item.name!r}: {exc.message}") from None
        if clean != item.name:
            raise ValueError(f"ingredient {item.name!r} is not normalised (expected {clean!r})")
        if clean in seen:
            raise ValueError(f"ingredient {clean!r} appears twice")
        seen.add(clean)
    return msgspec.structs.replace(session, ingredients=sort_ingredients(session.ingredients))
