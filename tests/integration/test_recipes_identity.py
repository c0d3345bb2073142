"""One recipe once: import merges the same recipe from another source, dedupe cleans older catalogs.

Runs on SQLite and PostgreSQL. The public sample is represented by the
built-in catalog's own rows imported in the simple format under the default
source, which is what ``f2f recipes import cookrcp01.json`` did before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from f2f_cli.db import migrate as schema
from f2f_cli.db.engine import create_sync_engine_for
from f2f_cli.db.schema import ingredients, recipe_ingredients, recipe_source_ids, recipes
from f2f_cli.recipes.builtin import builtin_bytes, builtin_catalog
from f2f_cli.recipes.catalog import dedupe, import_parsed, read_stamp, recipe_count
from f2f_cli.recipes.formats import parse_data, parse_file
from f2f_cli.recipes.identity import dish_key
from f2f_cli.recipes.recommender import Recommender

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def builtin_rows_as_simple() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(builtin_bytes())
    return rows


async def version(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await read_stamp(conn)).version


async def test_importing_the_public_data_after_seed_adds_no_copy(engine: AsyncEngine) -> None:
    seeded = await import_parsed(engine, builtin_catalog())
    count = await recipe_count(engine)
    assert count == seeded.inserted == seeded.parsed  # the shipped catalog holds each recipe once
    stamp = await version(engine)
    report = await import_parsed(engine, parse_data(builtin_rows_as_simple()))
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, report.parsed)
    assert len(report.merged) == report.parsed and {m.by for m in report.merged} == {"fingerprint"}
    assert await recipe_count(engine) == count
    # Nothing the recommender reads changed; the rows only learned their other id.
    assert await version(engine) == stamp
    again = await import_parsed(engine, parse_data(builtin_rows_as_simple()))
    assert again.inserted == 0 and {m.by for m in again.merged} == {"known id"}
    async with engine.connect() as conn:
        known = (await conn.execute(select(func.count()).select_from(recipe_source_ids))).scalar_one()
    assert known == count


async def test_simple_import_first_then_seed(engine: AsyncEngine) -> None:
    first = await import_parsed(engine, parse_data(builtin_rows_as_simple()))
    seeded = await import_parsed(engine, builtin_catalog())
    assert seeded.inserted == 0 and len(seeded.merged) == seeded.parsed
    assert await recipe_count(engine) == first.inserted


async def test_official_response_updates_the_seeded_recipe(engine: AsyncEngine) -> None:
    await import_parsed(engine, builtin_catalog())
    builtin_ids = {r.source_id for r in builtin_catalog().records}
    official = parse_file(FIXTURES / "cookrcp01_api.json")
    before = await recipe_count(engine)
    report = await import_parsed(engine, official)
    shared = [r for r in official.records if r.source_id in builtin_ids]
    assert shared, "the fixture shares ids with the built-in catalog"
    assert report.inserted == len(official.records) - len(shared)
    assert await recipe_count(engine) == before + report.inserted


async def test_a_copy_inside_one_file_is_merged(engine: AsyncEngine) -> None:
    row = {"title": "가지 볶음", "ingredients": ["가지 150g", "생강 3g", "고추장 10g"], "steps": ["1. 볶는다."]}
    rows = [{**row, "id": "807"}, {**row, "id": "1034", "steps": ["1. 가지를 볶는다."]}]
    report = await import_parsed(engine, parse_data(rows))
    assert (report.inserted, report.unchanged) == (1, 1)
    assert [(m.source_id, m.by) for m in report.merged] == [("1034", "copy in file")]
    again = await import_parsed(engine, parse_data(rows))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)  # the first row's text stays
    assert await recipe_count(engine) == 1


async def make_copies(engine: AsyncEngine, source: str) -> int:
    """Copy every recipe under ``source`` as the importer before migration 0003 did (no fingerprint)."""
    async with engine.begin() as conn:
        originals = (await conn.execute(select(recipes))).mappings().all()
        for row in originals:
            values = {k: v for k, v in row.items() if k != "id"}
            values.update(source=source, fingerprint=None)
            new_id = (await conn.execute(insert(recipes).values(**values).returning(recipes.c.id))).scalar_one()
            parts = (await conn.execute(select(recipe_ingredients)
                                        .where(recipe_ingredients.c.recipe_id == row["id"]))).mappings().all()
            await conn.execute(insert(recipe_ingredients), [{**p, "recipe_id": new_id} for p in parts])
    return len(originals)


async def test_dedupe_cleans_a_catalog_that_holds_copies(engine: AsyncEngine) -> None:
    fixture = parse_file(FIXTURES / "cookrcp01_simple.json")
    await import_parsed(engine, fixture)
    copies = await make_copies(engine, "old")
    assert await recipe_count(engine) == 2 * copies
    # Even before the clean-up a list never shows a dish twice.
    result = await Recommender(engine, check_interval=0).recommend(["두부", "달걀", "새우", "대파"], limit=10)
    keys = [dish_key(r.title) for r in result.items]
    assert keys and len(keys) == len(set(keys))

    stamp = await version(engine)
    preview = await dedupe(engine, dry_run=True)
    assert preview.dry_run and preview.removed == copies == len(preview.groups)
    assert await recipe_count(engine) == 2 * copies and await version(engine) == stamp

    done = await dedupe(engine)
    assert done.removed == copies and all(g.source == "simple" for g in done.groups)  # the older row stays
    assert await recipe_count(engine) == copies and await version(engine) == stamp + 1
    assert (await dedupe(engine)).removed == 0  # idempotent
    # The removed copies' ids now name the kept recipes: importing them again adds nothing.
    again = await import_parsed(engine, parse_data(json.loads((FIXTURES / "cookrcp01_simple.json").read_text()),
                                                   source="old"))
    assert again.inserted == 0 and {m.by for m in again.merged} == {"known id"}
    async with engine.connect() as conn:
        orphans = (await conn.execute(select(func.count()).select_from(recipe_ingredients).where(
            recipe_ingredients.c.recipe_id.not_in(select(recipes.c.id))))).scalar_one()
    assert orphans == 0


async def test_unused_names_leave_the_ingredient_list(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # what an older parser left behind
        await conn.execute(insert(ingredients).values(name="두부강된장참기름", category="seasoning", is_staple=False))
    await import_parsed(engine, parse_file(FIXTURES / "cookrcp01_simple.json"))
    async with engine.connect() as conn:
        names = set((await conn.execute(select(ingredients.c.name))).scalars())
    assert "두부강된장참기름" not in names and {"두부", "소금", "참기름"} <= names


def test_migration_recipe_identity_up_and_down(sql_url: str) -> None:
    sync = create_sync_engine_for(sql_url)
    try:
        schema.downgrade(sql_url, "0002")
        assert "recipe_source_ids" not in inspect(sync).get_table_names()
        assert "fingerprint" not in {c["name"] for c in inspect(sync).get_columns("recipes")}
        schema.upgrade(sql_url)
        assert "recipe_source_ids" in inspect(sync).get_table_names()
        assert "fingerprint" in {c["name"] for c in inspect(sync).get_columns("recipes")}
        with sync.begin() as conn:
            conn.execute(update(recipes).values(fingerprint="x"))  # usable after the round trip
    finally:
        sync.dispose()
