"""Recall floors on deterministic sets of cases drawn from the whole catalog, for both catalog states.

Cases come from the built-in catalog (the public COOKRCP01 rows it ships, raw
ingredient lines included), seeded, so every run measures the same fridges:
the self-check (fridges in the catalog's own vocabulary) and the raw set
(fridges copied from the raw lines, never from the folded vocabulary).
``scripts/recipes_recall.py`` measures both on the shared sample and prints
the figures and the misses. Run with ``-s`` to see them here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db.engine import create_engine_for
from f2f_cli.recipes.builtin import builtin_bytes, builtin_catalog
from f2f_cli.recipes.formats import parse_data
from f2f_cli.recipes.quality import build_cases, build_raw_cases, measure_catalog_states
from tests.conftest import make_settings

CASES = 300


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine_for(make_settings(F2F_DATABASE_URL=sqlite_url))
    yield eng
    await eng.dispose()


@pytest.mark.parametrize(("drop", "floor_at_3"), [(0, 0.95), (1, 0.85)])
async def test_recall_floor_in_both_catalog_states(engine: AsyncEngine, drop: int, floor_at_3: float) -> None:
    cases = build_cases(builtin_catalog().records, seed=20261201, limit=CASES, drop=drop)
    assert len(cases) == CASES
    assert sum(any(s in c.fridge for s in ("계란", "파", "쇠고기", "칵테일새우", "닭")) for c in cases) >= 30
    # The state that used to show every recipe twice: the same public rows imported again as a simple file.
    sample = parse_data(json.loads(builtin_bytes()))
    figures = await measure_catalog_states(engine, sample, {"self": cases})
    for f in figures:
        print(f"\n{f.state} (drop {drop}): recall@1 {f.recall['1']:.1%} @3 {f.recall['3']:.1%} "
              f"@10 {f.recall['10']:.1%}; lists with a dish twice {f.lists_with_copies}; "
              f"missed {[m.title for m in f.misses]}")
        assert f.recall["10"] >= 0.95
        assert f.recall["3"] >= floor_at_3
        assert f.lists_with_copies == 0
    assert figures[0].recipes == figures[1].recipes  # the import recognised every recipe


async def test_fridges_copied_from_the_raw_lines_find_their_recipe(engine: AsyncEngine) -> None:
    rows = json.loads(builtin_bytes())
    cases = build_raw_cases(rows, seed=20261205)
    assert len(cases) >= 950  # every recipe with two or more names on its lines
    # The fridges are the lines as written: preparations, sizes and synonyms the normaliser has to fold.
    fridges = [item for c in cases for item in c.fridge]
    assert sum(n.startswith("다진 ") for n in fridges) >= 100
    assert sum(n in ("계란", "파", "쇠고기") for n in fridges) >= 50
    figures = await measure_catalog_states(engine, parse_data(rows), {"raw": cases})
    for f in figures:
        print(f"\nraw, {f.state}: recall@1 {f.recall['1']:.1%} @3 {f.recall['3']:.1%} @10 {f.recall['10']:.1%}; "
              f"lists with a dish twice {f.lists_with_copies}; missed {[(m.title, m.rank) for m in f.misses]}")
        assert f.case_set == "raw"
        assert f.recall["10"] >= 0.95
        assert f.lists_with_copies == 0
        # Each miss says why: its place further down, or what it lacks.
        assert all(m.rank is None or m.rank > 10 for m in f.misses)
