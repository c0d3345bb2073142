"""The recommender service: an index built from SQL, kept fresh, shared through Redis.

Each process holds one :class:`RecipeIndex`. At most every ``check_interval``
seconds a request reads the catalog stamp (one tiny query); when it changed,
the index is replaced — from the Redis snapshot for that stamp when there is
one (a new pod starts without rebuilding), otherwise built from SQL and then
saved to Redis for the others. Redis is only a cache here: if it fails, the
index is built from SQL and the error is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from f2f_cli.db.schema import ingredient_aliases, ingredients, recipe_ingredients, recipes
from f2f_cli.recipes.autocomplete import Suggestion, suggest
from f2f_cli.recipes.catalog import CatalogStamp, read_stamp, sql_errors
from f2f_cli.recipes.index import (
    SNAPSHOT_FORMAT,
    IngredientRow,
    RecipeIndex,
    Recommendations,
    SnapshotError,
    build_index,
)
from f2f_cli.recipes.normalize import CORE_ROLES

if TYPE_CHECKING:
    from f2f_cli.redis.client import RedisClient

log = logging.getLogger(__name__)

SNAPSHOT_TTL_SECONDS = 7 * 86400


def snapshot_key(prefix: str, stamp: str) -> str:
    # The format is part of the key: during a rolling upgrade old and new pods each keep their own snapshot
    # instead of overwriting each other's with one the other cannot read.
    return f"{prefix}:recipes:index:v{SNAPSHOT_FORMAT}:{stamp}"


async def load_index_from_sql(conn: AsyncConnection, stamp: CatalogStamp) -> RecipeIndex:
    recipe_rows = [(int(r.id), r.title, r.category)
                   for r in await conn.execute(select(recipes.c.id, recipes.c.title, recipes.c.category))]
    ing_rows = (await conn.execute(
        select(ingredients.c.name, ingredients.c.category, ingredients.c.is_staple).order_by(ingredients.c.name)
    )).all()
    pairs = [(int(r.recipe_id), r.name) for r in await conn.execute(
        select(recipe_ingredients.c.recipe_id, ingredients.c.name)
        .join(ingredients, ingredients.c.id == recipe_ingredients.c.ingredient_id)
        .where(recipe_ingredients.c.role.in_(CORE_ROLES), ingredients.c.is_staple.is_(False))
    )]
    alias_rows = await conn.execute(
        select(ingredient_aliases.c.alias, ingredients.c.name)
        .join(ingredients, ingredients.c.id == ingredient_aliases.c.ingredient_id)
    )
    return build_index(
        stamp=stamp.key,
        recipes=recipe_rows,
        core_pairs=pairs,
        ingredients=[IngredientRow(r.name, r.category, bool(r.is_staple)) for r in ing_rows],
        aliases={r.alias: r.name for r in alias_rows},
    )


# Told of every index load: the index, the seconds it took, and where it came from ("sql" or "redis").
IndexLoaded = Callable[[RecipeIndex, float, str], None]


class Recommender:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        redis: RedisClient | None = None,
        key_prefix: str = "f2f",
        check_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_load: IndexLoaded | None = None,
    ) -> None:
        self._engine = engine
        self._on_load = on_load
        self._redis = redis
        self._prefix = key_prefix
        self._interval = check_interval
        self._clock = clock
        self._index: RecipeIndex | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()
        self.last_source = ""  # "memory", "redis" or "sql": where the current index came from

    async def index(self) -> RecipeIndex:
        """The current index, refreshed if the catalog changed since the last check."""
        if self._index is not None and self._clock() - self._checked_at < self._interval:
            return self._index
        async with self._lock:
            if self._index is not None and self._clock() - self._checked_at < self._interval:
                return self._index
            async with sql_errors("cannot read the recipe catalog"), self._engine.connect() as conn:
                stamp = await read_stamp(conn)
                if self._index is None or self._index.stamp != stamp.key:
                    started = time.perf_counter()
                    self._index = await self._load(conn, stamp)
                    if self._on_load is not None:
                        self._on_load(self._index, time.perf_counter() - started, self.last_source)
                else:
                    self.last_source = "memory"
            self._checked_at = self._clock()
            return self._index

    async def _load(self, conn: AsyncConnection, stamp: CatalogStamp) -> RecipeIndex:
        key = snapshot_key(self._prefix, stamp.key)
        if self._redis is not None:
            try:
                blob = await self._redis.get(key)
                if isinstance(blob, bytes):
                    index = RecipeIndex.from_bytes(blob)
                    if index.stamp == stamp.key:
                        self.last_source = "redis"
                        return index
            except SnapshotError as exc:
                log.warning("ignoring recipe index snapshot %s: %s", key, exc.message)
            except Exception as exc:  # Redis is a cache here: any failure means "build it"
                log.warning("cannot read recipe index snapshot %s: %s", key, exc)
        index = await load_index_from_sql(conn, stamp)
        self.last_source = "sql"
        if self._redis is not None:
            try:
                await self._redis.set(key, index.to_bytes(), ex=SNAPSHOT_TTL_SECONDS)
            except Exception as exc:
                log.warning("cannot save recipe index snapshot %s: %s", key, exc)
        return index

    async def recommend(
        self, fridge: Iterable[str], *, limit: int = 20, max_missing: int | None = None, category: str | None = None
    ) -> Recommendations:
        index = await self.index()
        return index.recommend(fridge, limit=limit, max_missing=max_missing, category=category)

    async def suggest(self, query: str, *, limit: int = 20) -> list[Suggestion]:
        return suggest(await self.index(), query, limit=limit)
