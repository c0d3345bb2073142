"""``f2f sessions expire`` and ``delete``: end one session in every store of the current phase.

The version authority of the phase changes first; the other store then gets the
resulting state as a version-guarded copy, the same operation repair and backfill
use, so a late, older copy can never bring the session back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.control.phase import mark_redis_untrusted
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_sessions as sessions_t
from f2f_cli.domain.ids import check_session_id
from f2f_cli.domain.model import Session
from f2f_cli.errors import F2FError, SessionNotFound, StoreUnavailable
from f2f_cli.ops.context import OpsContext, StoreName
from f2f_cli.stores.sql import session_from_row

if TYPE_CHECKING:
    from f2f_cli.stores.redis import RedisSessionStore

Action = Literal["expire", "delete"]
_CAS_ATTEMPTS = 20


class StoreOutcome(msgspec.Struct, frozen=True):
    store: str
    outcome: str  # expired | deleted | would expire | would delete | absent | already gone
    version: int | None = None


class EndResult(msgspec.Struct, frozen=True):
    session_id: str
    action: str
    phase: str
    dry_run: bool
    stores: list[StoreOutcome]


async def expire_sql(engine: AsyncEngine, session_id: str, *, version: int | None = None) -> Session | None:
    """Set ``expires_at`` to now with a new version; ``None`` if not live.

    With ``version`` (a copy from the Redis authority) the row takes that version
    if it holds an older one, whatever its content, since an expired row is invisible.
    """
    now = utcnow()
    stmt = update(sessions_t).where(sessions_t.c.session_id == session_id, sessions_t.c.expires_at > now)
    if version is None:
        stmt = stmt.where(sessions_t.c.deleted_at.is_(None)).values(
            version=sessions_t.c.version + 1, expires_at=now, updated_at=now
        )
    else:
        stmt = stmt.where(sessions_t.c.version < version).values(version=version, expires_at=now, updated_at=now)
    with translate_db_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(stmt.returning(sessions_t))).first()
    if row is None:
        return None
    return session_from_row(row)


async def _end_in_redis(redis: RedisSessionStore, session_id: str, action: Action) -> Session | None:
    """Redis as the authority: compare-and-set a successor copy (expired, or a tombstone)."""
    for _ in range(_CAS_ATTEMPTS):
        current = await redis.read_copy(session_id)
        if current is None or current.deleted or current.expires_at <= utcnow():
            return None
        if action == "delete":
            await redis.delete(session_id)
            return await redis.read_copy(session_id)
        now = utcnow()
        successor = msgspec.structs.replace(current, version=current.version + 1, updated_at=now, expires_at=now)
        # Applying an already expired copy removes the older one; a concurrent write wins and we retry.
        await redis.apply_copy(successor)
        after = await redis.read_copy(session_id)
        if after is None or after.version > current.version:
            return successor
    raise StoreUnavailable(f"session {session_id} kept changing; try again")


async def _end_in_sql(ctx: OpsContext, session_id: str, action: Action) -> Session | None:
    if action == "delete":
        try:
            return await ctx.sql.delete_returning_tombstone(session_id)
        except SessionNotFound:
            return None
    return await expire_sql(ctx.engine, session_id)


async def _exists(ctx: OpsContext, store: StoreName, session_id: str) -> Session | None:
    if store == "sql":
        copy = await ctx.sql.read_copy(session_id)
    else:
        copy = await ctx.redis().read_copy(session_id)
    return None if copy is None or copy.deleted or copy.expires_at <= utcnow() else copy


async def end_session(ctx: OpsContext, session_id: str, action: Action, *, dry_run: bool = False) -> EndResult:
    """Expire or delete ``session_id`` in every store of the phase; ``SessionNotFound`` if no store has it live."""
    check_session_id(session_id)
    phase = await ctx.phase()
    stores = await ctx.stores_of_phase()
    if stores != ["sql"] and not ctx.redis_configured:
        stores = ["sql"]  # phase says Redis but none is configured here: say so in the outcome
    done = "expired" if action == "expire" else "deleted"
    outcomes: list[StoreOutcome] = []
    if dry_run:
        for store in stores:
            current = await _exists(ctx, store, session_id)
            outcomes.append(
                StoreOutcome(store, f"would {action}" if current else "absent", current.version if current else None)
            )
        if all(o.outcome == "absent" for o in outcomes):
            raise SessionNotFound(f"session {session_id} not found or already ended in {', '.join(stores)}")
        return EndResult(session_id, action, phase.value, True, outcomes)

    authority, *others = stores
    if authority == "sql":
        result = await _end_in_sql(ctx, session_id, action)
    else:
        result = await _end_in_redis(ctx.redis(), session_id, action)
    if result is None:
        raise SessionNotFound(f"session {session_id} not found or already ended")
    outcomes.append(StoreOutcome(authority, done, result.version))
    for store in others:
        outcomes.append(await _propagate(ctx, store, result, action))
    return EndResult(session_id, action, phase.value, False, outcomes)


async def _propagate(ctx: OpsContext, store: StoreName, result: Session, action: Action) -> StoreOutcome:
    done = "expired" if action == "expire" else "deleted"
    if store == "redis":
        # An expired copy newer than Redis's removes the key; a tombstone replaces it.
        try:
            await ctx.redis().apply_copy(result)
        except F2FError as exc:
            # As in the dual store: SQL has committed, so Redis must stop being trusted until repaired.
            await mark_redis_untrusted(ctx.engine, result.session_id, f"sessions {action}: {exc.message}")
            return StoreOutcome("redis", "queued for repair (Redis unavailable)", result.version)
        return StoreOutcome("redis", done, result.version)
    if action == "delete":
        applied = await ctx.sql.apply_copy(result)
        return StoreOutcome("sql", done if applied else "already gone", result.version)
    row = await expire_sql(ctx.engine, result.session_id, version=result.version)
    return StoreOutcome("sql", done if row else "already gone", result.version)
