"""Recommendation quality: is a recipe found from a fridge made of its own ingredients?

Each case takes one recipe of the public COOKRCP01 sample, fills a fridge with
its core ingredients, writes about half of those that have a common synonym
the other way (계란 for 달걀, 파 for 대파, 칵테일새우 for 새우 ...), adds three
common fridge items the recipe does not use, and asks for the top 10. A case
is a hit at k when the recipe's dish (:func:`~f2f_cli.recipes.identity.dish_key`)
is among the first k results. Cases are seeded, so the figures are reproducible.

The same cases are measured on two catalog states: the built-in catalog only,
and the built-in catalog after an import of the very sample it came from (the
state in which copies used to fill half of every list).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.recipes.builtin import builtin_catalog
from f2f_cli.recipes.catalog import import_parsed, recipe_count
from f2f_cli.recipes.formats import ParsedFile, RecipeRecord
from f2f_cli.recipes.identity import dish_key
from f2f_cli.recipes.normalize import CORE_ROLES, canonical_name
from f2f_cli.recipes.recommender import Recommender

DEFAULT_SEED = 17
KS = (1, 3, 10)

# How people write what is in their fridge, for ingredients recipes name otherwise.
COMMON_SYNONYMS: dict[str, tuple[str, ...]] = {
    "달걀": ("계란",),
    "대파": ("파",),
    "소고기": ("쇠고기",),
    "닭고기": ("닭",),
    "쪽파": ("실파",),
    "김치": ("배추김치", "묵은지"),
    "새우": ("칵테일새우", "생새우", "냉동새우"),
    "양송이버섯": ("양송이",),
    "표고버섯": ("표고",),
    "팽이버섯": ("팽이",),
    "요거트": ("요구르트",),
    "모짜렐라치즈": ("피자치즈",),
    "파마산치즈": ("파르메산치즈",),
    "밥": ("흰밥", "쌀밥"),
    "참치": ("참치캔",),
    "셀러리": ("샐러리",),
    "돼지고기": ("삼겹살", "목살"),
    "고추": ("풋고추", "홍고추"),
    "어린잎채소": ("새싹채소",),
}
# Common fridge items; three the recipe does not use are added to each fridge.
NOISE_POOL: tuple[str, ...] = (
    "양파", "당근", "감자", "우유", "버터", "사과", "오이", "김치", "두부", "달걀", "대파", "마늘", "양배추",
    "애호박", "햄", "치즈", "토마토", "느타리버섯", "콩나물", "시금치", "고구마", "무", "돼지고기", "닭고기",
)


class RecallCase(msgspec.Struct, frozen=True):
    source_id: str
    title: str
    fridge: tuple[str, ...]


class RecallFigures(msgspec.Struct):
    state: str
    recipes: int  # rows in the catalog
    cases: int
    hits: dict[str, int]  # "k" → cases whose dish is in the top k
    recall: dict[str, float]  # "k" → hits / cases
    lists_with_copies: int  # top-10 lists that show one dish twice
    misses: list[str]  # titles of the first missed cases at the largest k (a sample, for tuning)


def core_ingredients(record: RecipeRecord) -> list[str]:
    return sorted({i.ingredient for i in record.items if i.role in CORE_ROLES})


def build_cases(
    records: Sequence[RecipeRecord], *, seed: int = DEFAULT_SEED, limit: int | None = None, min_core: int = 2,
    drop: int = 0,
) -> list[RecallCase]:
    """One case per recipe with at least ``min_core`` core ingredients (a seeded sample of ``limit`` if given).

    ``drop`` leaves that many of the recipe's core ingredients out of the fridge (only recipes with at
    least ``drop + 2`` take part), so the recipe must be found among those missing something: the
    harder test of coverage and IDF weighting.
    """
    rng = random.Random(seed)
    eligible = [r for r in records if len(core_ingredients(r)) >= max(min_core, drop + 2)]
    if limit is not None and limit < len(eligible):
        eligible = rng.sample(eligible, limit)
    # Only spellings this build really resolves to the ingredient, so a case never tests a typo.
    spelled = {c: [s for s in ss if canonical_name(s) == c] for c, ss in COMMON_SYNONYMS.items()}
    cases = []
    for record in eligible:
        core = core_ingredients(record)
        if drop:
            core = sorted(rng.sample(core, len(core) - drop))
        fridge = [rng.choice(spelled[c]) if spelled.get(c) and rng.random() < 0.5 else c for c in core]
        used = {i.ingredient for i in record.items}
        fridge += rng.sample([n for n in NOISE_POOL if canonical_name(n) not in used], 3)
        rng.shuffle(fridge)
        cases.append(RecallCase(record.source_id, record.title, tuple(fridge)))
    return cases


async def measure(
    recommender: Recommender, cases: Sequence[RecallCase], *, state: str, recipes: int = 0, ks: Sequence[int] = KS
) -> RecallFigures:
    top = max(ks)
    hits = dict.fromkeys(ks, 0)
    copies = 0
    misses: list[str] = []
    for case in cases:
        result = await recommender.recommend(case.fridge, limit=top)
        keys = [dish_key(item.title) for item in result.items]
        copies += len(set(keys)) != len(keys)
        want = dish_key(case.title)
        for k in ks:
            hits[k] += want in keys[:k]
        if want not in keys and len(misses) < 50:
            misses.append(case.title)
    n = max(len(cases), 1)
    return RecallFigures(
        state=state, recipes=recipes, cases=len(cases), hits={str(k): v for k, v in hits.items()},
        recall={str(k): round(v / n, 4) for k, v in hits.items()}, lists_with_copies=copies, misses=misses,
    )


async def measure_catalog_states(
    engine: AsyncEngine, sample: ParsedFile, cases: Sequence[RecallCase]
) -> list[RecallFigures]:
    """Seed an empty catalog and measure; import ``sample`` on top and measure again."""
    await import_parsed(engine, builtin_catalog())
    first = await measure(Recommender(engine, check_interval=0), cases, state="seed",
                          recipes=await recipe_count(engine))
    await import_parsed(engine, sample)
    second = await measure(Recommender(engine, check_interval=0), cases, state="seed+import",
                           recipes=await recipe_count(engine))
    return [first, second]
