"""``f2f sessions inspect``: one session as each store holds it, the differences and a verdict."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Literal

import msgspec

from f2f_cli.clock import utcnow
from f2f_cli.domain.ids import check_session_id
from f2f_cli.domain.model import Session
from f2f_cli.errors import F2FError
from f2f_cli.ops.context import OpsContext
from f2f_cli.ops.sqlread import read_row

State = Literal["live", "deleted", "expired", "missing", "unavailable", "not-configured"]

# Redis keeps times in milliseconds, SQL in microseconds: compare at the coarser grain.
_GRAIN_US = 1000


class StoreView(msgspec.Struct, frozen=True):
    store: str
    state: State
    session: Session | None = None
    ttl_seconds: float | None = None
    error: str | None = None


class Difference(msgspec.Struct, frozen=True):
    field: str
    sql: str | None
    redis: str | None


class Inspection(msgspec.Struct, frozen=True):
    session_id: str
    phase: str
    stores: list[StoreView]
    differences: list[Difference]
    verdict: str
    found: bool


def _state(session: Session | None, now: datetime) -> State:
    if session is None:
        return "missing"
    if session.expires_at <= now:
        return "expired"
    return "deleted" if session.deleted else "live"


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) // _GRAIN_US


def _iso(value: datetime) -> str:
    return value.isoformat()


def diff(sql: Session, redis: Session) -> list[Difference]:
    """Field-by-field differences; times equal to the millisecond count as equal."""
    out: list[Difference] = []
    if sql.version != redis.version:
        out.append(Difference("version", str(sql.version), str(redis.version)))
    if sql.deleted != redis.deleted:
        out.append(Difference("deleted", str(sql.deleted).lower(), str(redis.deleted).lower()))
    for name in ("created_at", "updated_at"):
        a, b = getattr(sql, name), getattr(redis, name)
        if _ms(a) != _ms(b):
            out.append(Difference(name, _iso(a), _iso(b)))
    # Expiry skew of up to 2 s is normal (the stores run their own clocks).
    if abs((sql.expires_at - redis.expires_at).total_seconds()) > 2:
        out.append(Difference("expires_at", _iso(sql.expires_at), _iso(redis.expires_at)))
    left = {i.name: i.added_at for i in sql.ingredients}
    right = {i.name: i.added_at for i in redis.ingredients}
    for name in sorted(left.keys() | right.keys()):
        a_at, b_at = left.get(name), right.get(name)
        if a_at is None or b_at is None or _ms(a_at) != _ms(b_at):
            out.append(
                Difference(
                    f"ingredient {name}",
                    None if a_at is None else _iso(a_at),
                    None if b_at is None else _iso(b_at),
                )
            )
    return out


def verdict(sql: StoreView, redis: StoreView | None, differences: list[Difference]) -> str:
    if redis is None:
        return f"SQL only: {sql.state}" if sql.state != "unavailable" else "SQL unavailable"
    if "unavailable" in (sql.state, redis.state):
        which = " and ".join(v.store.upper() if v.store == "sql" else "Redis" for v in (sql, redis)
                             if v.state == "unavailable")
        return f"cannot compare: {which} unavailable"
    present = {v.store for v in (sql, redis) if v.state in ("live", "deleted")}
    if not present:
        return "missing in both"
    if present == {"redis"}:
        return "missing in SQL"
    if present == {"sql"}:
        return "missing in Redis"
    assert sql.session is not None and redis.session is not None
    if sql.session.version > redis.session.version:
        return "Redis behind"
    if sql.session.version < redis.session.version:
        return "SQL behind"
    return "in sync" if not differences else "diverged at the same version"


async def _view(store: str, read: Awaitable[Session | None], now: datetime) -> StoreView:
    try:
        session = await read
    except F2FError as exc:
        return StoreView(store, "unavailable", error=exc.message)
    state = _state(session, now)
    ttl = None if session is None else round(session.ttl_seconds(now), 3)
    return StoreView(store, state, session, ttl)


async def inspect_session(ctx: OpsContext, session_id: str) -> Inspection:
    check_session_id(session_id)
    now = utcnow()
    phase = (await ctx.phase()).value
    sql = await _view("sql", read_row(ctx.engine, session_id), now)
    redis: StoreView | None = None
    if ctx.redis_configured:
        try:
            store = ctx.redis()
        except F2FError as exc:
            redis = StoreView("redis", "unavailable", error=exc.message)
        else:
            redis = await _view("redis", store.read_copy(session_id), now)
    differences: list[Difference] = []
    if (
        redis is not None
        and sql.session is not None
        and redis.session is not None
        and sql.state in ("live", "deleted")
        and redis.state in ("live", "deleted")
    ):
        differences = diff(sql.session, redis.session)
    views = [sql] if redis is None else [sql, redis]
    found = any(v.state in ("live", "deleted", "expired") for v in views)
    return Inspection(session_id, phase, views, differences, verdict(sql, redis, differences), found)
