"""``f2f bench recommend``: the sparse-matrix recommender against a full Python scan.

The catalog is synthetic and seeded: ingredient use follows a Zipf law (a few
ingredients such as onion and garlic are in most recipes, most are rare), as
in the real catalog, and each fridge draws from the same law.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from f2f_cli.backends import Backends
from f2f_cli.errors import StoreUnavailable
from f2f_cli.recipes.index import FRIDGE_WEIGHT, IngredientRow, RecipeIndex, ReferenceScanner, build_index
from f2f_cli.redis.client import REDIS_FAILURES, RedisClient
from f2f_cli.settings import Settings

CATEGORIES = ("반찬", "국&찌개", "일품", "밥", "후식", "기타")
TARGETS = {"p99_ms": 10.0, "build_seconds": 5.0, "snapshot_load_seconds": 1.0, "speedup": 50.0}

SnapshotStore = Callable[[bytes], Callable[[], bytes]]


def redis_snapshot_store(settings: Settings) -> SnapshotStore:
    """Write the snapshot to F2F_REDIS_URL (any URL form f2f accepts) and read it back once, deleting it."""
    key = f"{settings.redis_key_prefix}:bench:recipes:index"

    async def call(what: str, op: Callable[[RedisClient], Awaitable[Any]]) -> Any:
        async with Backends.open(settings) as backends:
            try:
                return await op(backends.redis_client(command_timeout=10))
            except REDIS_FAILURES as exc:
                raise StoreUnavailable(f"cannot {what} the snapshot in Redis: {exc}") from None

    def store(blob: bytes) -> Callable[[], bytes]:
        asyncio.run(call("write", lambda client: client.set(key, blob, ex=300)))

        def read() -> bytes:
            value = asyncio.run(call("read", lambda client: client.getdel(key)))
            if not isinstance(value, bytes):
                raise StoreUnavailable("the snapshot was gone from Redis before it was read back")
            return value

        return read

    return store


class RecommendBenchResult(msgspec.Struct):
    recipes: int
    ingredients: int
    core_entries: int
    fridge_size: int
    limit: int
    queries: int
    seed: int
    build_seconds: float
    snapshot_bytes: int
    snapshot_load_seconds: float
    snapshot_store: str  # "memory" or "redis": where the snapshot was read back from
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    reference_queries: int
    reference_mean_ms: float
    speedup: float  # reference mean / index mean
    reference_agrees: bool  # the index returned the same top recipes as the full scan
    targets: dict[str, float]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def synthetic_catalog(
    recipes: int, *, ingredients: int = 2000, zipf: float = 1.07, seed: int = 42
) -> tuple[list[tuple[int, str, str | None]], list[tuple[int, str]], list[IngredientRow], npt.NDArray[np.float64]]:
    """Recipes, (recipe, core ingredient) pairs, ingredient rows and the ingredient probabilities."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, ingredients + 1, dtype=np.float64)
    prob = ranks ** -zipf
    prob /= prob.sum()
    sizes = rng.integers(3, 13, size=recipes)  # 3..12 core ingredients, as in the real catalog
    draws = rng.choice(ingredients, size=int(sizes.sum()), p=prob)
    owners = np.repeat(np.arange(recipes, dtype=np.int64), sizes)
    pairs_unique = np.unique(owners * ingredients + draws)  # one recipe lists an ingredient once
    names = [f"재료{i:05d}" for i in range(ingredients)]
    recipe_rows: list[tuple[int, str, str | None]] = [
        (i + 1, f"레시피 {i + 1}", CATEGORIES[i % len(CATEGORIES)]) for i in range(recipes)
    ]
    pairs = [(int(k // ingredients) + 1, names[int(k % ingredients)]) for k in pairs_unique]
    rows = [IngredientRow(n, "other", False) for n in names]
    return recipe_rows, pairs, rows, prob


def run_recommend_bench(
    *,
    recipes: int = 100_000,
    queries: int = 300,
    fridge_size: int = 15,
    limit: int = 20,
    reference_queries: int = 5,
    seed: int = 42,
    snapshot_store: SnapshotStore | None = None,
    progress: Callable[[str], None] | None = None,
) -> RecommendBenchResult:
    """Build, snapshot, reload and query a synthetic index; compare with the full scan."""
    say = progress or (lambda _msg: None)
    say(f"generating {recipes} synthetic recipes")
    recipe_rows, pairs, ingredient_rows, prob = synthetic_catalog(recipes, seed=seed)

    say("building the index")
    started = time.perf_counter()
    index = build_index(stamp="bench", recipes=recipe_rows, core_pairs=pairs, ingredients=ingredient_rows)
    build_seconds = time.perf_counter() - started

    blob = index.to_bytes()
    read_back: Callable[[], bytes] = (lambda: blob) if snapshot_store is None else snapshot_store(blob)
    say("loading the snapshot")
    started = time.perf_counter()
    loaded = RecipeIndex.from_bytes(read_back())
    load_seconds = time.perf_counter() - started

    rng = np.random.default_rng(seed + 1)
    fridges = []
    for _ in range(queries):
        picks = rng.choice(len(ingredient_rows), size=fridge_size, replace=False, p=prob)
        fridges.append([ingredient_rows[int(i)].name for i in picks])

    say(f"running {queries} queries")
    loaded.recommend(fridges[0], limit=limit)  # warm caches before timing
    timings = []
    results = []
    for fridge in fridges:
        started = time.perf_counter()
        result = loaded.recommend(fridge, limit=limit)
        timings.append((time.perf_counter() - started) * 1000)
        results.append(result)

    say(f"running {reference_queries} full-scan reference queries")
    scanner = ReferenceScanner(loaded)
    ref_timings = []
    agrees = True
    for fridge, result in zip(fridges[:reference_queries], results, strict=False):
        started = time.perf_counter()
        expected = scanner.recommend(fridge, limit=limit)
        ref_timings.append((time.perf_counter() - started) * 1000)
        agrees = agrees and _same_ranking(loaded, fridge, [r.recipe_id for r in result.items], expected)

    mean = statistics.fmean(timings)
    ref_mean = statistics.fmean(ref_timings) if ref_timings else 0.0
    return RecommendBenchResult(
        recipes=recipes,
        ingredients=len(ingredient_rows),
        core_entries=int(index.matrix.nnz),
        fridge_size=fridge_size,
        limit=limit,
        queries=queries,
        seed=seed,
        build_seconds=round(build_seconds, 4),
        snapshot_bytes=len(blob),
        snapshot_load_seconds=round(load_seconds, 4),
        snapshot_store="memory" if snapshot_store is None else "redis",
        p50_ms=round(_percentile(timings, 50), 3),
        p95_ms=round(_percentile(timings, 95), 3),
        p99_ms=round(_percentile(timings, 99), 3),
        mean_ms=round(mean, 3),
        reference_queries=len(ref_timings),
        reference_mean_ms=round(ref_mean, 3),
        speedup=round(ref_mean / mean, 1) if mean > 0 else 0.0,
        reference_agrees=agrees,
        targets=dict(TARGETS),
    )


def _same_ranking(index: RecipeIndex, fridge: list[str], got: list[int], expected: list[int]) -> bool:
    """Equal lists, allowing recipes whose scores tie to the last float bit to swap places."""
    if got == expected:
        return True
    if len(got) != len(expected):
        return False
    ids = index.recipe_ids.tolist()
    cols, _, _ = index.columns_for(fridge)
    have = set(cols)
    fridge_mass = float(index.idf[cols].sum())

    def key(recipe_id: int) -> tuple[float, int, float]:
        row = ids.index(recipe_id)
        core = index.matrix.indices[index.matrix.indptr[row]:index.matrix.indptr[row + 1]]
        matched = [c for c in core if c in have]
        mass = float(index.idf[matched].sum())
        place = len(core) - len(matched) - min(FRIDGE_WEIGHT * mass / fridge_mass, len(matched) - 1)
        return round(place, 6), len(core) - len(matched), round(mass / float(index.idf[core].sum()), 6)

    return [key(r) for r in got] == [key(r) for r in expected]
