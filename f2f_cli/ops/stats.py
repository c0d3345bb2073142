"""``f2f sessions stats``: counts, remaining-TTL histogram, top ingredients (SQL side).

Every figure is one aggregate query on the database, never a scan in Python.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.clock import utcnow
from f2f_cli.db.errors import translate_db_errors
from f2f_cli.db.schema import fridge_session_ingredients as ingredients_t
from f2f_cli.db.schema import fridge_sessions as sessions_t

# Upper bounds of the remaining-TTL buckets; the last bucket is open-ended.
TTL_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("< 5m", timedelta(minutes=5)),
    ("5m–1h", timedelta(hours=1)),
    ("1h–6h", timedelta(hours=6)),
    ("6h–12h", timedelta(hours=12)),
    ("12h–24h", timedelta(hours=24)),
)
OPEN_BUCKET = "> 24h"
# The bounds the histogram compares with. A session's TTL is at most 24 h (the default), but one written
# while the stats run has a little more than 24 h left measured from the moment they started: it still
# belongs in "12h–24h", so the top bound allows for the length of a scan.
SCAN_SLACK = timedelta(minutes=5)
BUCKET_BOUNDS: tuple[tuple[str, timedelta], ...] = (
    *TTL_BUCKETS[:-1], (TTL_BUCKETS[-1][0], TTL_BUCKETS[-1][1] + SCAN_SLACK),
)


class Bucket(msgspec.Struct, frozen=True):
    label: str
    sessions: int


class TopIngredient(msgspec.Struct, frozen=True):
    name: str
    sessions: int


class SqlStats(msgspec.Struct, frozen=True):
    at: datetime
    live: int
    tombstones: int
    expired_unpurged: int
    ingredient_rows: int
    mean_ingredients: float
    max_ingredients: int
    ttl_histogram: list[Bucket]
    top_ingredients: list[TopIngredient]
    oldest_expired_at: datetime | None


async def sql_stats(engine: AsyncEngine, *, top: int = 10, now: datetime | None = None) -> SqlStats:
    now = now or utcnow()
    live = and_(sessions_t.c.expires_at > now, sessions_t.c.deleted_at.is_(None))
    tomb = and_(sessions_t.c.expires_at > now, sessions_t.c.deleted_at.is_not(None))
    expired = sessions_t.c.expires_at <= now
    counts = select(
        func.count().filter(live).label("live"),
        func.count().filter(tomb).label("tombstones"),
        func.count().filter(expired).label("expired"),
        func.min(case((expired, sessions_t.c.expires_at))).label("oldest_expired"),
    )
    bucket = case(
        *[(sessions_t.c.expires_at <= now + bound, literal(label)) for label, bound in BUCKET_BOUNDS],
        else_=literal(OPEN_BUCKET),
    ).label("bucket")
    histogram = select(bucket, func.count().label("n")).where(live).group_by(bucket)
    live_items = ingredients_t.join(sessions_t, ingredients_t.c.session_id == sessions_t.c.session_id)
    per_session = (
        select(func.count().label("n")).select_from(live_items).where(live).group_by(ingredients_t.c.session_id)
    ).subquery()
    sizes = select(func.coalesce(func.sum(per_session.c.n), 0), func.coalesce(func.max(per_session.c.n), 0))
    n_sessions = func.count().label("n")
    tops = (
        select(ingredients_t.c.name, n_sessions)
        .select_from(live_items)
        .where(live)
        .group_by(ingredients_t.c.name)
        .order_by(n_sessions.desc(), ingredients_t.c.name)
        .limit(top)
    )
    with translate_db_errors():
        async with engine.connect() as conn:
            c = (await conn.execute(counts)).one()
            hist = {r.bucket: int(r.n) for r in await conn.execute(histogram)}
            total_items, max_items = (await conn.execute(sizes)).one()
            top_rows = (await conn.execute(tops)).all()
    live_n = int(c.live)
    labels = [label for label, _ in TTL_BUCKETS] + [OPEN_BUCKET]
    oldest = c.oldest_expired
    if isinstance(oldest, str):  # SQLite hands MIN() over a CASE back untyped
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=now.tzinfo)
    return SqlStats(
        at=now,
        live=live_n,
        tombstones=int(c.tombstones),
        expired_unpurged=int(c.expired),
        ingredient_rows=int(total_items),
        mean_ingredients=round(int(total_items) / live_n, 2) if live_n else 0.0,
        max_ingredients=int(max_items),
        ttl_histogram=[Bucket(label, hist.get(label, 0)) for label in labels],
        top_ingredients=[TopIngredient(r.name, int(r.n)) for r in top_rows],
        oldest_expired_at=oldest,
    )
