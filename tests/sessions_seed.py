"""Seed sessions for the ``f2f sessions`` tests: live ones, and ones that expired a while ago."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from f2f_cli.clock import utcnow
from f2f_cli.ops.context import OpsContext, open_context
from f2f_cli.stores.sql import SqlSessionStore
from tests.conftest import make_settings


@asynccontextmanager
async def ops(database_url: str, **env: str) -> AsyncIterator[OpsContext]:
    async with open_context(make_settings(F2F_DATABASE_URL=database_url, **env)) as ctx:
        yield ctx


async def seed(
    ctx: OpsContext,
    n: int,
    *,
    ingredients: Sequence[str] = ("김치", "두부"),
    expired_ago: timedelta | None = None,
    ttl: timedelta = timedelta(hours=1),
    deleted: bool = False,
) -> list[str]:
    """``n`` sessions holding ``ingredients``; with ``expired_ago``, already expired that long;
    with ``deleted``, tombstones (deleted while they were live)."""
    shift = timedelta(0) if expired_ago is None else ttl + expired_ago
    store = SqlSessionStore(
        ctx.engine,
        ttl_seconds=int(ttl.total_seconds()),
        max_ingredients=100,
        clock=lambda: utcnow() - shift,
    )
    ids = []
    for _ in range(n):
        sid = (await store.create()).session_id
        if ingredients:
            await store.add_ingredients(sid, list(ingredients))
        if deleted:
            await store.delete(sid)
        ids.append(sid)
    return ids
