"""The hash decoder of the read path: the fast time conversion and the exact one agree everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from f2f_cli.redis.codec import EPOCH, session_from_hash

SID = "a" * 32


def _exact(ms: int) -> datetime:
    """The reference conversion: integer arithmetic, no floats."""
    return EPOCH + timedelta(milliseconds=ms)


def _hash(created: int, updated: int, version: int, offsets: dict[str, int], deleted: bool = False) -> list[bytes]:
    flat = [b" v", str(version).encode(), b" c", str(created).encode(), b" u", str(updated).encode()]
    if deleted:
        flat += [b" d", b"1"]
    for name, offset in offsets.items():
        flat += [name.encode(), str(offset).encode()]
    return flat


@given(
    created=st.integers(0, 6_000_000_000_000),
    updated=st.integers(0, 10**9),
    expires=st.integers(0, 6_000_000_000_000),
    offsets=st.dictionaries(st.text("양파두부김치ab", min_size=1, max_size=4), st.integers(-10**6, 10**9), max_size=6),
)
def test_times_are_exact_to_the_millisecond_in_and_out_of_the_fast_range(
    created: int, updated: int, expires: int, offsets: dict[str, int]
) -> None:
    session = session_from_hash(SID, _hash(created, updated, 7, offsets), expires)
    assert session.created_at == _exact(created)
    assert session.updated_at == _exact(created + updated)
    assert session.expires_at == _exact(expires)
    expected = sorted(offsets.items(), key=lambda item: (item[1], item[0]))
    assert [(i.name, i.added_at) for i in session.ingredients] == [
        (name, _exact(created + offset)) for name, offset in expected
    ]
    assert session.version == 7 and not session.deleted


def test_a_tombstone_and_a_reply_decoded_by_the_client_read_the_same() -> None:
    flat = _hash(1_764_590_000_000, 5, 3, {"두부": 1, "김치": 2}, deleted=True)
    as_bytes = session_from_hash(SID, flat, 1_764_600_000_000)
    as_text = session_from_hash(SID, [item.decode() for item in flat], 1_764_600_000_000)
    assert as_bytes == as_text
    assert as_bytes.deleted and [i.name for i in as_bytes.ingredients] == ["두부", "김치"]
    assert as_bytes.created_at == datetime(2025, 12, 1, 11, 53, 20, tzinfo=UTC)


def test_a_hash_without_its_metadata_is_refused() -> None:
    with pytest.raises(KeyError, match="metadata"):
        session_from_hash(SID, [b" v", b"1", b"x", b"0"], 0)
