"""Turn session hashes and backup-stream entries (see ``redis_scripts``) into ``Session`` values.

Redis keeps times in whole milliseconds (its own clock unit); copies coming from
SQL are truncated to the millisecond. Copies are compared by ``version``, never
by timestamp, so the truncation cannot reorder anything.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec

from f2f_cli.domain.model import Ingredient, Session, sort_ingredients

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
UNIT_SEPARATOR = "\x1f"


# Below this (year 2096) a float holds ms / 1000 to within 0.5 µs, so fromtimestamp's
# rounding to the microsecond lands exactly on the millisecond; it is 4× faster than
# timedelta arithmetic, which matters on the read path (one call per ingredient).
_FAST_MS_LIMIT = 4_000_000_000_000


def ms_to_datetime(ms: int) -> datetime:
    if 0 <= ms < _FAST_MS_LIMIT:
        return datetime.fromtimestamp(ms / 1000, UTC)
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(value: datetime) -> int:
    return (value - EPOCH) // _MS


def session_from_hash(session_id: str, flat: Sequence[bytes | str], expires_ms: int) -> Session:
    """A session from a flat HGETALL reply and the key's PEXPIRETIME.

    The request path decodes one of these per read: the fields are compared as bytes (no decoding of
    the metadata names) and the times take the fast conversion whenever all of them are in its range.
    """
    raw_flat = cast("Sequence[bytes]", flat)
    if flat and isinstance(flat[0], str):  # a client decoding replies itself: not the request path
        raw_flat = [item.encode() if isinstance(item, str) else item for item in flat]
    version = created = updated = None
    deleted = False
    offsets: list[tuple[int, bytes]] = []
    for name, value in zip(raw_flat[0::2], raw_flat[1::2], strict=True):
        if name[0] == 32:  # b" "
            if name == b" c":
                created = int(value)
            elif name == b" u":
                updated = int(value)
            elif name == b" v":
                version = int(value)
            elif name == b" d":
                deleted = True
        else:
            offsets.append((int(value), name))
    if created is None or updated is None or version is None:
        raise KeyError(f"session hash of {session_id} lacks its metadata")
    # Offsets grow with added_at, so (offset, name) is sort_ingredients' order without its key function.
    offsets.sort()
    lowest = created + min(0, updated, offsets[0][0] if offsets else 0)
    highest = created + max(0, updated, offsets[-1][0] if offsets else 0)
    if lowest >= 0 and highest < _FAST_MS_LIMIT and 0 <= expires_ms < _FAST_MS_LIMIT:
        stamp = datetime.fromtimestamp
        items = tuple([Ingredient(raw.decode(), stamp((created + off) / 1000, UTC)) for off, raw in offsets])
        return Session(session_id, stamp(created / 1000, UTC), stamp((created + updated) / 1000, UTC),
                       stamp(expires_ms / 1000, UTC), version, items, deleted)
    return Session(
        session_id=session_id,
        created_at=ms_to_datetime(created),
        updated_at=ms_to_datetime(created + updated),
        expires_at=ms_to_datetime(expires_ms),
        version=version,
        ingredients=tuple(Ingredient(raw.decode(), ms_to_datetime(created + off)) for off, raw in offsets),
        deleted=deleted,
    )


class _View(msgspec.Struct, array_like=True):
    """What READ_VIEW renders (see ``redis_scripts``)."""

    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    deleted: bool
    ingredients: list[Ingredient]


_view_decoder = msgspec.json.Decoder(_View)
_ORDER = operator.attrgetter("added_at", "name")  # sort_ingredients' order, with a key written in C


def session_from_view(session_id: str, rendered: bytes) -> Session:
    """A session from READ_VIEW's JSON: decoded in one C call, then put in the one ingredient order."""
    view = _view_decoder.decode(rendered)
    items = view.ingredients
    items.sort(key=_ORDER)
    return Session(session_id, view.created_at, view.updated_at, view.expires_at, view.version, tuple(items),
                   view.deleted)


def session_from_entry(fields: Mapping[bytes, bytes]) -> Session:
    """A full-state copy from one backup-stream entry."""
    created = int(fields[b"c"])
    packed = fields[b"g"].decode()
    items: list[Ingredient] = []
    if packed:
        parts = packed.split(UNIT_SEPARATOR)
        items = [Ingredient(parts[i], ms_to_datetime(created + int(parts[i + 1]))) for i in range(0, len(parts), 2)]
    return Session(
        session_id=fields[b"i"].decode(),
        created_at=ms_to_datetime(created),
        updated_at=ms_to_datetime(int(fields[b"u"])),
        expires_at=ms_to_datetime(int(fields[b"e"])),
        version=int(fields[b"v"]),
        ingredients=sort_ingredients(items),
        deleted=fields[b"d"] == b"1",
    )


# The packed copy: the one wire format of a full-state copy between stores. Fields joined by
# UNIT_SEPARATOR: version, created, updated, expires (epoch ms), deleted ("1"/"0"), then one
# name and added-at (epoch ms) per ingredient. Written by ``pack_copy`` and by PostgreSQL
# (``stores/copying.py`` renders it in SQL for bulk copies), read by ``unpack_copy`` and by the
# APPLY_COPIES Lua script; tests/integration/test_copy_codec.py holds all of them to one another.


def pack_copy(copy: Session) -> str:
    """The APPLY_COPIES argument for ``copy`` (see ``redis_scripts``)."""
    head = [
        str(copy.version),
        str(datetime_to_ms(copy.created_at)),
        str(datetime_to_ms(copy.updated_at)),
        str(datetime_to_ms(copy.expires_at)),
        "1" if copy.deleted else "0",
    ]
    if not copy.deleted:
        for item in copy.ingredients:
            head += [item.name, str(datetime_to_ms(item.added_at))]
    return UNIT_SEPARATOR.join(head)


def unpack_copy(session_id: str, packed: str) -> Session:
    """The inverse of ``pack_copy``."""
    parts = packed.split(UNIT_SEPARATOR)
    version, created, updated, expires, deleted = parts[:5]
    items = (Ingredient(name, ms_to_datetime(int(ms))) for name, ms in zip(parts[5::2], parts[6::2], strict=True))
    return Session(
        session_id=session_id,
        created_at=ms_to_datetime(int(created)),
        updated_at=ms_to_datetime(int(updated)),
        expires_at=ms_to_datetime(int(expires)),
        version=int(version),
        ingredients=sort_ingredients(items),
        deleted=deleted == "1",
    )
