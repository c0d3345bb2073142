"""Every Redis key name f2f uses, in one place.

- ``<prefix>:s:{<session id>}``: one hash per session; the ``{}`` hash tag keeps
  it on one Cluster slot.
- ``<prefix>:bk``: the backup stream of the ``redis`` phase (standalone and
  Sentinel: one stream).
- ``<prefix>:bk:{<tag>}``: on Redis Cluster, one backup stream per hash slot.
  A Lua script may only touch keys of one slot, so the write script appends to
  the stream that lives in its session's slot; ``<tag>`` is the shortest string
  that hashes to that slot. The worker reads every slot's stream.
- ``BACKUP_GROUP``: the consumer group every ``f2f worker`` joins.
"""

from __future__ import annotations

import functools
import itertools
import string

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

BACKUP_GROUP = "f2f-backup"
_TAG_ALPHABET = string.ascii_letters + string.digits


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each of the 16,384 slots, the shortest alphanumeric string hashing to it."""
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing = REDIS_CLUSTER_HASH_SLOTS
    for length in itertools.count(1):
        for chars in itertools.product(_TAG_ALPHABET, repeat=length):
            tag = "".join(chars)
            slot = key_slot(tag.encode())
            if tags[slot] is None:
                tags[slot] = tag
                missing -= 1
                if missing == 0:
                    return tuple(t for t in tags if t is not None)
    raise AssertionError("unreachable")  # pragma: no cover


class RedisKeys:
    """Key names under one prefix; ``cluster`` selects the per-slot backup streams."""

    def __init__(self, prefix: str, *, cluster: bool = False) -> None:
        self.prefix = prefix
        self.cluster = cluster

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:s:{{{session_id}}}"

    @property
    def session_pattern(self) -> str:
        return f"{self.prefix}:s:{{*}}"

    def session_id_of(self, key: bytes | str) -> str:
        text = key.decode() if isinstance(key, bytes) else key
        return text[text.index("{") + 1 : text.rindex("}")]

    def backup_stream(self, session_id: str) -> str:
        """The stream a write of ``session_id`` appends to (same slot on a Cluster)."""
        if not self.cluster:
            return f"{self.prefix}:bk"
        return self._slot_stream(key_slot(session_id.encode()))

    def backup_streams(self) -> tuple[str, ...]:
        """Every backup stream the worker must read."""
        if not self.cluster:
            return (f"{self.prefix}:bk",)
        return tuple(self._slot_stream(slot) for slot in range(REDIS_CLUSTER_HASH_SLOTS))

    @property
    def backup_index(self) -> str:
        """The set of slots whose backup stream may hold entries (Cluster only)."""
        return f"{self.prefix}:bk:idx"

    def backup_slot(self, session_id: str) -> int:
        return key_slot(session_id.encode())

    def slot_stream(self, slot: int) -> str:
        return self._slot_stream(slot)

    def backup_slot_of_stream(self, stream: str) -> int:
        """The slot a per-slot stream lives on (its hash tag hashes there)."""
        return key_slot(stream.encode())

    def _slot_stream(self, slot: int) -> str:
        return f"{self.prefix}:bk:{{{slot_tags()[slot]}}}"
