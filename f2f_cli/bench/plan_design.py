"""The plan's own session design, measured as a reference and never used to serve.

One JSON string per session under ``session:<id>`` (here under the bench's key
prefix, so cleanup can find it); adding or removing an ingredient is GET, modify
in Python, SETEX. Two concurrent adds both read the same old value and the
second SETEX overwrites the first: ``lost_adds`` shows how many vanish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from f2f_cli.clock import utcnow
from f2f_cli.domain.ids import new_session_id
from f2f_cli.redis.client import RedisClient


class PlanJsonSessions:
    """create/get/add/remove exactly as the plan's sample code does them."""

    backend = "plan-json"

    def __init__(self, client: RedisClient, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds

    def key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def _setex(self, session_id: str, doc: dict[str, Any]) -> None:
        # The raw command the plan uses (redis-py marks its setex() helper deprecated).
        await self.client.execute_command(
            "SETEX", self.key(session_id), self.ttl, json.dumps(doc, ensure_ascii=False)
        )

    async def create(self) -> str:
        session_id = new_session_id()
        now = utcnow().isoformat()
        doc = {"session_id": session_id, "created_at": now, "updated_at": now, "ingredients": []}
        await self._setex(session_id, doc)
        return session_id

    async def get(self, session_id: str) -> dict[str, Any]:
        raw = await self.client.get(self.key(session_id))
        if raw is None:
            raise KeyError(session_id)
        doc: dict[str, Any] = json.loads(raw)
        return doc

    async def add_ingredients(self, session_id: str, names: Sequence[str]) -> None:
        doc = await self.get(session_id)
        now = utcnow().isoformat()
        have = {item["name"] for item in doc["ingredients"]}
        doc["ingredients"].extend({"name": n, "added_at": now} for n in names if n not in have)
        doc["updated_at"] = now
        await self._setex(session_id, doc)

    async def remove_ingredient(self, session_id: str, name: str) -> None:
        doc = await self.get(session_id)
        doc["ingredients"] = [item for item in doc["ingredients"] if item["name"] != name]
        doc["updated_at"] = utcnow().isoformat()
        await self._setex(session_id, doc)


async def lost_concurrent_adds(add: Any, read_names: Any, names: Sequence[str]) -> int:
    """Add each of ``names`` in its own concurrent call; how many are missing afterwards."""
    await asyncio.gather(*(add([n]) for n in names))
    present = set(await read_names())
    return sum(1 for n in names if n not in present)
