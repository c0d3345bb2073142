"""Recommendation quality on the real built-in catalog: fridge → expected recipe in the top 10.

Each case takes one recipe's core ingredients, writes some of them the way
people do (계란 for 달걀, 파 for 대파, 칵테일새우 for 새우, ...), adds noise
(other common ingredients and staples), and asks for the top 10. The hit rate
is printed (run with ``-s``) and must be at least 90%.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.engine import create_engine_for
from f2f_cli.recipes.builtin import builtin_catalog
from f2f_cli.recipes.catalog import import_parsed
from f2f_cli.recipes.normalize import CORE_ROLES, alias_table
from f2f_cli.recipes.recommender import Recommender
from tests.conftest import make_settings

CASES = 60
NOISE = ("양파", "당근", "감자", "우유", "버터", "소금", "설탕", "물", "간장", "사과", "오이", "김치")


@pytest.fixture
async def seeded(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(make_settings(F2F_DATABASE_URL=sqlite_url))
    await import_parsed(engine, builtin_catalog())
    yield engine
    await engine.dispose()


def build_cases() -> list[tuple[str, list[str]]]:
    rng = random.Random(20261125)
    spelled: dict[str, list[str]] = {}
    for alias, canonical, _kind in alias_table():
        spelled.setdefault(canonical, []).append(alias)
    records = [r for r in builtin_catalog().records
               if 3 <= len({i.ingredient for i in r.items if i.role in CORE_ROLES}) <= 8]
    cases = []
    for record in rng.sample(records, CASES):
        core = sorted({i.ingredient for i in record.items if i.role in CORE_ROLES})
        fridge = [rng.choice(spelled[c]) if c in spelled and rng.random() < 0.7 else c for c in core]
        fridge += rng.sample(NOISE, 3)
        rng.shuffle(fridge)
        cases.append((record.title, fridge))
    return cases


async def test_top10_hit_rate(seeded: AsyncEngine) -> None:
    recommender = Recommender(seeded)
    cases = build_cases()
    assert len(cases) >= 50
    assert sum(any(n in {a for a, _, _ in alias_table()} for n in fridge) for _, fridge in cases) >= 25
    hits = 0
    misses = []
    for title, fridge in cases:
        result = await recommender.recommend(fridge, limit=10)
        titles = [r.title for r in result.items]
        if title in titles:
            hits += 1
        else:
            misses.append((title, fridge, titles[:3]))
    rate = hits / len(cases)
    print(f"\nrecommendation quality: {hits}/{len(cases)} expected recipes in the top 10 ({rate:.1%})")
    for miss in misses:
        print("  miss:", miss)
    assert rate >= 0.9
